#!/usr/bin/env bash
# cxreg register --pairs against the bundle's inference workflow (ignite SupervisedEvaluator) on the same pairs:
# wall time (start-up included) and whether the fields are identical. Usage: bash scripts/bench_inference_paths.sh [N]
# N JSRT test images (default 6) -> N (N - 1) ordered pairs with their true masks (symbolic links in a temp folder;
# nothing from ../shared/data is copied).
set -euo pipefail
N=${1:-6}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${CXREG_DATA_DIR:-$ROOT/../shared/data}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/set/images" "$TMP/set/masks"
python - "$DATA" "$TMP/set" "$N" <<'PY'
import json, os, sys
data, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in json.load(open(os.path.join(data, "splits.json")))["JSRT"]["test"][:n]:
    for k in ("images", "masks"):
        os.symlink(os.path.join(data, "JSRT", k, f"{i}.png"), os.path.join(out, k, f"{i}.png"))
PY
cxreg pairs "$TMP/set" --out "$TMP/pairs.csv"
for k in 1 2; do
  /usr/bin/time -f "cxreg register --pairs: %e s" cxreg register --pairs "$TMP/pairs.csv" --out "$TMP/cli$k" --quiet > /dev/null
  /usr/bin/time -f "bundle inference: %e s" python -m monai.bundle run inference --config_file "$ROOT/configs/inference.json" \
    --pairs_csv "$TMP/pairs.csv" --output_dir "$TMP/bun$k" > /dev/null 2> "$TMP/err" || { tail -3 "$TMP/err"; exit 1; }
  tail -1 "$TMP/err"
done
python - "$TMP" <<'PY'
import glob, sys
import itk, numpy as np
t = sys.argv[1]
d = [float(np.abs(itk.array_from_image(itk.imread(p)) - itk.array_from_image(itk.imread(p.replace("/cli1/", "/bun1/")))).max())
     for p in sorted(glob.glob(f"{t}/cli1/*/ddf.nii.gz"))]
print(f"{len(d)} pairs; largest |ddf.nii.gz difference| between the two paths: {max(d):g}")
PY
