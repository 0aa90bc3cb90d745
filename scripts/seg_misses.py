"""Test images whose true lung mask has a large connected region the predicted mask misses (docs/segmentation.md).

    python scripts/seg_misses.py DATASET SEG_MODEL [--min-px 300]

Prints, per such image, the region's size (pixels at 256 x 256) and centre (row, column), and the image's DSC.
"""

import argparse

import numpy as np
from scipy import ndimage

from bundle.data import load_split
from bundle.metrics import dice
from bundle.priors import load_segmentation, predict_lung_masks

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("dataset")
p.add_argument("seg_model")
p.add_argument("--min-px", type=int, default=300)
a = p.parse_args()
d = load_split(a.dataset, "test")
pred = predict_lung_masks(load_segmentation(a.seg_model), d.images)
dsc = dice(pred, d.masks).tolist()
miss = ((d.masks > 0.5) & (pred < 0.5))[:, 0].numpy()
rows = []
for k, i in enumerate(d.ids):
    lab, n = ndimage.label(miss[k])
    if n:
        sizes = ndimage.sum(miss[k], lab, range(1, n + 1))
        c = int(np.argmax(sizes))
        if sizes[c] >= a.min_px:
            ys, xs = np.nonzero(lab == c + 1)
            rows.append((i, int(sizes[c]), int(ys.mean()), int(xs.mean()), dsc[k]))
print(f"{a.dataset} {a.seg_model}: {len(rows)} of {len(d.ids)} test images miss a region of >= {a.min_px} px")
for i, n, y, x, s in sorted(rows, key=lambda r: -r[1]):
    print(f"  {i}: {n} px at (row {y}, col {x}), DSC {s:.4f}")
