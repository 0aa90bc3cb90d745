#!/usr/bin/env bash
# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
# HD95 (since 0.5.5) for the default and the most accurate rows: the same settings as the rows without the _v055
# suffix, rerun on all ordered test pairs with 0.5.5's harness (pairs.csv and summary.json gain hd95; DSC, HD and
# ASSD should repeat those rows). Writes docs/results/registration/<DS>_<row>_v055/.
#   bash scripts/eval_hd95.sh        (~40 min on 2 CPU cores; SHEN's accurate row alone ~30 min, last)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/universal_rows.sh
for DS in JSRT MONT SHEN; do
  row universal_df1_v055 "$DS"
done
row universal_df1_segDS256tta_refine20_mw80_v055 JSRT --seg-model JSRT256@tta --refine 20 --refine-mask-weight 80
row universal_df1_segDS256tta_refine20_mw40_v055 MONT --seg-model MONT256@tta --refine 20 --refine-mask-weight 40
row universal_df1_segens256tta_refine20_mw80_all_v055 SHEN --seg-model "SHEN256+universal256@tta" --refine 20 \
  --refine-mask-weight 80
