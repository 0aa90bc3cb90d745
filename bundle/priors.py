# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""The two prior models in use: loading shipped weights, predicting lung masks, scoring both models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .data import REPO_ROOT, load_split
from .metrics import assd, dice, hausdorff
from .networks import LungSegNet, MaskAutoEncoder, SegEnsemble, SegShiftTTA
from .workflow import load_weights

__all__ = [
    "SHIPPED",
    "SHIPPED_SEGMENTATION",
    "default_prior",
    "shipped_name",
    "weights_path",
    "ensemble_members",
    "TTA_SUFFIX",
    "split_tta",
    "load_segmentation",
    "load_autoencoder",
    "load_encoder",
    "predict_lung_masks",
    "clean_masks",
    "count_components",
    "evaluate_segmentation",
    "evaluate_autoencoder",
]


SHIPPED = ("JSRT", "MONT", "SHEN", "universal")
# segmentation models shipped without a registration/autoencoder of the same name: the universal model fine-tuned
# at 256 x 256, and that model fine-tuned on each dataset at 256 x 256 (docs/segmentation.md)
SHIPPED_SEGMENTATION = ("universal256", "JSRT256", "MONT256", "SHEN256")


def shipped_name(model) -> str | None:
    """The shipped name ``model`` spells (JSRT, MONT, SHEN, universal; any case), or None (e.g. a file path)."""
    if model is None:
        return None
    return next((n for n in SHIPPED if str(model).lower() == n.lower()), None)


def weights_path(kind: str, model: str | os.PathLike) -> Path:
    """``models/<kind>_<NAME>.pt`` for a shipped name (JSRT, MONT, SHEN, universal; any case; for
    ``kind="segmentation"`` also universal256, JSRT256, MONT256, SHEN256), else ``model`` itself as a path."""
    name = shipped_name(model)
    if name is None and kind == "segmentation" and model is not None:
        name = next((n for n in SHIPPED_SEGMENTATION if str(model).lower() == n.lower()), None)
    return REPO_ROOT / "models" / f"{kind}_{name}.pt" if name else Path(str(model))


def default_prior(dataset: str, init=None) -> str:
    """Which shipped segmentation/autoencoder a registration run uses unless told: its own dataset's, else
    that of the ``--init`` model, else ``universal`` (e.g. for a user's own data)."""
    for cand in (dataset, init):
        if shipped_name(cand):
            return str(cand)
    return "universal"


def ensemble_members(model) -> list[str] | None:
    """The members of an ensemble name ``"A+B"`` (e.g. ``"JSRT+universal"``), or None for a single model."""
    s = str(model)
    if "+" not in s or os.path.exists(s):
        return None
    parts = [p.strip() for p in s.split("+")]
    if any(not p for p in parts):
        raise ValueError(f"{model!r}: an ensemble is written 'A+B' with non-empty model names or paths")
    return parts


TTA_SUFFIX = "@tta"


def split_tta(model) -> tuple[str | os.PathLike | None, bool]:
    """``("JSRT256", True)`` for ``"JSRT256@tta"`` (any case; also after an ensemble ``"A+B@tta"``), else
    ``(model, False)``. A path that exists is never split."""
    s = str(model)
    if model is not None and s.lower().endswith(TTA_SUFFIX) and not os.path.exists(s):
        base = s[: -len(TTA_SUFFIX)]
        if not base:
            raise ValueError(f"{model!r}: write the model before {TTA_SUFFIX}, e.g. JSRT256{TTA_SUFFIX}")
        return base, True
    return model, False


def load_segmentation(model: str | os.PathLike = "JSRT", device="cpu", **net_kw) -> torch.nn.Module:
    """A shipped (``JSRT``, ``MONT``, ``SHEN``, ``universal``, ``universal256``, ``JSRT256``, ...) or given
    segmentation model, in eval mode.

    ``"A+B"`` loads each member and returns a :class:`SegEnsemble` (their lung probabilities averaged);
    a trailing ``"@tta"`` (``"JSRT256@tta"``, ``"A+B@tta"``) wraps the model in :class:`SegShiftTTA` (five
    shifted passes averaged)."""
    model, tta = split_tta(model)
    if tta:
        return SegShiftTTA(load_segmentation(model, device, **net_kw)).to(device).eval()
    members = ensemble_members(model)
    if members:
        return SegEnsemble([load_segmentation(m, device, **net_kw) for m in members]).to(device).eval()
    net = LungSegNet(**net_kw)
    net.load_state_dict(load_weights(weights_path("segmentation", model)))
    return net.to(device).eval()


