"""How many pairs fold at all, and how many pixels in total, per result folder (JAC of pairs.csv).

    python scripts/folding_counts.py docs/results/registration/JSRT_universal docs/results/registration/...

A mean JAC printed as 0.0 can hide a few folded pixels; this prints the exact counts as a Markdown table.
"""

import csv
import sys
from pathlib import Path

print("| result | pairs | pairs with a fold | folded pixels in total | most in one pair |")
print("|---|---|---|---|---|")
for d in sys.argv[1:]:
    rows = list(csv.DictReader(open(Path(d) / "pairs.csv")))
    jac = [int(float(r["jac"])) for r in rows]
    print(f"| {Path(d).name} | {len(jac)} | {sum(j > 0 for j in jac)} | {sum(jac)} | {max(jac)} |")
