#!/usr/bin/env bash
# Lane B of this session's compute plan (one thread): SHEN priors, classical baselines, CE-only prior ablations.
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1
run() { local name=$1 cfg=$2; shift 2; local t0=$(date +%s); echo "[$(date +%T)] start $name"
  python -m monai.bundle run training --config_file "$cfg" "$@" > "logs/train_$name.log" 2>&1
  echo "[$(date +%T)] done  $name in $(( $(date +%s) - t0 )) s (exit $?)"; }
run segmentation_SHEN configs/segmentation/train.json --dataset SHEN --num_workers 1
run autoencoder_SHEN configs/autoencoder/train.json --dataset SHEN
echo "[$(date +%T)] baselines"
python scripts/run_baselines.py --methods elastix --datasets MONT SHEN >> logs/baselines.log 2>&1
python scripts/run_baselines.py --methods syn >> logs/baselines.log 2>&1
echo "[$(date +%T)] baselines done"
for DS in JSRT MONT SHEN; do
  run "segmentation_${DS}_ce" configs/segmentation/train.json --dataset "$DS" --contour_weight 0 \
      --output_dir "runs/segmentation_${DS}_ce" --model_path "runs/segmentation_${DS}_ce/final.pt"
  run "autoencoder_${DS}_ce" configs/autoencoder/train.json --dataset "$DS" --contour_weight 0 \
      --output_dir "runs/autoencoder_${DS}_ce" --model_path "runs/autoencoder_${DS}_ce/final.pt"
done
echo "[$(date +%T)] lane B done"
