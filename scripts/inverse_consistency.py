"""Inverse-consistency error of the shipped registration models (docs/registration.md, issue "beyond the paper").

    python scripts/inverse_consistency.py [--models JSRT MONT SHEN universal] [--max-pairs 1000]

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
def measure(model: str, dataset: str, max_pairs: int | None, batch: int = 32) -> dict:
    d = load_split(dataset, "test")
    ours = OursMethod(model, seg_model=model)
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
    a = ap.parse_args()
    rows = []
    for m in a.models:
        for ds in (("JSRT", "MONT", "SHEN") if m == "universal" else (m,)):
            r = measure(m, ds, a.max_pairs)
            print(r, flush=True)
            rows.append(r)
    out = REPO / "docs" / "results"
    (out / "inverse_consistency.json").write_text(json.dumps(rows, indent=1))
    lines = ["| model | test set | unordered pairs | IC error, whole grid (px) | p90 | IC error in A's lungs (px) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['dataset']} | {r['pairs']} | {r['ic_mean_px']:.2f} | {r['ic_p90_px']:.2f} | "
              f"{r['ic_lung_mean_px']:.2f} |" for r in rows]
    (out / "inverse_consistency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
