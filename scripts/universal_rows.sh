# Sourced by scripts/eval_seg256.sh and scripts/eval_tta.sh: row NAME DATASET ARGS... evaluates the shipped
# universal registration model (fix_folds on) on all ordered test pairs of DATASET into
# docs/results/registration/<DATASET>_<NAME>/ and prints its DSC/HD/ASSD/JAC line.
R=docs/results/registration
row() {  # name dataset args...
  local name=$1 ds=$2; shift 2
  cxreg evaluate --method ours --dataset "$ds" --model universal --quiet --overwrite --fix-folds on \
    --out "$R/${ds}_${name}" "$@" | sed -n 2p | sed "s/^/$ds ${name}: /"
}
