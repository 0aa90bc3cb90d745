#!/usr/bin/env bash
# The universal models: segmentation, autoencoder and registration trained on the union of the JSRT, MONT and
# SHEN training splits (--dataset universal), with per-image histogram equalisation (--intensity equalize) so
# that the three datasets look alike (measured by scripts/intensity_stats.py, docs/generalisation.md).
#   bash scripts/train_universal.sh [seg] [ae] [reg]      (default: all three, in this order)
# Writes models/{segmentation,autoencoder,registration}_universal.pt; logs in logs/train_*_universal.log.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${*:-seg ae reg}
run() {  # name, args...
  local name=$1; shift
  local t0=$(date +%s)
  echo "[$(date +%T)] start $name"
  python -m monai.bundle run training "$@" > "logs/train_${name}.log" 2>&1
  echo "[$(date +%T)] done  $name in $(( $(date +%s) - t0 )) s"
}
mkdir -p logs
for S in $STEPS; do
  case $S in
    seg) run segmentation_universal --config_file configs/segmentation/train.json --dataset universal \
           --intensity equalize --max_epochs 60 ;;
    ae)  run autoencoder_universal --config_file configs/autoencoder/train.json --dataset universal --max_epochs 100 ;;
    # --lambda_df 1.0 since 0.5.0 (the paper's 3.5 before): with integrated, fold-repaired fields the weaker
    # smoothness term is better on every metric and dataset (docs/registration.md#smoothness-weight)
    reg) run registration_universal --config_file "['configs/train.json','configs/presets/diffeo.json']" \
           --dataset universal --intensity equalize --lambda_df 1.0 ;;
  esac
done
