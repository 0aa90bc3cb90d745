#!/usr/bin/env bash
# Rows of docs/registration.md "Shift TTA of the lung masks, a heavier mask term, a boundary term (0.5.2)": the
# shipped universal registration model (lambda_df 1.0, fix_folds on) with the @tta (5 shifted passes) lung masks,
# --refine-mask-weight 6 / 10 / 20, 40 steps, and the refinement's boundary term (--refine-distance-weight). All
# ordered test pairs at 256 x 256; SHEN's refinement rows: the seeded 2000-pair sample of the other refinement rows.
#   bash scripts/eval_tta.sh [DATASETS...]     (default JSRT MONT SHEN; ~75 min on 2 CPU cores)
# Writes docs/results/registration/<DS>_universal_df1_seg*tta*/ and <DS>_universal_df1_segDS256_refine*/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/universal_rows.sh
for DS in ${*:-JSRT MONT SHEN}; do
  SAMPLE=(); [ "$DS" = SHEN ] && SAMPLE=(--max-pairs 2000 --seed 0)
  row universal_df1_seg256tta "$DS" --seg-model universal256@tta
  row universal_df1_segDS256tta "$DS" --seg-model "${DS}256@tta"
  row universal_df1_segDS256tta_refine20_mw6 "$DS" --seg-model "${DS}256@tta" --refine 20 --refine-mask-weight 6 "${SAMPLE[@]}"
  row universal_df1_segDS256tta_refine20_mw10 "$DS" --seg-model "${DS}256@tta" --refine 20 --refine-mask-weight 10 "${SAMPLE[@]}"
  [ "$DS" = SHEN ] && continue
  row universal_df1_segDS256_refine20_mw6 "$DS" --seg-model "${DS}256" --refine 20 --refine-mask-weight 6
  row universal_df1_segDS256tta_refine20_mw6_d1 "$DS" --seg-model "${DS}256@tta" --refine 20 --refine-mask-weight 6 \
    --refine-distance-weight 1
  [ "$DS" = MONT ] && continue
  row universal_df1_segDS256tta_refine20_mw3 "$DS" --seg-model "${DS}256@tta" --refine 20 --refine-mask-weight 3
  row universal_df1_segDS256_refine20_mw3_d1 "$DS" --seg-model "${DS}256" --refine 20 --refine-mask-weight 3 \
    --refine-distance-weight 1
  row universal_df1_segDS256_refine20_mw3_d4 "$DS" --seg-model "${DS}256" --refine 20 --refine-mask-weight 3 \
    --refine-distance-weight 4
  row universal_df1_segDS256tta_refine20_mw20 "$DS" --seg-model "${DS}256@tta" --refine 20 --refine-mask-weight 20
  row universal_df1_segDS256tta_refine20_mw10_d1 "$DS" --seg-model "${DS}256@tta" --refine 20 --refine-mask-weight 10 \
    --refine-distance-weight 1
  row universal_df1_segDS256tta_refine40_mw6 "$DS" --seg-model "${DS}256@tta" --refine 40 --refine-mask-weight 6
done
