"""Print the Table-1 style Markdown from evaluation outputs, next to the paper's rows.

    python scripts/results_table.py [--dir docs/results] [--methods identity elastix syn ours]

Reads <dir>/<DATASET>_<method>/summary.json as written by `cxreg evaluate ... --out <dir>/<DATASET>_<method>`;
a method written SUB/NAME reads <dir>/SUB/<DATASET>_<NAME>/ (e.g. registration/diffeo), and
generalisation/MODEL reads <dir>/generalisation/<MODEL>_on_<DATASET>/ (e.g. generalisation/universal).
"""

import argparse
import json
from pathlib import Path

from bundle.evaluate import PAPER_TABLE1

p = argparse.ArgumentParser()
p.add_argument("--dir", default="docs/results")
p.add_argument("--methods", nargs="+", default=["identity", "elastix", "syn"])
p.add_argument("--paper", nargs="*", default=["SimpleElastix", "SyN", "AC-RegNet", "Ours (paper)"])
a = p.parse_args()


def cell(s, k, nd=3):
    return f"{s[k]['mean']:.{nd}f} ({s[k]['std']:.{nd}f})"


print("| Dataset | Method | DSC | HD | ASSD | JAC | JAC % | pairs | s/pair | source |")
print("|---|---|---|---|---|---|---|---|---|---|")
for ds in ("JSRT", "MONT", "SHEN"):
    for m in a.methods:
        sub, _, name = m.rpartition("/")
        f = Path(a.dir) / sub / (f"{name}_on_{ds}" if sub == "generalisation" else f"{ds}_{name}") / "summary.json"
        if not f.is_file():
            continue
        s = json.loads(f.read_text())
        mt = s["metrics"]
        label = f"ours ({name})" if sub in ("registration", "generalisation") else m
        print(f"| {ds} | {label} | {cell(mt, 'dsc')} | {cell(mt, 'hd', 2)} | {cell(mt, 'assd', 2)} | {cell(mt, 'jac', 1)} | "
              f"{mt['jac_pct']['mean']:.3f} | {s['n_pairs']}{' (all)' if s['all_pairs'] else ''} | "
              f"{mt['seconds']['median']:.3f} | measured |")
    for name in a.paper:
        dsc, hd, assd, jac = PAPER_TABLE1[ds][name].split(" | ")
        print(f"| {ds} | {name} | {dsc} | {hd} | {assd} | {jac} | | | | paper Table 1 |")
