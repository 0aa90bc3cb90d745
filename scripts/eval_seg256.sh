#!/usr/bin/env bash
# Table 1 rows of the shipped universal registration model (lambda_df 1.0, fix_folds on) with the 256 x 256
# segmentation models (docs/segmentation.md) as attention: universal256 alone, averaged with the dataset's own
# 128 model (DS+universal256) and with 20 refinement steps; the dataset's DS256 alone, with 20 refinement steps
# (JSRT) and with 20 steps at --refine-mask-weight 3 (mw3). All ordered test pairs at 256 x 256; SHEN's
# refinement rows: the seeded 2000-pair sample of the other refinement rows.
#   bash scripts/eval_seg256.sh [DATASETS...]     (default JSRT MONT SHEN; ~60 min on 2 CPU cores)
# Writes docs/results/registration/<DS>_universal_df1_seg{256,DS256}*/. (The committed folders were made with
# the same weight files given by their runs/ paths; their summary.json "options" say so where recorded.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/universal_rows.sh
for DS in ${*:-JSRT MONT SHEN}; do
  SAMPLE=(); [ "$DS" = SHEN ] && SAMPLE=(--max-pairs 2000 --seed 0)
  row universal_df1_seg256 "$DS" --seg-model universal256
  row universal_df1_seg256_ens "$DS" --seg-model "$DS+universal256"
  row universal_df1_seg256_refine20 "$DS" --seg-model universal256 --refine 20 --refine-mask-weight 1 "${SAMPLE[@]}"
  row universal_df1_segDS256 "$DS" --seg-model "${DS}256"
  [ "$DS" = JSRT ] && row universal_df1_segDS256_refine20 "$DS" --seg-model "${DS}256" --refine 20 --refine-mask-weight 1
  row universal_df1_segDS256_refine20_mw3 "$DS" --seg-model "${DS}256" --refine 20 --refine-mask-weight 3 "${SAMPLE[@]}"
done
