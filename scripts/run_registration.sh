#!/usr/bin/env bash
# Train one registration variant on one dataset and evaluate it on all ordered test pairs.
#   bash scripts/run_registration.sh DATASET VARIANT [extra monai.bundle overrides...]
# VARIANT: a preset in configs/presets/ (paper, acregnet, diffeo) or "default" (configs/train.json alone),
# or any name, with the overrides given as extra arguments (e.g. no_ssim --lambda_ssim 0).
# A variant named "ship" writes models/registration_<DATASET>.pt; others runs/registration_<DATASET>_<VARIANT>/final.pt.
# Results: docs/results/registration/<DATASET>_<VARIANT>/ (pairs.csv, summary.json, table.md, train_summary.json).
set -euo pipefail
cd "$(dirname "$0")/.."
DS=$1; VAR=$2; shift 2
CFG="configs/train.json"
[ -f "configs/presets/$VAR.json" ] && CFG="['configs/train.json','configs/presets/$VAR.json']"
OUT="runs/registration_${DS}_${VAR}"
MODEL="$OUT/final.pt"
if [ "$VAR" = "ship" ]; then MODEL="models/registration_${DS}.pt"; fi
mkdir -p logs "docs/results/registration"
t0=$(date +%s)
python -m monai.bundle run training --config_file "$CFG" --dataset "$DS" --output_dir "$OUT" --model_path "$MODEL" "$@" \
  > "logs/train_registration_${DS}_${VAR}.log" 2>&1
echo "$DS $VAR trained in $(( $(date +%s) - t0 )) s"
cxreg evaluate --method ours --model "$MODEL" --seg-model "$DS" --dataset "$DS" --quiet --overwrite \
  --out "docs/results/registration/${DS}_${VAR}" | tail -3
cp "$OUT/summary.json" "docs/results/registration/${DS}_${VAR}/train_summary.json"
