"""The fix_folds table of docs/registration.md: each row measured with the raw network field and with
``--fix-folds on`` (``<DS>_<row>`` against ``<DS>_<row>_ff`` in docs/results/registration/).

    python scripts/fixfolds_table.py [--rows universal universal_ens ...]

Columns: DSC / HD / ASSD means, folded pixels in total and the pairs they sit in (exact, from pairs.csv), and
how many pairs changed DSC at all.
"""

import argparse
import csv
import json
from pathlib import Path

R = Path("docs/results/registration")
p = argparse.ArgumentParser()
p.add_argument("--rows", nargs="+", default=["universal", "universal_ens", "shipped", "shipped_ens",
                                              "universal_ens_refine20"])
p.add_argument("--datasets", nargs="+", default=["JSRT", "MONT", "SHEN"])
a = p.parse_args()


def load(d):
    s = json.loads((d / "summary.json").read_text())["metrics"]
    rows = {(r["moving"], r["fixed"]): r for r in csv.DictReader(open(d / "pairs.csv"))}
    return s, rows


print("| Dataset | row | fix_folds | DSC | HD | ASSD | folded pixels (pairs) | pairs | pairs whose DSC changed |")
print("|---|---|---|---|---|---|---|---|---|")
for ds in a.datasets:
    for row in a.rows:
        raw_dir = R / f"{ds}_{row}"
        ff_dir = R / f"{ds}_{row}_ff"
        if not (raw_dir / "pairs.csv").is_file() or not (ff_dir / "pairs.csv").is_file():
            continue
        (sr, rr), (sf, rf) = load(raw_dir), load(ff_dir)
        common = rr.keys() & rf.keys()
        changed = sum(float(rr[k]["dsc"]) != float(rf[k]["dsc"]) for k in common)
        for label, s, rows, extra in (("off", sr, rr, ""), ("on", sf, rf, str(changed))):
            jac = [int(float(r["jac"])) for r in rows.values()]
            print(f"| {ds} | {row} | {label} | {s['dsc']['mean']:.4f} | {s['hd']['mean']:.2f} | "
                  f"{s['assd']['mean']:.3f} | {sum(jac)} ({sum(j > 0 for j in jac)}) | {len(jac)} | {extra} |")
