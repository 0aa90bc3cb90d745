"""DSC/HD/ASSD of one segmentation weights file on a split (test by default) (cleaned and raw), as used in docs/segmentation.md.

    python scripts/seg_score.py DATASET WEIGHTS [SPLIT]     (SPLIT: test, the default, or train)
"""

import sys

import numpy as np

from bundle.priors import evaluate_segmentation, load_segmentation

ds, w = sys.argv[1], sys.argv[2]
split = sys.argv[3] if len(sys.argv) > 3 else "test"
r = evaluate_segmentation(load_segmentation(w), ds, split=split)
where = "" if split == "test" else f" ({split} split)"
print(f"{ds} {w}{where}: DSC raw {np.nanmean(r['raw']['dsc']):.4f} cleaned {np.nanmean(r['clean']['dsc']):.4f} "
      f"HD {np.nanmean(r['clean']['hd']):.2f} ASSD {np.nanmean(r['clean']['assd']):.3f}")
