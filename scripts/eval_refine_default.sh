#!/usr/bin/env bash
# Rows of docs/registration.md "Heavier mask terms, once more; ... (since 0.5.3)", last bullet: the refinement's mask weight with the *default*
# lung masks (the universal segmentation at 128): --refine 20 with --refine-mask-weight 1 (the old default),
# 40 and 80, on all ordered test pairs at 256 x 256 (SHEN: the seeded 2000-pair sample).
#   bash scripts/eval_refine_default.sh [DATASETS...]     (default JSRT MONT; ~4 min per JSRT row, 1 per MONT row)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/universal_rows.sh
for DS in ${*:-JSRT MONT}; do
  SAMPLE=(); [ "$DS" = SHEN ] && SAMPLE=(--max-pairs 2000 --seed 0)
  for W in 1 40 80; do
    row "universal_df1_refine20_mw$W" "$DS" --refine 20 --refine-mask-weight "$W" "${SAMPLE[@]}"
  done
done
