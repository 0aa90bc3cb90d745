"""Paired comparison of two evaluation rows, and how sure their means are.

    python scripts/paired_diff.py JSRT universal_df1_segDS256tta_refine20_mw20 universal_df1_segDS256tta_refine20_mw80

reads ``docs/results/registration/<DS>_<A>/pairs.csv`` and ``<DS>_<B>/pairs.csv`` (the same ordered pairs) and
prints, per metric: both means, the mean paired difference B - A with its pair-level standard error (pairs
share images, so this understates the uncertainty), how many pairs B improves and worsens, and a 95 %
bootstrap interval of B's mean that resamples *images* (a pair's weight = how often its moving image times
how often its fixed image is drawn; 2000 draws, seeded), i.e. how much the mean would move with other test
images. Optional ``--target X`` (per metric, e.g. ``--target hd=9.23``) says whether the interval lies on the
right side of X.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

LOWER_IS_BETTER = {"hd": True, "assd": True, "jac": True, "dsc": False}


def _load(path: Path) -> dict:
    from bundle.io import InputError, read_pairs_csv

    try:
        return read_pairs_csv(path)
    except InputError as e:
        raise SystemExit(f"paired_diff: error: {e}") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--dir", default="docs/results/registration")
    p.add_argument("--metrics", nargs="+", default=["dsc", "hd", "assd"])
    p.add_argument("--target", nargs="*", default=[], help="metric=value, e.g. hd=9.23")
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    ra, rb = (_load(Path(a.dir) / f"{a.dataset}_{v}" / "pairs.csv") for v in (a.a, a.b))
    keys = sorted(set(ra) & set(rb))
    if not keys or len(keys) != len(ra) or len(keys) != len(rb):
        raise SystemExit(f"paired_diff: error: the two rows do not hold the same pairs ({len(ra)}, {len(rb)}, "
                         f"{len(keys)} shared)")
    targets = {k: float(v) for k, v in (t.split("=") for t in a.target)}
    images = sorted({k[0] for k in keys} | {k[1] for k in keys})
    rng = np.random.default_rng(a.seed)
    weights = []
    for _ in range(a.draws):
        c = Counter(rng.choice(images, len(images)))
        weights.append(np.array([c[m] * c[f] for m, f in keys], float))
    print(f"{a.dataset}: {len(keys)} pairs, {len(images)} images; B - A, B = {a.b}, A = {a.a}")
    for m in a.metrics:
        xa = np.array([float(ra[k][m]) for k in keys])
        xb = np.array([float(rb[k][m]) for k in keys])
        d = xb - xa
        boot = [float((xb * w).sum() / w.sum()) for w in weights if w.sum() > 0]
        lo, hi = np.percentile(boot, [2.5, 97.5])
        low = LOWER_IS_BETTER.get(m, True)
        better, worse = (int((d < 0).sum()), int((d > 0).sum()))[:: 1 if low else -1]
        line = (f"  {m}: A {xa.mean():.4f}  B {xb.mean():.4f}  B-A {d.mean():+.4f} (SE {d.std(ddof=1) / np.sqrt(len(d)):.4f})"
                f"  B better on {better}, worse on {worse}  B 95% image-bootstrap [{lo:.4f}, {hi:.4f}]")
        if m in targets:
            t = targets[m]
            side = hi < t if low else lo > t
            mean_ok = xb.mean() <= t if low else xb.mean() >= t
            if side:
                where = "the whole interval does"
            elif mean_ok or lo <= t <= hi:
                where = "the interval straddles it"
            else:
                where = "the whole interval misses it"
            line += f"  target {t}: mean {'meets' if mean_ok else 'misses'} it, {where}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
