"""Segmentation DSC / HD of single models and ensembles (averaged lung probabilities) on each test split.

    python scripts/seg_ensembles.py [--universal2 PATH]     (~30 s on 2 CPU cores)

Rows per dataset DS: DS's own model, universal, DS+universal, the four shipped models together, and the three
that are not DS's own. Masks are thresholded at 0.5 and cleaned (two largest components, holes filled) as the
registration's attention is (`bundle.priors.evaluate_segmentation`); DSC, HD and ASSD (pixels) at 256 x 256
against the true masks. Writes docs/results/seg_ensembles.md and .json (with --universal2:
seg_ensembles_universal2.md and .json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bundle.networks import SegEnsemble  # noqa: E402
from bundle.priors import evaluate_segmentation, load_segmentation  # noqa: E402

NAMES = ("JSRT", "MONT", "SHEN", "universal")


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="segmentation ensembles on the test splits")
    ap.add_argument("--universal2", default=None, help="a second universal segmentation model (other seed): adds "
                    "the rows universal2, universal+universal2 and DS+universal+universal2")
    a = ap.parse_args(argv)
    nets = {m: load_segmentation(m) for m in NAMES}
    if a.universal2:
        nets["universal2"] = load_segmentation(a.universal2)
    rows = []
    for ds in ("JSRT", "MONT", "SHEN"):
        combos = [(ds,), ("universal",), (ds, "universal"), NAMES, tuple(n for n in NAMES if n != ds)]
        if a.universal2:
            combos += [("universal2",), ("universal", "universal2"), (ds, "universal", "universal2")]
        for combo in combos:
            net = nets[combo[0]] if len(combo) == 1 else SegEnsemble([nets[c] for c in combo]).eval()
            res = evaluate_segmentation(net, ds)
            sc = res["clean"]
            r = {"dataset": ds, "models": "+".join(combo), "images": len(res["ids"]),
                 "dsc": float(np.mean(sc["dsc"])), "hd": float(np.mean(sc["hd"])), "assd": float(np.mean(sc["assd"]))}
            print(r, flush=True)
            rows.append(r)
    out = REPO / "docs" / "results"
    name = "seg_ensembles_universal2" if a.universal2 else "seg_ensembles"  # the shipped models' table stays
    (out / f"{name}.json").write_text(json.dumps(rows, indent=1))
    lines = ["| test set | segmentation models | images | DSC | HD (px) | ASSD (px) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['models']} | {r['images']} | {r['dsc']:.4f} | {r['hd']:.2f} | {r['assd']:.2f} |"
              for r in rows]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
