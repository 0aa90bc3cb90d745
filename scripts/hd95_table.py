#!/usr/bin/env python
# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""The HD95 table of docs/registration.md: the rows of ``scripts/eval_hd95.sh`` (``<DS>_<row>_v055``) with DSC,
HD (maximum), HD95, ASSD and folds, and the largest per-pair difference in DSC / HD / ASSD from the same row
measured before 0.5.5 (``<DS>_<row>``; 0 = the rerun repeats it).

    python scripts/hd95_table.py
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

R = Path(__file__).resolve().parents[1] / "docs" / "results" / "registration"
ROWS = [("JSRT", "universal_df1"), ("MONT", "universal_df1"), ("SHEN", "universal_df1"),
        ("JSRT", "universal_df1_segDS256tta_refine20_mw80"), ("MONT", "universal_df1_segDS256tta_refine20_mw40"),
        ("SHEN", "universal_df1_segens256tta_refine20_mw80_all")]


def _pairs(d: Path) -> dict:
    with open(d / "pairs.csv") as f:
        return {(r["moving"], r["fixed"]): r for r in csv.DictReader(f)}


def main() -> None:
    print("| dataset | row | DSC | HD | HD95 | ASSD | folds | pairs | largest per-pair diff vs the earlier row (DSC / HD / ASSD) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ds, row in ROWS:
        new = R / f"{ds}_{row}_v055"
        if not (new / "summary.json").is_file():
            print(f"| {ds} | {row} | not measured yet (bash scripts/eval_hd95.sh) | | | | | | |")
            continue
        m = json.loads((new / "summary.json").read_text())["metrics"]
        a, b = _pairs(new), _pairs(R / f"{ds}_{row}")
        common = a.keys() & b.keys()
        diff = [max(abs(float(a[k][c]) - float(b[k][c])) for k in common) for c in ("dsc", "hd", "assd")]
        print(f"| {ds} | `{row}` | {m['dsc']['mean']:.4f} | {m['hd']['mean']:.2f} | **{m['hd95']['mean']:.2f}** | "
              f"{m['assd']['mean']:.3f} | {m['jac']['mean']:.0f} | {len(a)} | "
              f"{diff[0]:.1e} / {diff[1]:.1e} / {diff[2]:.1e} ({len(common)} pairs) |")


if __name__ == "__main__":
    main()
