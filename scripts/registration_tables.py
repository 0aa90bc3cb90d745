"""Markdown tables for docs/registration.md from docs/results/registration/<DATASET>_<VARIANT>/.

    python scripts/registration_tables.py [--variants paper diffeo ...] [--datasets JSRT MONT SHEN]

Each row: DSC / HD / ASSD / JAC mean (std) over all ordered test pairs at 256x256, p90 of HD, ms per pair
(median, registration only), training wall time and machine (from train_summary.json).
"""

import argparse
import json
from pathlib import Path

from bundle.evaluate import PAPER_TABLE1

p = argparse.ArgumentParser()
p.add_argument("--dir", default="docs/results/registration")
p.add_argument("--variants", nargs="+", default=None)
p.add_argument("--datasets", nargs="+", default=["JSRT", "MONT", "SHEN"])
p.add_argument("--paper", action="store_true", help="add the paper's 'Ours' row per dataset")
a = p.parse_args()


def c(s, k, nd):
    return f"{s[k]['mean']:.{nd}f} ({s[k]['std']:.{nd}f})"


print("| Dataset | Variant | DSC | HD | HD p90 | ASSD | JAC | pairs | ms/pair | training |")
print("|---|---|---|---|---|---|---|---|---|---|")
for ds in a.datasets:
    dirs = sorted(Path(a.dir).glob(f"{ds}_*"))
    if a.variants:
        dirs = [Path(a.dir) / f"{ds}_{v}" for v in a.variants if (Path(a.dir) / f"{ds}_{v}").is_dir()]
    for d in dirs:
        if not (d / "summary.json").is_file():
            continue
        s = json.loads((d / "summary.json").read_text())
        m = s["metrics"]
        t = json.loads((d / "train_summary.json").read_text()) if (d / "train_summary.json").is_file() else {}
        train = f"{t['wall_seconds_this_run'] / 60:.1f} min, {t['iterations']} it" if t else ""
        var = d.name[len(ds) + 1:]
        print(f"| {ds} | {var} | {c(m, 'dsc', 3)} | {c(m, 'hd', 2)} | {m['hd']['p90']:.2f} | {c(m, 'assd', 2)} | "
              f"{c(m, 'jac', 1)} | {s['n_pairs']} | {1000 * m['seconds']['median']:.1f} | {train} |")
    if a.paper:
        dsc, hd, assd, jac = PAPER_TABLE1[ds]["Ours (paper)"].split(" | ")
        print(f"| {ds} | paper's Table 1 | {dsc} | {hd} | | {assd} | {jac} | | | |")
