"""Tables of docs/generalisation.md from docs/results/generalisation/ (run by scripts/generalisation.sh).

Registration: DSC / HD / ASSD / JAC mean (std) of each model on each dataset's test split (all ordered pairs).
Segmentation: test DSC (cleaned masks, scripts/eval_priors.py's scoring) of each shipped segmentation model on
each dataset. Writes docs/results/generalisation/tables.md.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = ("JSRT", "MONT", "SHEN", "universal")
DATASETS = ("JSRT", "MONT", "SHEN")
RES = REPO / "docs" / "results" / "generalisation"


def cell(m, k, nd):
    return f"{m[k]['mean']:.{nd}f} ({m[k]['std']:.{nd}f})"


def registration_table() -> str:
    lines = ["| model \\ test set | " + " | ".join(DATASETS) + " |", "|---|" + "---|" * len(DATASETS)]
    own = {}
    for mod in MODELS:
        row = [f"**{mod}**"]
        for ds in DATASETS:
            p = RES / f"{mod}_on_{ds}" / "summary.json"
            if not p.is_file():
                row.append("not run")
                continue
            s = json.loads(p.read_text())
            m = s["metrics"]
            if mod == ds:
                own[ds] = m
            row.append(f"{cell(m, 'dsc', 3)} / {cell(m, 'hd', 2)} / {cell(m, 'assd', 2)} / {cell(m, 'jac', 1)}")
        lines.append("| " + " | ".join(row) + " |")
    # drop relative to the dataset's own model
    lines += ["", "DSC change and HD / ASSD ratio against the test set's own model:", "",
              "| model \\ test set | " + " | ".join(DATASETS) + " |", "|---|" + "---|" * len(DATASETS)]
    for mod in MODELS:
        row = [f"**{mod}**"]
        for ds in DATASETS:
            p = RES / f"{mod}_on_{ds}" / "summary.json"
            if not p.is_file() or ds not in own:
                row.append("–")
                continue
            m = json.loads(p.read_text())["metrics"]
            o = own[ds]
            row.append(f"{m['dsc']['mean'] - o['dsc']['mean']:+.3f} / x{m['hd']['mean'] / o['hd']['mean']:.2f} / "
                       f"x{m['assd']['mean'] / o['assd']['mean']:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def segmentation_table() -> str:
    import torch

    from bundle.priors import evaluate_segmentation, load_segmentation

    torch.set_num_threads(2)
    out = {}
    lines = ["| segmentation model \\ test set | " + " | ".join(DATASETS) + " |", "|---|" + "---|" * len(DATASETS)]
    for mod in MODELS:
        net = load_segmentation(mod)
        row = [f"**{mod}** ({net.intensity})"]
        for ds in DATASETS:
            r = evaluate_segmentation(net, ds, "test")["clean"]
            out[f"{mod}_on_{ds}"] = {k: float(np.mean(v)) for k, v in r.items()}
            row.append(f"{np.mean(r['dsc']):.4f} ({np.std(r['dsc']):.4f})")
        lines.append("| " + " | ".join(row) + " |")
    (RES / "segmentation.json").write_text(json.dumps(out, indent=1))
    return "\n".join(lines)


def main():
    RES.mkdir(parents=True, exist_ok=True)
    text = ("## Registration (DSC / HD px / ASSD px / JAC folded pixels, mean (std), all ordered test pairs)\n\n"
            + registration_table() + "\n\n## Segmentation (test DSC, mean (std))\n\n" + segmentation_table() + "\n")
    (RES / "tables.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
