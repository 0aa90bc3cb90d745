"""A synthetic "own data" folder for the walkthrough (docs/own-data.md): chest-like 16-bit PNGs of several sizes
and aspect ratios with 0/255 lung masks, matched by stem. Never made from the datasets.

    python scripts/make_own_demo.py DIR [--n 24]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from usage_figures import chest  # noqa: E402

SHAPES = [(300, 260), (256, 256), (320, 300), (280, 240), (340, 320)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--n", type=int, default=24)
    a = ap.parse_args()
    d = Path(a.dir)
    (d / "images").mkdir(parents=True, exist_ok=True)
    (d / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(a.n):
        shape = SHAPES[k % len(SHAPES)]
        img, mask = chest(shape, shift=tuple(rng.uniform(-8, 8, 2)), scale=tuple(rng.uniform(0.85, 1.1, 2)), seed=k)
        Image.fromarray((img.astype(np.float32) * 257).astype(np.uint16)).save(d / "images" / f"patient{k:02d}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(d / "masks" / f"patient{k:02d}.png")
    print(f"wrote {a.n} images and masks to {d}")


if __name__ == "__main__":
    main()
