#!/usr/bin/env bash
# Lane A of this session's compute plan (one thread): registration variants per dataset.
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
while pgrep -f "config_file configs/train.json$" >/dev/null; do sleep 10; done
mkdir -p runs/registration_JSRT_paper docs/results/registration
cp models/registration_JSRT.pt runs/registration_JSRT_paper/final.pt
cp runs/registration_JSRT/summary.json runs/registration_JSRT_paper/summary.json
echo "[$(date +%T)] eval JSRT paper"
cxreg evaluate --method ours --model runs/registration_JSRT_paper/final.pt --seg-model JSRT --dataset JSRT --quiet --overwrite \
  --out docs/results/registration/JSRT_paper | tail -3
cp runs/registration_JSRT_paper/summary.json docs/results/registration/JSRT_paper/train_summary.json
echo "[$(date +%T)] JSRT diffeo"; bash scripts/run_registration.sh JSRT diffeo
echo "[$(date +%T)] MONT paper"; bash scripts/run_registration.sh MONT paper
echo "[$(date +%T)] MONT diffeo"; bash scripts/run_registration.sh MONT diffeo
while [ ! -f models/autoencoder_SHEN.pt ]; do sleep 15; done
echo "[$(date +%T)] SHEN paper"; bash scripts/run_registration.sh SHEN paper
echo "[$(date +%T)] SHEN diffeo"; bash scripts/run_registration.sh SHEN diffeo
echo "[$(date +%T)] lane A done"
