#!/usr/bin/env bash
# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
# Benchmarks of docs/registration.md, fourth sitting (2026-12-02d; `cxreg benchmark --refine` since 0.5.4):
# 20 seeded JSRT pairs end to end at batch 1 plus the batched all-pairs row, for the JSRT Pareto front --
#   universal_seg                    the default (universal / universal lung masks), no refinement
#   universal_seg_refine20_mw40      the default + 20 refinement steps (mask weight 40, the default weight)
#   JSRT256_tta_seg_refine20_mw80    the most accurate JSRT row (JSRT256@tta lung masks, 20 steps, weight 80)
#   universal256_seg, JSRT256_seg, JSRT256_tta_seg   256 x 256 lung masks without refinement
# and first the machine-speed probe of scripts/bench_equalize.py (0.24 ms per image in the fastest sitting).
#   bash scripts/bench_054.sh [TAG ...]     (default: all six, ~25 min on 2 CPU cores; run it on an idle machine)
# SITTING=<date> names a later sitting's report files (default 2026-12-02d, the fourth sitting).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p /tmp/bench
SITTING=${SITTING:-2026-12-02d}
python scripts/bench_equalize.py | grep "^| 1 x"
declare -A SEG=([universal_seg]=universal [universal_seg_refine20_mw40]=universal
  [JSRT256_tta_seg_refine20_mw80]=JSRT256@tta [universal256_seg]=universal256 [JSRT256_seg]=JSRT256
  [JSRT256_tta_seg]=JSRT256@tta)
declare -A REFINE=([universal_seg_refine20_mw40]="20 40" [JSRT256_tta_seg_refine20_mw80]="20 80")
for TAG in ${*:-universal_seg universal_seg_refine20_mw40 JSRT256_tta_seg_refine20_mw80 universal256_seg JSRT256_seg JSRT256_tta_seg}; do
  read -r STEPS WEIGHT <<< "${REFINE[$TAG]:-0 40}"
  cxreg benchmark --dataset JSRT --model universal --seg-model "${SEG[$TAG]}" --ae-model universal --methods '' \
    --no-training --refine "$STEPS" --refine-mask-weight "$WEIGHT" --out "/tmp/bench/$TAG.md" \
    --json "/tmp/bench/$TAG.json" --quiet
  cp "/tmp/bench/$TAG.md" "docs/results/benchmark_${TAG}_JSRT_${SITTING}.md"
  grep "ours, batch" "docs/results/benchmark_${TAG}_JSRT_${SITTING}.md" | sed "s/^/$TAG: /"
done
