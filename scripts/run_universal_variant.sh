#!/usr/bin/env bash
# Train one variant of the universal registration model (the union of the three training splits, histogram-
# equalised inputs, universal segmentation/autoencoder priors, 2000 iterations) and evaluate it on every
# dataset's test split (all ordered pairs, 256 x 256) with the universal segmentation model as attention and
# with the dataset's own + universal ensemble (--seg-model DS+universal).
#   bash scripts/run_universal_variant.sh NAME PRESET [extra monai.bundle overrides...]
# e.g.  bash scripts/run_universal_variant.sh universal_scales diffeo_scales
#       bash scripts/run_universal_variant.sh universal_ic diffeo --lambda_ic 0.1
# Weights: runs/registration_<NAME>/final.pt (not shipped). Results: docs/results/registration/<DS>_<NAME>/ and
# <DS>_<NAME>_ens/ (pairs.csv, summary.json, table.md; train_summary.json = the training record).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=$1; PRESET=$2; shift 2
OUT="runs/registration_${NAME}"
mkdir -p logs
t0=$(date +%s)
python -m monai.bundle run training --config_file "['configs/train.json','configs/presets/${PRESET}.json']" \
  --dataset universal --intensity equalize --output_dir "$OUT" --model_path "$OUT/final.pt" "$@" \
  > "logs/train_registration_${NAME}.log" 2>&1
echo "$NAME trained in $(( $(date +%s) - t0 )) s"
for DS in JSRT MONT SHEN; do
  for SEG in universal "$DS+universal"; do
    R="docs/results/registration/${DS}_${NAME}$([ "$SEG" = universal ] || echo _ens)"
    cxreg evaluate --method ours --model "$OUT/final.pt" --seg-model "$SEG" --dataset "$DS" --quiet --overwrite \
      --out "$R" | sed -n 2p | sed "s|^|$DS $NAME ($SEG): |"
    cp "$OUT/summary.json" "$R/train_summary.json"
  done
done