def load_autoencoder(model: str | os.PathLike = "JSRT", device="cpu", **net_kw) -> MaskAutoEncoder:
    net = MaskAutoEncoder(**net_kw)
    net.load_state_dict(load_weights(weights_path("autoencoder", model)))
    return net.to(device).eval()


def load_encoder(model: str | os.PathLike = "JSRT", device="cpu", **net_kw) -> torch.nn.Module:
    """The frozen shape encoder of a shipped (or given) autoencoder; loadable on its own."""
    return load_autoencoder(model, device, **net_kw).as_encoder()


def clean_masks(masks: torch.Tensor) -> torch.Tensor:
    """Keep the two largest 8-connected lung components and fill holes; (B, 1, H, W) 0/1 in and out.
    Returns a plain ``torch.Tensor``: MONAI's transforms return a ``MetaTensor``, whose metadata tracking
    would otherwise follow the masks through every later operation (~6 ms per pair at batch 1)."""
    from monai.transforms import FillHoles, KeepLargestConnectedComponent
    from monai.utils import convert_to_tensor

    keep = KeepLargestConnectedComponent(applied_labels=[1], num_components=2)
    fill = FillHoles(applied_labels=[1])
    return torch.stack([convert_to_tensor(fill(keep(m.detach().cpu().clone())), track_meta=False)
                        for m in masks]).float()


@torch.no_grad()
def predict_lung_masks(net: torch.nn.Module, images: torch.Tensor, batch_size: int = 16, clean: bool = True,
                       probabilities: bool = False) -> torch.Tensor:
    """Lung masks (B, 1, H, W) 0/1 (or lung probabilities) for images (B, 1, H, W) in [0, 1]."""
    dev = next(net.parameters()).device
    out = []
    for i in range(0, images.shape[0], batch_size):
        logits = net(images[i : i + batch_size].to(dev))
        p = torch.softmax(logits.float(), 1)[:, 1:2].cpu()
        out.append(p if probabilities else (p > 0.5).float())
    res = torch.cat(out)
    return clean_masks(res) if clean and not probabilities else res


def count_components(masks: torch.Tensor) -> list[int]:
    """Number of 8-connected lung components per (B, 1, H, W) mask."""
    from scipy import ndimage

    return [int(ndimage.label(m[0].cpu().numpy() > 0.5, structure=np.ones((3, 3)))[1]) for m in masks]


def _scores(pred: torch.Tensor, truth: torch.Tensor) -> dict:
    return {
        "dsc": dice(pred, truth).tolist(),
        "hd": hausdorff(pred, truth).tolist(),
        "assd": assd(pred, truth).tolist(),
        "components": count_components(pred),
    }


def evaluate_segmentation(net: torch.nn.Module, dataset: str, split: str = "test", data_dir=None) -> dict:
    """Per-image DSC/HD/ASSD/components at the stored resolution, raw and after :func:`clean_masks`."""
    d = load_split(dataset, split, data_dir)
    raw = predict_lung_masks(net, d.images, clean=False)
    res = {"ids": d.ids, "raw": _scores(raw, d.masks), "clean": _scores(clean_masks(raw), d.masks),
           "truth_components": count_components(d.masks)}
    return res


@torch.no_grad()
def evaluate_autoencoder(net: MaskAutoEncoder, dataset: str, split: str = "test", data_dir=None,
                         corrupted: bool = False, seed: int = 0) -> dict:
    """Reconstruction scores of test masks (clean, or corrupted with a fixed seed) at the stored resolution.

    Masks are reduced to the autoencoder's size, (optionally) corrupted, reconstructed, and the lung
    probability is resampled bilinearly back to full size before thresholding at 0.5.
    """
    import torch.nn.functional as F

    from .spatial import resize_mask
    from .transforms import corrupt_mask

    d = load_split(dataset, split, data_dir)
    small = resize_mask(d.masks, net.size)
    if corrupted:
        rng = np.random.RandomState(seed)
        small = torch.stack([corrupt_mask(m, rng) for m in small])
    dev = next(net.parameters()).device
    p = torch.softmax(net(small.to(dev)).float(), 1)[:, 1:2].cpu()
    recon = (F.interpolate(p, size=d.masks.shape[2:], mode="bilinear", align_corners=False) > 0.5).float()
    return {"ids": d.ids, **_scores(recon, d.masks)}

