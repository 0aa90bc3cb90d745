"""Post-DAE (Larrazabal et al. 2020): the shape autoencoder as a post-processing step of predicted lung masks.

    python scripts/seg_postdae.py DATASET SEG_MODEL AE_MODEL

Predicts the test masks with SEG_MODEL (cleaned, as the registration's attention), reconstructs them with the
denoising autoencoder AE_MODEL (64 x 64, probability resampled to 256 and thresholded), and scores against the
true masks (DSC / HD / ASSD, pixels): the prediction, its reconstruction, and the prediction restricted to the
reconstruction dilated by r px (``pred * dilate(AE(pred), r)``, cleaned), for every image or only where the
prediction and its reconstruction disagree (DSC < t). Also lists the images they disagree on most.
"""

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from bundle.data import load_split
from bundle.metrics import assd, dice, hausdorff
from bundle.priors import clean_masks, load_autoencoder
from bundle.registration import attention_masks
from bundle.spatial import resize_mask

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("dataset")
p.add_argument("seg_model")
p.add_argument("ae_model")
a = p.parse_args()
d = load_split(a.dataset, "test")
pred = attention_masks(d.images, a.seg_model)
ae = load_autoencoder(a.ae_model)
with torch.no_grad():
    prob = torch.softmax(ae(resize_mask(pred, ae.size)).float(), 1)[:, 1:2]
rec = (F.interpolate(prob, size=pred.shape[2:], mode="bilinear", align_corners=False) > 0.5).float()
agree = dice(pred, rec)


def line(name, m):
    print(f"| {name} | {dice(m, d.masks).mean():.4f} | {hausdorff(m, d.masks).mean():.2f} | "
          f"{assd(m, d.masks).mean():.3f} |")


print(f"{a.dataset}, lung masks {a.seg_model}, autoencoder {a.ae_model}, {len(d.ids)} test images\n")
print("| masks | DSC | HD | ASSD |\n|---|---|---|---|")
line("prediction", pred)
line("AE(prediction)", rec)
for r in (3, 6, 10):
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = xx ** 2 + yy ** 2 <= r * r
    dil = torch.from_numpy(np.stack([ndimage.binary_dilation(m[0].numpy() > 0.5, disk) for m in rec]))[:, None]
    cut = clean_masks(pred * dil.float())
    line(f"prediction * dilate(AE, {r})", cut)
    for t in (0.93, 0.95):
        g = (agree < t).float()[:, None, None, None]
        line(f"  the same where DSC(pred, AE) < {t}", g * cut + (1 - g) * pred)
dp, dr = dice(pred, d.masks), dice(rec, d.masks)
print("\nleast agreement (DSC of prediction and reconstruction; DSC of each against the truth):")
for i in np.argsort(agree.numpy())[:5]:
    print(f"  {d.ids[i]}: agreement {agree[i]:.3f}, prediction {dp[i]:.3f}, reconstruction {dr[i]:.3f}")
