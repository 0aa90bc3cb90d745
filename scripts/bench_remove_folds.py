# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Time bundle.spatial.remove_folds on synthetic folded fields (one thread, mean of --reps calls):

    python scripts/bench_remove_folds.py [--reps 30]

Fields: two Gaussian bumps on a 256 x 256 grid (folds at default settings) and the wide fold of
tests/test_spatial.py with grow_every=5 (its neighbourhood grows: the case the separable dilation of 0.5.11 speeds up).
"""
from __future__ import annotations

import argparse
import time

import torch

from bundle.spatial import identity_grid, remove_folds


def bump(n, amp, sigma, cy, cx):
    g = identity_grid((n, n)).reshape(2, n, n)
    u = torch.zeros(1, 2, n, n)
    u[0, 0] = amp * torch.exp(-((g[0] - cy) ** 2 + (g[1] - cx) ** 2) / (2 * sigma ** 2))
    return u


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    cases = [("two folds, 256x256, defaults", bump(256, 12.0, 4.0, 128, 100) + bump(256, 12.0, 4.0, 60, 200), {}),
             ("wide fold, 160x160, grow_every=5", bump(160, 30.0, 8.0, 80, 80), {"grow_every": 5})]
    for name, u, kw in cases:
        remove_folds(u, **kw)
        reps = a.reps if not kw else max(1, a.reps // 10)
        t = time.perf_counter()
        for _ in range(reps):
            _, left = remove_folds(u, **kw)
        print(f"{name}: {1000 * (time.perf_counter() - t) / reps:.1f} ms per call ({reps} calls), "
              f"{int(left.sum())} folded pixels left")


if __name__ == "__main__":
    main()
