"""Inverse-consistency error of the shipped registration models (docs/registration.md, issue "beyond the paper").

    python scripts/inverse_consistency.py [--models JSRT MONT SHEN universal LABEL=PATH ...] [--seg-model universal]
                                          [--datasets JSRT MONT SHEN] [--max-pairs 1000]

``LABEL=PATH`` measures a registration model file under the name LABEL, with ``--seg-model`` as attention (default
universal) on ``--datasets`` (default all three). Rows are merged into the existing results (same model and test
set replaced).

For each model (with its own segmentation model as attention) on its own dataset's test split (the universal
model on all three), every unordered pair {A, B} (or a seeded sample of ``--max-pairs``) is registered both
ways and ``phi_ab(phi_ba(x)) - x`` is measured on A's grid (:func:`bundle.metrics.inverse_consistency`), in
pixels at 256 x 256: mean over the whole grid and over A's true lung mask. Writes
docs/results/inverse_consistency.md and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bundle.data import load_split  # noqa: E402
from bundle.metrics import inverse_consistency  # noqa: E402
from bundle.registration import OursMethod  # noqa: E402


@torch.no_grad()
def measure(model: str, dataset: str, max_pairs: int | None, batch: int = 32, path=None, seg_model=None) -> dict:
    d = load_split(dataset, "test")
    ours = OursMethod(path or model, seg_model=seg_model or model)
    ours.setup(d)
    n = len(d)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    if max_pairs and len(pairs) > max_pairs:
        idx = np.sort(np.random.default_rng(0).choice(len(pairs), max_pairs, replace=False))
        pairs = [pairs[i] for i in idx]
    whole, lung = [], []
    for k in range(0, len(pairs), batch):
        ch = pairs[k:k + batch]
        a, b = torch.tensor([p[0] for p in ch]), torch.tensor([p[1] for p in ch])
        # ours(fixed, moving, ...): the field that pulls the moving image onto the fixed grid
        ab = ours(d.images[b], d.images[a], d.masks[b], d.masks[a], fixed_index=b, moving_index=a)  # A onto B
        ba = ours(d.images[a], d.images[b], d.masks[a], d.masks[b], fixed_index=a, moving_index=b)  # B onto A
        whole += inverse_consistency(ab, ba).tolist()
        lung += inverse_consistency(ab, ba, d.masks[a]).tolist()
    return {"model": model, "dataset": dataset, "pairs": len(pairs), "ic_mean_px": float(np.mean(whole)),
            "ic_p90_px": float(np.percentile(whole, 90)), "ic_lung_mean_px": float(np.mean(lung))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["JSRT", "MONT", "SHEN", "universal"])
    ap.add_argument("--max-pairs", type=int, default=1000)
    ap.add_argument("--seg-model", default="universal", help="attention for LABEL=PATH models")
    ap.add_argument("--datasets", nargs="+", default=None, help="test sets (default: a per-dataset model's own, "
                    "else all three)")
    a = ap.parse_args()
    out = REPO / "docs" / "results"
    old = out / "inverse_consistency.json"
    rows = json.loads(old.read_text()) if old.is_file() else []
    for m in a.models:
        label, _, path = m.partition("=")
        own = label in ("JSRT", "MONT", "SHEN") and not path
        for ds in a.datasets or ((label,) if own else ("JSRT", "MONT", "SHEN")):
            r = measure(label, ds, a.max_pairs, path=path or None, seg_model=a.seg_model if path else None)
            print(r, flush=True)
            rows = [x for x in rows if (x["model"], x["dataset"]) != (label, ds)] + [r]
    old.write_text(json.dumps(rows, indent=1))
    lines = ["| model | test set | unordered pairs | IC error, whole grid (px) | p90 | IC error in A's lungs (px) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['dataset']} | {r['pairs']} | {r['ic_mean_px']:.2f} | {r['ic_p90_px']:.2f} | "
              f"{r['ic_lung_mean_px']:.2f} |" for r in rows]
    (out / "inverse_consistency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
