#!/usr/bin/env bash
# Table 1 rows with fix_folds on (bundle.spatial.remove_folds: the output field smoothed locally where det J <= 0;
# on in the shipped models since 0.5.0), to compare with the same rows measured before (fix_folds off, the raw
# network field): the universal model with the universal segmentation, with the DS+universal ensemble, with a
# second universal segmentation model (universal+U2, dataset-free) and with the ensemble + 20 refinement steps;
# each dataset's own model alone, with the ensemble and with 20 refinement steps. All ordered test pairs at 256 x 256 (SHEN's refinement
# row: a seeded 2000-pair sample).
#   bash scripts/eval_fixfolds.sh [DATASETS...]     (default JSRT MONT SHEN; ~32 min on 2 CPU cores)
#   U2=runs/segmentation_universal_s1/best.pt ROWS=universal_u2 bash scripts/eval_fixfolds.sh
#       (the universal_u2 row needs a second universal segmentation model, docs/registration.md; not shipped)
# Writes docs/results/registration/<DS>_<row>_ff/ (pairs.csv, summary.json, table.md).
set -euo pipefail
cd "$(dirname "$0")/.."
U2=${U2:-}
ROWS=${ROWS:-"universal universal_ens shipped shipped_ens shipped_refine20 universal_ens_refine20"}
R=docs/results/registration
row() {  # name dataset args...
  local name=$1 ds=$2; shift 2
  cxreg evaluate --method ours --dataset "$ds" --quiet --overwrite --fix-folds on --out "$R/${ds}_${name}_ff" "$@" \
    | sed -n 2p | sed "s/^/$ds ${name}_ff: /"
}
for DS in ${*:-JSRT MONT SHEN}; do
  SAMPLE=(); [ "$DS" = SHEN ] && SAMPLE=(--max-pairs 2000 --seed 0)
  for ROW in $ROWS; do
    case $ROW in
      universal) row universal "$DS" --model universal --seg-model universal ;;
      universal_ens) row universal_ens "$DS" --model universal --seg-model "$DS+universal" ;;
      universal_u2) [ -n "$U2" ] || { echo "universal_u2: set U2=PATH (a second universal segmentation model)"; exit 2; }
                    row universal_u2 "$DS" --model universal --seg-model "universal+$U2" ;;
      shipped) row shipped "$DS" --model "$DS" --seg-model "$DS" ;;
      shipped_ens) row shipped_ens "$DS" --model "$DS" --seg-model "$DS+universal" ;;
      shipped_refine20) row shipped_refine20 "$DS" --model "$DS" --seg-model "$DS" --refine 20 --refine-mask-weight 1 "${SAMPLE[@]}" ;;
      universal_ens_refine20) row universal_ens_refine20 "$DS" --model universal --seg-model "$DS+universal" \
                                --refine 20 --refine-mask-weight 1 "${SAMPLE[@]}" ;;
    esac
  done
done
