#!/usr/bin/env bash
# Ablations on JSRT, 12 epochs each (600 iterations, all variants equal), after the running registration job.
#   bash scripts/lane_a3.sh NAME:OVERRIDES ...   e.g. "noattention12:--attention False"
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
while pgrep -f "scripts/run_registration.sh" >/dev/null; do sleep 10; done
while [ -n "${WAIT_FOR:-}" ] && pgrep -f "$WAIT_FOR" >/dev/null; do sleep 10; done
for spec in "$@"; do
  name=${spec%%:*}; over=${spec#*:}
  echo "[$(date +%T)] JSRT $name ($over)"
  bash scripts/run_registration.sh JSRT "$name" --max_epochs 12 $over
done
echo "[$(date +%T)] done"
