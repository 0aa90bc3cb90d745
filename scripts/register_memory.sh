#!/usr/bin/env bash
# Peak memory (max RSS) of one `cxreg register` process on CPU, by image size (docs/reliability.md, "Limits").
#   bash scripts/register_memory.sh [OUT_DIR]      (~1 min on 2 CPU cores)
# Synthetic pairs (two bright ellipses on a gradient, the moving one shifted), made with PIL at each size.
set -euo pipefail
out=${1:-/tmp/cxreg_memory}
rm -rf "$out" && mkdir -p "$out"
python - "$out" <<'PY'
import sys
import numpy as np
from PIL import Image
out = sys.argv[1]
def pair(side, shift):
    y, x = np.mgrid[0:256, 0:256] / 256.0
    img = 40 + 60 * y
    for cx in (0.32 + shift, 0.68 + shift):
        img = img + 120 * (((x - cx) / 0.14) ** 2 + ((y - 0.5) / 0.3) ** 2 < 1)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).resize((side, side), Image.BILINEAR)
for side in (128, 1024, 2048):
    pair(side, 0.0).save(f"{out}/fixed{side}.png")
    pair(side, 0.03).save(f"{out}/moving{side}.png")
PY
run() {  # label moving fixed
    /usr/bin/time -f "%M" -o "$out/rss" cxreg register "$2" "$3" --out "$out/o" --overwrite --quiet >/dev/null
    echo "| $1 | $(( $(cat "$out/rss") / 1024 )) MiB |"
}
echo "| pair | peak RSS |"
echo "|---|---|"
run "128 x 128 pair" "$out/moving128.png" "$out/fixed128.png"
run "fixed 1024 x 1024" "$out/moving1024.png" "$out/fixed1024.png"
run "fixed 2048 x 2048" "$out/moving2048.png" "$out/fixed2048.png"

