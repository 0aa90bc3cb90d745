#!/usr/bin/env bash
# SHEN's most accurate row on ALL 9900 ordered test pairs (the doc rows before 0.5.5 were the seeded 2000-pair
# sample): the shipped universal registration model, SHEN256+universal256@tta lung masks, 20 refinement steps with
# mask weight 80, fix_folds on. Writes docs/results/registration/SHEN_universal_df1_segens256tta_refine20_mw80_all/.
#   bash scripts/eval_shen_all.sh       (~22-35 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/universal_rows.sh
row universal_df1_segens256tta_refine20_mw80_all SHEN --seg-model "SHEN256+universal256@tta" \
  --refine 20 --refine-mask-weight 80
