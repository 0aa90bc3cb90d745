# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Registration metrics: DSC, HD, ASSD (MONAI) and JAC (folded pixels).

All mask inputs are binary ``(B, 1, H, W)`` tensors (or arrays). Distances are in pixels unless a
``spacing`` (row, col) in mm is given.

* DSC: MONAI ``DiceMetric(include_background=True)`` on the lung label.
* HD: MONAI ``HausdorffDistanceMetric(percentile=None)``: the **maximum** symmetric boundary distance,
  not the 95th percentile.
* ASSD: MONAI ``SurfaceDistanceMetric(symmetric=True)``: the mean of the two directed average
  boundary distances.
* JAC: number of pixels where ``det(I + grad u) <= 0`` (stencil in :func:`bundle.spatial.jacobian_determinant`),
  and that count as a percentage of the grid.

An empty mask on either side gives NaN for HD and ASSD (DSC 0, or 1 when both are empty).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from .spatial import jacobian_determinant

__all__ = ["dice", "hausdorff", "assd", "folding", "pair_metrics", "summarise"]


def _as_tensor(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[:, None]
    return (t > 0.5).float()


def _onehot(mask: torch.Tensor) -> torch.Tensor:
    return torch.cat([1 - mask, mask], 1)


def dice(pred, target) -> torch.Tensor:
    """DSC per batch item, (B,)."""
    from monai.metrics import DiceMetric

    p, t = _as_tensor(pred), _as_tensor(target)
    both_empty = (p.flatten(1).sum(1) == 0) & (t.flatten(1).sum(1) == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = DiceMetric(include_background=False, reduction="none", ignore_empty=False)(_onehot(p), _onehot(t))[:, 0]
    return torch.where(both_empty, torch.ones_like(d), d)


def _distance(metric_cls, pred, target, spacing, **kw) -> torch.Tensor:
    p, t = _as_tensor(pred), _as_tensor(target)
    empty = (p.flatten(1).sum(1) == 0) | (t.flatten(1).sum(1) == 0)
    out = torch.full((p.shape[0],), float("nan"))
    keep = torch.nonzero(~empty).flatten()
    if len(keep):
        m = metric_cls(include_background=False, reduction="none", **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = m(_onehot(p[keep]), _onehot(t[keep]), spacing=list(spacing) if spacing else None)
        out[keep] = v[:, 0].float().cpu()
    return out


def hausdorff(pred, target, spacing: tuple[float, float] | None = None) -> torch.Tensor:
    """Maximum symmetric Hausdorff distance between mask boundaries, (B,)."""
    from monai.metrics import HausdorffDistanceMetric

    return _distance(HausdorffDistanceMetric, pred, target, spacing, percentile=None, directed=False)


def assd(pred, target, spacing: tuple[float, float] | None = None) -> torch.Tensor:
    """Average symmetric surface distance between mask boundaries, (B,)."""
    from monai.metrics import SurfaceDistanceMetric

    return _distance(SurfaceDistanceMetric, pred, target, spacing, symmetric=True)


def folding(ddf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, percent) of pixels with Jacobian determinant <= 0 for (B, 2, H, W) fields, each (B,)."""
    det = jacobian_determinant(torch.as_tensor(ddf))
    count = (det <= 0).flatten(1).sum(1)
    return count, 100.0 * count.float() / det[0].numel()


def pair_metrics(warped_mask, fixed_mask, ddf=None, spacing=None) -> dict[str, list[float]]:
    """All metrics for a batch of pairs: ``{"dsc", "hd", "assd", "jac", "jac_pct"}`` lists of length B."""
    out = {
        "dsc": dice(warped_mask, fixed_mask).tolist(),
        "hd": hausdorff(warped_mask, fixed_mask, spacing).tolist(),
        "assd": assd(warped_mask, fixed_mask, spacing).tolist(),
    }
    b = len(out["dsc"])
    if ddf is None:
        out["jac"], out["jac_pct"] = [0] * b, [0.0] * b
    else:
        c, pct = folding(ddf)
        out["jac"], out["jac_pct"] = c.tolist(), pct.tolist()
    return out


def summarise(values: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Mean, std (population, as numpy), median, p90 and NaN count per metric."""
    res = {}
    for k, v in values.items():
        a = np.asarray(v, dtype=np.float64)
        ok = a[~np.isnan(a)]
        if len(ok) == 0:
            res[k] = {"mean": math.nan, "std": math.nan, "median": math.nan, "p90": math.nan, "nan": int(len(a))}
            continue
        res[k] = {
            "mean": float(ok.mean()),
            "std": float(ok.std()),
            "median": float(np.median(ok)),
            "p90": float(np.percentile(ok, 90)),
            "nan": int(len(a) - len(ok)),
        }
    return res
