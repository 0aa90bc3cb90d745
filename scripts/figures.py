"""Pictures for the docs (PNG), from shipped models and the test splits.

    python scripts/figures.py segmentation --out docs/img/segmentation.png
    python scripts/figures.py autoencoder --out docs/img/autoencoder.png
    python scripts/figures.py registration --model JSRT --dataset JSRT --out docs/img/registration_JSRT.png

The pictures show the datasets' images and (ground-truth) masks, whose licences forbid redistribution
(SCR masks, NLM sets): write them under docs/img/local/ (git-ignored) and do not commit them.
``--no-data`` draws only our outputs, which may be shared: for registration the deformation grid on white and the
Jacobian map; for segmentation/autoencoder the predicted mask alone (white) with the counts of wrongly added and
missed pixels in the caption — no X-ray and no ground-truth mask (an error map would redraw the licensed masks).

Segmentation/autoencoder: for each dataset the typical (median DSC) and the worst test image; green = truth,
red = prediction. Registration: a typical (median DSC) and a hard (worst DSC) test pair: moving, fixed,
warped (contours: green fixed mask, red warped mask), deformation grid, Jacobian determinant map.
"""

import argparse
from pathlib import Path

import torch

from bundle.data import load_split
from bundle.metrics import dice
from bundle.visualize import grid_image, jacobian_rgb, overlay, tile

GREEN, RED = (0, 200, 0), (230, 0, 0)


def error_map(pred, truth):
    """(H, W, 3) uint8 picture of a (1, H, W) predicted mask (white) and its caption suffix (added / missed pixels)."""
    import numpy as np

    p, t = pred[0].numpy() > 0.5, truth[0].numpy() > 0.5
    rgb = np.repeat((p * 255).astype(np.uint8)[..., None], 3, -1)
    return rgb, f", +{int((p & ~t).sum())}/-{int((~p & t).sum())} px"

p = argparse.ArgumentParser()
p.add_argument("what", choices=["segmentation", "autoencoder", "registration"])
p.add_argument("--out", required=True)
p.add_argument("--model", default=None)
p.add_argument("--dataset", default="JSRT")
p.add_argument("--max-pairs", type=int, default=400)
p.add_argument("--no-data", action="store_true", help="no X-rays: error maps / field grid and Jacobian panels only")
a = p.parse_args()
Path(a.out).parent.mkdir(parents=True, exist_ok=True)

if a.what in ("segmentation", "autoencoder"):
    from bundle.priors import load_autoencoder, load_segmentation, predict_lung_masks
    from bundle.spatial import resize_mask

    rows, labels = [], []
    for ds in ("JSRT", "MONT", "SHEN"):
        d = load_split(ds, "test")
        if a.what == "segmentation":
            pred = predict_lung_masks(load_segmentation(ds), d.images)
        else:
            import torch.nn.functional as F

            ae = load_autoencoder(ds)
            with torch.no_grad():
                prob = torch.softmax(ae(resize_mask(d.masks, ae.size)), 1)[:, 1:2]
            pred = (F.interpolate(prob, size=d.masks.shape[2:], mode="bilinear", align_corners=False) > 0.5).float()
        s = dice(pred, d.masks)
        order = torch.argsort(s)
        picks = [order[len(order) // 2].item(), order[0].item()]
        extra = [""] * len(picks)
        if a.no_data:
            maps = [error_map(pred[i], d.masks[i]) for i in picks]
            rows.append([m[0] for m in maps])
            extra = [m[1] for m in maps]
        else:
            rows.append([overlay(d.images[i], [(d.masks[i], GREEN), (pred[i], RED)]) for i in picks])
        labels.append([(f"{ds} {d.ids[i]} typical DSC {s[i]:.3f}" if k == 0 else f"{ds} {d.ids[i]} worst DSC {s[i]:.3f}")
                       + extra[k] for k, i in enumerate(picks)])
    tile(rows, labels).save(a.out)
else:
    from bundle.data import sample_pairs
    from bundle.registration import OursMethod
    from bundle.spatial import jacobian_determinant, warp

    d = load_split(a.dataset, "test")
    meth = OursMethod(a.model or a.dataset, seg_model=a.dataset)
    meth.setup(d)
    pairs = sample_pairs(len(d), a.max_pairs, 0)
    mi = torch.tensor([q[0] for q in pairs])
    fi = torch.tensor([q[1] for q in pairs])
    scores = []
    for k in range(0, len(pairs), 50):
        ddf = meth(d.images[fi[k:k + 50]], d.images[mi[k:k + 50]], None, None, fixed_index=fi[k:k + 50],
                   moving_index=mi[k:k + 50])
        w = warp(d.masks[mi[k:k + 50]], ddf, mode="nearest", padding_mode="zeros")
        scores.append(dice(w, d.masks[fi[k:k + 50]]))
    scores = torch.cat(scores)
    order = torch.argsort(scores)
    rows, labels = [], []
    for tag, j in (("typical", order[len(order) // 2].item()), ("hard", order[0].item())):
        m, f = mi[j].item(), fi[j].item()
        ddf = meth(d.images[f:f + 1], d.images[m:m + 1], None, None, fixed_index=fi[j:j + 1], moving_index=mi[j:j + 1])
        wi = warp(d.images[m:m + 1], ddf)[0]
        wm = warp(d.masks[m:m + 1], ddf, mode="nearest", padding_mode="zeros")[0]
        det = jacobian_determinant(ddf)[0]
        if a.no_data:
            rows.append([grid_image(ddf[0], step=8), jacobian_rgb(det)])
            labels.append([f"{tag} pair, DSC {scores[j]:.3f}: grid", f"det J (black <= 0: {(det <= 0).sum().item()})"])
            continue
        rows.append([overlay(d.images[m], [(d.masks[m], RED)]), overlay(d.images[f], [(d.masks[f], GREEN)]),
                     overlay(wi, [(d.masks[f], GREEN), (wm, RED)]), grid_image(ddf[0], step=8, background=wi),
                     jacobian_rgb(det)])
        labels.append([f"moving {d.ids[m]}", f"fixed {d.ids[f]}", f"warped, DSC {scores[j]:.3f} ({tag})",
                       "deformation grid", f"det J (black <= 0: {(det <= 0).sum().item()})"])
    tile(rows, labels).save(a.out)
print("wrote", a.out)
