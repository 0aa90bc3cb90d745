#!/usr/bin/env bash
# Lane A, revised (one thread): shippable variant on MONT and SHEN, then JSRT ablations (20 epochs each).
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
while pgrep -f "scripts/run_registration.sh" >/dev/null; do sleep 10; done
VAR=${SHIP_VARIANT:-diffeo}
echo "[$(date +%T)] MONT $VAR"; bash scripts/run_registration.sh MONT "$VAR"
while [ ! -f models/autoencoder_SHEN.pt ]; do sleep 15; done
echo "[$(date +%T)] SHEN $VAR"; bash scripts/run_registration.sh SHEN "$VAR"
for spec in "paper20 --max_epochs 20" "noattention20 --max_epochs 20 --attention False" \
            "nossim20 --max_epochs 20 --lambda_ssim 0" "scales1_20 --max_epochs 20 --num_scales 1" \
            "scales2_20 --max_epochs 20 --num_scales 2" "scales3_20 --max_epochs 20 --num_scales 3"; do
  set -- $spec; name=$1; shift
  echo "[$(date +%T)] JSRT $name"; bash scripts/run_registration.sh JSRT "$name" "$@"
done
echo "[$(date +%T)] lane A done"
