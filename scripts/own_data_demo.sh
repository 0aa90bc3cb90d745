#!/usr/bin/env bash
# The walkthrough of docs/own-data.md, end to end, timed: a folder of your own PNGs -> fine-tuned segmentation
# and registration models -> a registered pair with a picture.
#   bash scripts/own_data_demo.sh [DIR] [WORK]
# DIR: a folder with images/ (+ masks/); default: a synthetic folder made by scripts/make_own_demo.py (24
# chest-like 16-bit PNGs of several sizes). WORK: where runs and outputs go (default runs/own_demo).
# Prints the wall time of each step; the registered pair is written to WORK/pair/.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${2:-runs/own_demo}
DIR=${1:-$WORK/data}
[ -n "${1:-}" ] || python scripts/make_own_demo.py "$DIR"
rm -rf "$WORK/segmentation" "$WORK/registration" "$WORK/pair"  # a fresh, timed run (training would resume)
mkdir -p "$WORK"
step() {  # name, command...
  local name=$1; shift
  local t0=$(date +%s%N)
  "$@" > "$WORK/$name.log" 2>&1
  local t1=$(date +%s%N)
  printf '%-12s %6.1f s\n' "$name" "$(( (t1 - t0) / 100000000 ))e-1"
}
# 1. segmentation, fine-tuned from the universal model (20 epochs)
step segmentation python -m monai.bundle run training --config_file configs/segmentation/train.json \
  --data_dir "$DIR" --init universal --max_epochs 20 --val_interval 5 \
  --output_dir "$WORK/segmentation" --model_path "$WORK/segmentation.pt"
# 2. registration, fine-tuned from the universal model (4 x 50 iterations), attention = the model of step 1
step registration python -m monai.bundle run training \
  --config_file "['configs/train.json','configs/presets/diffeo.json']" \
  --data_dir "$DIR" --init universal --seg_model "$WORK/segmentation.pt" --max_epochs 4 \
  --output_dir "$WORK/registration" --model_path "$WORK/registration.pt"
# 3. register two of the validation images (moving = the first, fixed = the second in split.json)
read -r MOV FIX < <(python - "$WORK/registration/split.json" "$DIR" <<'PY'
import json, sys
from pathlib import Path
s = json.load(open(sys.argv[1])); d = Path(sys.argv[2]) / "images"
files = {p.name.split(".")[0]: p for p in d.iterdir()}
print(files[s["val"][0]], files[s["val"][1]])
PY
)
step register cxreg register "$MOV" "$FIX" --model "$WORK/registration.pt" --seg-model "$WORK/segmentation.pt" \
  --out "$WORK/pair" --overwrite
cat "$WORK/register.log"
# 4. the picture of docs/own-data.md: moving, fixed, warped (on the fixed grid) and the overlay written by cxreg
python - "$MOV" "$FIX" "$WORK/pair" "${FIGURE:-$WORK/own_data_result.png}" <<'PY'
import sys
import numpy as np
from PIL import Image
from bundle.io import load_image
from bundle.visualize import tile, to_rgb
mov, fix, pair, dst = sys.argv[1:5]
def grey(p, shape):
    a = load_image(p); a = a / (255.0 if a.max() <= 255 else a.max())
    return to_rgb(np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize(shape[::-1])))
f = load_image(fix)
shape = (256, int(round(256 * f.shape[1] / f.shape[0])))
ov = np.asarray(Image.open(f"{pair}/overlay.png").convert("RGB"))
panels = [[grey(mov, shape), grey(fix, shape), grey(f"{pair}/warped.png", shape)]]
tile(panels, [["moving", "fixed", "warped moving"]]).save(dst)
Image.fromarray(ov).save(dst.replace(".png", "_overlay.png"))
print("wrote", dst)
PY
