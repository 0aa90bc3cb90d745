#!/usr/bin/env bash
# Segmentation models at 256 x 256 (since 0.5.1; docs/segmentation.md): the universal model fine-tuned at
# --work_size 256 (universal256), then that model fine-tuned on each dataset at 256 (JSRT256, MONT256, SHEN256).
# No downsampling of the 256 x 256 images; the working size is stored in the weights.
#   bash scripts/train_seg256.sh [universal] [JSRT] [MONT] [SHEN]     (default: all four, in this order)
# Writes models/segmentation_<NAME>256.pt and runs/segmentation_<NAME>256/; logs in logs/train_segmentation_*256.log.
# Wall time on 2 CPU cores: universal 24.8 min, JSRT 9.0 min, MONT 4.8 min, SHEN 19.6 min (58 min in all).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p logs
for S in ${*:-universal JSRT MONT SHEN}; do
  t0=$(date +%s)
  echo "[$(date +%T)] start ${S}256"
  if [ "$S" = universal ]; then  # from the 128 x 128 universal model
    ARGS=(--dataset universal --intensity equalize --init models/segmentation_universal.pt --max_epochs 15
          --learning_rate 0.0005 --val_interval 3)
  else                           # from universal256; keeps its histogram equalisation (stored in the weights)
    ARGS=(--dataset "$S" --init models/segmentation_universal256.pt --max_epochs 20 --learning_rate 0.0003
          --val_interval 4)
  fi
  python -m monai.bundle run training --config_file configs/segmentation/train.json --work_size 256 "${ARGS[@]}" \
    --output_dir "runs/segmentation_${S}256" --model_path "models/segmentation_${S}256.pt" \
    > "logs/train_segmentation_${S}256.log" 2>&1
  echo "[$(date +%T)] done  ${S}256 in $(( $(date +%s) - t0 )) s"
done
