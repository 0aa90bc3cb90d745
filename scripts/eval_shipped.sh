#!/usr/bin/env bash
# Table 1 rows of the shipped models (models/registration_<DS>.pt with the shipped segmentation models as
# attention) on all ordered test pairs, without and with test-time refinement.
#   bash scripts/eval_shipped.sh [DATASETS...]        (default: JSRT MONT SHEN; REFINE=20 steps)
# Writes docs/results/registration/<DS>_shipped/ and <DS>_shipped_refine<REFINE>/ (pairs.csv, summary.json,
# table.md, train_summary.json = the training record of the registration weights).
set -euo pipefail
cd "$(dirname "$0")/.."
REFINE=${REFINE:-20}
for DS in ${*:-JSRT MONT SHEN}; do
  for R in 0 "$REFINE"; do
    OUT="docs/results/registration/${DS}_shipped$([ "$R" = 0 ] || echo "_refine$R")"
    cxreg evaluate --method ours --dataset "$DS" --refine "$R" --refine-mask-weight 1 --quiet --overwrite --out "$OUT" | sed -n 2p
    [ -f "docs/results/registration/${DS}_diffeo/train_summary.json" ] && \
      cp "docs/results/registration/${DS}_diffeo/train_summary.json" "$OUT/train_summary.json"
  done
done
