#!/usr/bin/env bash
# Batch-1 benchmarks of docs/registration.md (sitting of 2026-12-02c): the default (universal / universal) and
# the most accurate lung masks (JSRT256@tta), 20 seeded JSRT pairs end to end plus the batched all-pairs row.
#   bash scripts/bench_053.sh     (~4 min on 2 CPU cores; run it on an idle machine)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p /tmp/bench
for SEG in universal JSRT256@tta; do
  TAG=${SEG/@/_}
  cxreg benchmark --dataset JSRT --model universal --seg-model "$SEG" --ae-model universal --methods '' --no-training \
    --out "/tmp/bench/$TAG.md" --json "/tmp/bench/$TAG.json" --quiet
  cp "/tmp/bench/$TAG.md" "docs/results/benchmark_${TAG}_seg_JSRT_2026-12-02c.md"
  grep "ours, batch" "docs/results/benchmark_${TAG}_seg_JSRT_2026-12-02c.md" | sed "s/^/$SEG: /"
done
