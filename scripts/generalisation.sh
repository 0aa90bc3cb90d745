#!/usr/bin/env bash
# Cross-dataset generalisation (docs/generalisation.md): every shipped registration model (with its own
# segmentation model as attention) on every dataset's test split, all ordered pairs, 256 x 256, through the same
# harness as Table 1; then the tables (segmentation 4 x 3 included) by scripts/generalisation_tables.py.
#   bash scripts/generalisation.sh [MODELS...]      (default: JSRT MONT SHEN universal)
# Writes docs/results/generalisation/<MODEL>_on_<DATASET>/ (pairs.csv, summary.json, table.md).
set -euo pipefail
cd "$(dirname "$0")/.."
for M in ${*:-JSRT MONT SHEN universal}; do
  for DS in JSRT MONT SHEN; do
    cxreg evaluate --method ours --model "$M" --seg-model "$M" --dataset "$DS" --quiet --overwrite \
      --out "docs/results/generalisation/${M}_on_${DS}" | sed -n 2p | sed "s/^/$M on $DS: /"
  done
done
python scripts/generalisation_tables.py
