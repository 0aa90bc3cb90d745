"""How alike the three datasets look under each intensity normalisation (docs/generalisation.md).

    python scripts/intensity_stats.py

For the training images of JSRT, MONT and SHEN: mean / std of all pixels and of lung pixels after each mode of
:func:`bundle.transforms.normalize_intensity` (``unit`` = grey / 255 as stored, ``zscore`` per image,
``equalize`` per-image histogram equalisation), and the 1-Wasserstein distance between two datasets' pooled
pixel distributions divided by the pooled std (0 = identical distributions; seeded samples of 200,000 pixels).
Writes docs/results/generalisation/intensity.md.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scipy.stats import wasserstein_distance  # noqa: E402

from bundle.data import DATASETS, load_split  # noqa: E402
from bundle.transforms import normalize_intensity  # noqa: E402


def main():
    lines = ["| mode | " + " | ".join(f"{d} all (lung)" for d in DATASETS) + " | "
             + " | ".join(f"W1/std {a}-{b}" for a, b in itertools.combinations(DATASETS, 2)) + " |",
             "|---|" + "---|" * (len(DATASETS) + 3)]
    for mode in ("unit", "zscore", "equalize"):
        pooled, cells = {}, []
        for ds in DATASETS:
            d = load_split(ds, "train")
            x = normalize_intensity(d.images, mode)
            lung = x[d.masks > 0.5]
            pooled[ds] = x.flatten().numpy()
            cells.append(f"{float(x.mean()):.3f}±{float(x.std()):.3f} ({float(lung.mean()):.3f}±{float(lung.std()):.3f})")
        rng = np.random.default_rng(0)
        scale = np.concatenate([rng.choice(v, 100000) for v in pooled.values()]).std()
        for a, b in itertools.combinations(DATASETS, 2):
            w = wasserstein_distance(rng.choice(pooled[a], 200000), rng.choice(pooled[b], 200000))
            cells.append(f"{w / scale:.3f}")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    out = REPO / "docs" / "results" / "generalisation"
    out.mkdir(parents=True, exist_ok=True)
    (out / "intensity.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
