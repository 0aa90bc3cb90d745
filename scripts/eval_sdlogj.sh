#!/usr/bin/env bash
# SDlogJ (std of log det J, since 0.5.10) of the shipped default model and of the classical baselines
# (docs/registration.md, "Field regularity: SDlogJ"). Outputs in docs/results/sdlogj/<DATASET>_<ROW>/.
#   bash scripts/eval_sdlogj.sh            (5 min 14 s on 2 CPU cores on 2026-12-06; elastix and SyN ~1 s per pair)
# then: python scripts/sdlogj_table.py
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/results/sdlogj
mkdir -p "$out"
ev() { cxreg evaluate --quiet --overwrite "$@"; }
# the default model (universal, fold removal on), all ordered test pairs (SHEN: a seeded 2000-pair sample)
ev --method ours --model universal --dataset JSRT --out "$out/JSRT_universal"
ev --method ours --model universal --dataset MONT --out "$out/MONT_universal"
ev --method ours --model universal --dataset SHEN --max-pairs 2000 --seed 0 --out "$out/SHEN_universal_2000"
# the same 100 seeded JSRT pairs for ours and the two baselines
for m in ours elastix syn; do
  ev --method "$m" --model universal --dataset JSRT --max-pairs 100 --seed 0 --out "$out/JSRT_${m}_100"
done
