#!/usr/bin/env bash
# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
# The "accurate" registration bundles of docs/sharing.md (since 0.5.4): per dataset the settings of its best
# measured row in docs/registration.md -- the universal registration model, 256 x 256 lung masks with shift TTA,
# 20 refinement steps -- with that row's metrics (checked against the settings by --metrics-row).
#   bash scripts/export_accurate.sh [OUT]     (default dist/; ~1 min per bundle on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-dist}
exp() {  # DATASET SEG_MODEL MASK_WEIGHT ROW
  cxreg export --bundle registration --dataset "$1" --model universal --seg-model "$2" --refine 20 \
    --refine-mask-weight "$3" --metrics-row "$4" --name "cxreg_registration_$(echo "$1" | tr A-Z a-z)_accurate" \
    --out "$OUT" --overwrite
}
exp JSRT JSRT256@tta 80 universal_df1_segDS256tta_refine20_mw80
exp MONT MONT256@tta 40 universal_df1_segDS256tta_refine20_mw40
exp SHEN SHEN256+universal256+SHEN+universal@tta 80 universal_df1_segens4_256tta_refine20_mw80_all  # all 9900 pairs (scripts/eval_shen_seg4.sh all; since 0.5.11)
