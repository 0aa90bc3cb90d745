#!/usr/bin/env bash
# Table 1 rows with a segmentation *ensemble* as attention: the dataset's own segmentation model and the
# universal one, their lung probabilities averaged (--seg-model DS+universal), for the universal registration
# model and the dataset's own, without and with test-time refinement; all ordered test pairs, 256 x 256.
#   bash scripts/eval_ensembles.sh [DATASETS...]      (default: JSRT MONT SHEN; REFINE=20 steps)
# Writes docs/results/registration/<DS>_{universal,universal_ens,universal_ens_refine<REFINE>,shipped_ens}/
# (pairs.csv, summary.json, table.md; shipped_ens also train_summary.json, the training record of its weights;
# the universal registration model's training, 10.0 min, is in docs/generalisation.md).
# SHEN's refinement row is a seeded 2000-pair sample (all 9900 pairs take ~15 min).
set -euo pipefail
cd "$(dirname "$0")/.."
REFINE=${REFINE:-20}
R=docs/results/registration
row() {  # name dataset args...
  local name=$1 ds=$2; shift 2
  cxreg evaluate --method ours --dataset "$ds" --quiet --overwrite --out "$R/${ds}_$name" "$@" | sed -n 2p \
    | sed "s/^/$ds $name: /"
}
for DS in ${*:-JSRT MONT SHEN}; do
  SAMPLE=(); [ "$DS" = SHEN ] && SAMPLE=(--max-pairs 2000 --seed 0)
  row universal "$DS" --model universal --seg-model universal
  row universal_ens "$DS" --model universal --seg-model "$DS+universal"
  row "universal_ens_refine$REFINE" "$DS" --model universal --seg-model "$DS+universal" --refine "$REFINE" --refine-mask-weight 1 "${SAMPLE[@]}"
  row shipped_ens "$DS" --model "$DS" --seg-model "$DS+universal"
  cp "$R/${DS}_diffeo/train_summary.json" "$R/${DS}_shipped_ens/train_summary.json" 2>/dev/null || true
done
