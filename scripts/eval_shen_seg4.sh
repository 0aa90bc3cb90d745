#!/usr/bin/env bash
# SHEN with four lung-mask models averaged (SHEN256+universal256+SHEN+universal@tta; since 0.5.11) instead of the
# two of scripts/eval_shen_all.sh, otherwise the same settings (the shipped universal registration model, 20
# refinement steps with mask weight 80, fix_folds on). Writes docs/results/registration/SHEN_<row>/.
#   bash scripts/eval_shen_seg4.sh sample   the seeded 2000-pair sample (--max-pairs 2000 --seed 0; ~4-5 min on 2 CPU cores)
#   bash scripts/eval_shen_seg4.sh all      all 9900 ordered test pairs (~20-25 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/universal_rows.sh
SEG="SHEN256+universal256+SHEN+universal@tta"
case "${1:-all}" in
  sample) row universal_df1_segens4_256tta_refine20_mw80 SHEN --seg-model "$SEG" --refine 20 --refine-mask-weight 80 \
            --max-pairs 2000 --seed 0 ;;
  all) row universal_df1_segens4_256tta_refine20_mw80_all SHEN --seg-model "$SEG" --refine 20 --refine-mask-weight 80 ;;
  *) echo "usage: bash scripts/eval_shen_seg4.sh sample|all" >&2; exit 2 ;;
esac
