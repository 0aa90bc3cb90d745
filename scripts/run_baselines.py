"""Measure the classical rows of docs/results.md: identity (all pairs), elastix and SyN (seeded samples).

    python scripts/run_baselines.py [--pairs 300] [--datasets JSRT MONT SHEN] [--methods identity elastix syn]

Each run is the same as ``cxreg evaluate --method M --dataset D --max-pairs N --seed 0 --out docs/results/D_M``.
"""

import argparse

from bundle.evaluate import evaluate, table_row

p = argparse.ArgumentParser()
p.add_argument("--pairs", type=int, default=300)
p.add_argument("--datasets", nargs="+", default=["JSRT", "MONT", "SHEN"])
p.add_argument("--methods", nargs="+", default=["identity", "elastix", "syn"])
p.add_argument("--out", default="docs/results")
a = p.parse_args()
for method in a.methods:
    for ds in a.datasets:
        n = None if method == "identity" else a.pairs
        s = evaluate(method, ds, f"{a.out}/{ds}_{method}", max_pairs=n, seed=0, progress=False)
        print(table_row(s, method), f"{s['wall_seconds']:.0f} s", flush=True)
