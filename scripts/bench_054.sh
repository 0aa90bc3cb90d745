#!/usr/bin/env bash
# Benchmarks of docs/registration.md with test-time refinement (sitting of 2026-12-02d, `--refine` since 0.5.4):
# 20 seeded JSRT pairs end to end at batch 1 plus the batched all-pairs row, for
#   - the default without and with 20 refinement steps (universal / universal, mask weight 40), and
#   - the most accurate JSRT row (JSRT256@tta lung masks, 20 steps, mask weight 80).
#   bash scripts/bench_054.sh     (~12 min on 2 CPU cores; run it on an idle machine)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p /tmp/bench
bench() {  # TAG SEG REFINE MASK_WEIGHT
  cxreg benchmark --dataset JSRT --model universal --seg-model "$2" --ae-model universal --methods '' --no-training \
    --refine "$3" --refine-mask-weight "$4" --out "/tmp/bench/$1.md" --json "/tmp/bench/$1.json" --quiet
  cp "/tmp/bench/$1.md" "docs/results/benchmark_$1_JSRT_2026-12-02d.md"
  grep "ours, batch" "docs/results/benchmark_$1_JSRT_2026-12-02d.md" | sed "s/^/$1: /"
}
bench universal_seg universal 0 40
bench universal_seg_refine20_mw40 universal 20 40
bench JSRT256_tta_seg_refine20_mw80 JSRT256@tta 20 80
