"""How good is a setting that was picked on the test pairs? Two-fold cross-validated selection over images.

    python scripts/select_cv.py JSRT universal_df1_segDS256tta_refine20_mw10 universal_df1_segDS256tta_refine20_mw20 \\
        universal_df1_segDS256tta_refine20_mw40 universal_df1_segDS256tta_refine20_mw80 --metric hd --target 9.23

reads ``docs/results/registration/<DS>_<ROW>/pairs.csv`` for each candidate row (the same ordered pairs). There is
no validation split of pairs, so a setting chosen by its test mean is optimistic. This script measures by how
much: it splits the test *images* at random into two halves (``--splits`` times, seeded); on each half it picks the
row with the best mean ``--metric`` over the pairs whose two images both lie in that half, and scores that choice
on the pairs of the *other* half (no image shared between choosing and scoring). Printed:

* ``cross-validated``: the mean of the chosen rows on the scoring pairs, averaged over the splits: what picking
  a row this way delivers on images it has not seen;
* every row's own mean on the same scoring pairs (so the optimism of picking the best one is their gap);
* how often each row was chosen, and, with ``--target``, in how many splits the cross-validated mean meets it.

``--exclude ID ...`` drops every pair that involves those images first (e.g. images whose labels follow another
convention). With one row it just prints that row's means over the remaining pairs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

LOWER_IS_BETTER = {"hd": True, "assd": True, "jac": True, "dsc": False}


def _load(path: Path) -> dict:
    from bundle.io import InputError, read_pairs_csv

    try:
        return read_pairs_csv(path)
    except InputError as e:
        raise SystemExit(f"select_cv: error: {e}") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset")
    p.add_argument("rows", nargs="+", help="candidate rows (folder suffixes after <DATASET>_)")
    p.add_argument("--dir", default="docs/results/registration")
    p.add_argument("--metric", default="hd", choices=sorted(LOWER_IS_BETTER))
    p.add_argument("--target", type=float, default=None)
    p.add_argument("--splits", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude", nargs="*", default=[], help="image ids whose pairs are dropped")
    a = p.parse_args(argv)
    rows = [_load(Path(a.dir) / f"{a.dataset}_{r}" / "pairs.csv") for r in a.rows]
    keys = sorted(set.intersection(*(set(r) for r in rows)))
    if not keys or any(len(r) != len(keys) for r in rows):
        raise SystemExit(f"select_cv: error: the rows do not hold the same pairs ({[len(r) for r in rows]}, "
                         f"{len(keys)} shared)")
    excl = set(a.exclude)
    unknown = excl - {k[0] for k in keys} - {k[1] for k in keys}
    if unknown:
        raise SystemExit(f"select_cv: error: --exclude names images not in the rows: {sorted(unknown)}")
    keys = [k for k in keys if k[0] not in excl and k[1] not in excl]
    images = sorted({k[0] for k in keys} | {k[1] for k in keys})
    low = LOWER_IS_BETTER[a.metric]
    x = np.array([[float(r[k][a.metric]) for k in keys] for r in rows])  # (rows, pairs)
    print(f"{a.dataset}: {len(keys)} pairs, {len(images)} images" + (f" ({len(excl)} excluded)" if excl else ""))
    for name, r in zip(a.rows, rows):
        print(f"  {name}: " + "  ".join(f"{m} {np.mean([float(r[k][m]) for k in keys]):.4f}"
                                         for m in ("dsc", "hd", "assd")))
    if len(rows) == 1:
        return 0
    idx = {im: i for i, im in enumerate(images)}
    mov = np.array([idx[k[0]] for k in keys])
    fix = np.array([idx[k[1]] for k in keys])
    rng = np.random.default_rng(a.seed)
    cv, fixed, chosen = [], [], np.zeros(len(rows), int)
    for _ in range(a.splits):
        half = rng.permutation(len(images)) < len(images) // 2
        total, count, per_row = 0.0, 0, np.zeros(len(rows))
        for side in (True, False):
            tune = (half[mov] == side) & (half[fix] == side)
            score = (half[mov] != side) & (half[fix] != side)
            means = x[:, tune].mean(1)
            best = int(np.argmin(means) if low else np.argmax(means))
            chosen[best] += 1
            total += x[best, score].sum()
            count += int(score.sum())
            per_row += x[:, score].sum(1)
        cv.append(total / count)
        fixed.append(per_row / count)
    cv, fixed = np.array(cv), np.array(fixed)
    lo, hi = np.percentile(cv, [2.5, 97.5])
    print(f"{a.metric}, {a.splits} random halvings of the images (choose on one half, score on the other):")
    print(f"  cross-validated: {cv.mean():.4f} (2.5-97.5 % over halvings {lo:.4f}-{hi:.4f})")
    for name, m, c in zip(a.rows, fixed.mean(0), chosen):
        print(f"  {name}: {m:.4f} on the same scoring pairs; chosen {c} of {2 * a.splits}")
    if a.target is not None:
        ok = (cv <= a.target) if low else (cv >= a.target)
        meets = cv.mean() <= a.target if low else cv.mean() >= a.target
        print(f"  target {a.target}: cross-validated mean {'meets' if meets else 'misses'} it; met in "
              f"{int(ok.sum())} of {a.splits} halvings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
