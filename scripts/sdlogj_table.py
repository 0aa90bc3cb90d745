"""Table of the SDlogJ runs of scripts/eval_sdlogj.sh: DSC, HD, JAC and SDlogJ (mean, median, p90) per row.

    python scripts/sdlogj_table.py [RESULTS_DIR]      (default docs/results/sdlogj)
"""

import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results/sdlogj")
print("| run | pairs | DSC | HD | JAC | SDlogJ mean | SDlogJ median | SDlogJ p90 |")
print("|---|---|---|---|---|---|---|---|")
for d in sorted(p for p in root.iterdir() if (p / "summary.json").is_file()):
    s = json.loads((d / "summary.json").read_text())
    m = s["metrics"]
    sd = m["sdlogj"]
    print(f"| {d.name} | {s['n_pairs']} | {m['dsc']['mean']:.4f} | {m['hd']['mean']:.2f} | {m['jac']['mean']:.2f} | "
          f"{sd['mean']:.4f} | {sd['median']:.4f} | {sd['p90']:.4f} |")
