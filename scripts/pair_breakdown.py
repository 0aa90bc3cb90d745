"""Split an evaluation's pairs.csv into the pairs that involve given images and the rest.

    python scripts/pair_breakdown.py EVAL_DIR [IMAGE_ID ...] [--worst 5]

Prints DSC / HD / ASSD / JAC means of all pairs, of the pairs where the moving or the fixed image is one of
IMAGE_ID, and of the others; then the images with the lowest mean DSC over the pairs they are in (as moving
or fixed). Defaults for IMAGE_ID: the five SHEN test images whose lung masks include the lung behind the heart
(docs/segmentation.md, "Why SHEN stays hardest").
"""

import argparse
import csv
from collections import defaultdict
from pathlib import Path

RETROCARDIAC = ["CHNCXR_0243_0", "CHNCXR_0281_0", "CHNCXR_0285_0", "CHNCXR_0292_0", "CHNCXR_0298_0"]
KEYS = ("dsc", "hd", "assd", "jac")


def means(rows):
    return {k: sum(float(r[k]) for r in rows) / len(rows) for k in KEYS} if rows else None


def line(name, rows):
    m = means(rows)
    if m is None:
        return f"| {name} | 0 | | | | |"
    return f"| {name} | {len(rows)} | {m['dsc']:.4f} | {m['hd']:.2f} | {m['assd']:.3f} | {m['jac']:.2f} |"


def at_least_one(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text}")
    return n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("eval_dir", help="an output folder of cxreg evaluate (with pairs.csv)")
    p.add_argument("ids", nargs="*", default=RETROCARDIAC, help="image ids (default: the five retrocardiac SHEN ones)")
    p.add_argument("--worst", type=at_least_one, default=5, help="how many of the worst images to list")
    a = p.parse_args(argv)
    f = Path(a.eval_dir) / "pairs.csv"
    if not f.is_file():
        p.error(f"{f}: not found")
    with open(f, newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = set(a.ids)
    with_ = [r for r in rows if r["moving"] in ids or r["fixed"] in ids]
    rest = [r for r in rows if not (r["moving"] in ids or r["fixed"] in ids)]
    print(f"{f}\n\n| pairs | n | DSC | HD | ASSD | JAC |\n|---|---|---|---|---|---|")
    print(line("all", rows))
    print(line(f"with one of the {len(ids)} images", with_))
    print(line("without them", rest))
    per = defaultdict(list)
    for r in rows:
        per[r["moving"]].append(float(r["dsc"]))
        per[r["fixed"]].append(float(r["dsc"]))
    worst = sorted(per, key=lambda i: sum(per[i]) / len(per[i]))[:a.worst]
    print("\nlowest mean DSC over the pairs an image is in:")
    for i in worst:
        print(f"  {i}: {sum(per[i]) / len(per[i]):.4f} ({len(per[i])} pairs)")


if __name__ == "__main__":
    main()
