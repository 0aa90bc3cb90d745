# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Registration metrics: DSC, HD, ASSD (MONAI) and JAC (folded pixels).

All mask inputs are binary ``(B, 1, H, W)`` tensors (or arrays). Distances are in pixels unless a
``spacing`` (row, col) in mm is given.

* DSC: MONAI ``DiceMetric(include_background=True)`` on the lung label.
* HD: MONAI ``HausdorffDistanceMetric(percentile=None)``: the **maximum** symmetric boundary distance,
  not the 95th percentile.
* ASSD: MONAI ``SurfaceDistanceMetric(symmetric=True)``: the mean over the boundary pixels of both masks of
  their distance to the other mask's boundary (the two directions' distances pooled, not the mean of the two
  directed means; the two differ when the boundaries have different lengths).
* :func:`surface_metrics` gives HD and ASSD from one MONAI ``get_edge_surface_distance`` call per pair (the
  function both metric classes call), the same values in half the time; the harness uses it.
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

__all__ = ["dice", "hausdorff", "assd", "surface_metrics", "folding", "log_jacobian_std", "inverse_consistency", "pair_metrics",
           "score_field", "summarise"]


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


def surface_metrics(pred, target, spacing: tuple[float, float] | None = None, hd95: bool = False):
    """(HD, ASSD) per batch item, each (B,), from one boundary-distance computation per pair; with ``hd95`` also
    the 95th-percentile Hausdorff distance as a third (B,) tensor (since 0.5.5).

    Equal to :func:`hausdorff` and :func:`assd` (MONAI's metric classes call the same
    ``monai.metrics.utils.get_edge_surface_distance``), HD95 to ``HausdorffDistanceMetric(percentile=95)`` (the
    larger of the two directions' 95th percentiles); NaN where either mask is empty.
    """
    from monai.metrics.utils import get_edge_surface_distance

    p, t = _as_tensor(pred), _as_tensor(target)
    hd = torch.full((p.shape[0],), float("nan"))
    sd = torch.full((p.shape[0],), float("nan"))
    h95 = torch.full((p.shape[0],), float("nan"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in range(p.shape[0]):
            if p[b].sum() == 0 or t[b].sum() == 0:
                continue
            _, dist, _ = get_edge_surface_distance(p[b, 0], t[b, 0], spacing=list(spacing) if spacing else None,
                                                   symmetric=True)
            hd[b] = max(float(d.max()) if d.numel() else 0.0 for d in dist)
            if hd95:  # as MONAI's _compute_percentile_hausdorff_distance: torch.quantile per direction, then max
                h95[b] = max(float(torch.quantile(d.double(), 0.95)) if d.numel() else 0.0 for d in dist)
            allv = torch.cat(dist)
            sd[b] = float(allv.float().mean()) if allv.numel() else float("nan")
    return (hd, sd, h95) if hd95 else (hd, sd)


def folding(ddf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, percent) of pixels with Jacobian determinant <= 0 for (B, 2, H, W) fields, each (B,)."""
    return _fold_counts(jacobian_determinant(torch.as_tensor(ddf)))


def _fold_counts(det: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`folding` of (B, H, W) Jacobian determinants already at hand."""
    count = (det <= 0).flatten(1).sum(1)
    return count, 100.0 * count.float() / det[0].numel()


def log_jacobian_std(det: torch.Tensor) -> torch.Tensor:
    """Standard deviation of log det J over the pixels of each item (``SDlogJ``: the determinant clipped to
    [1e-9, 1e9], population std; Learn2Reg's evaluation script instead takes log(det + 3) and crops the
    border, so its values are not these), for (B, H, W) Jacobian determinants
    (:func:`bundle.spatial.jacobian_determinant`); (B,). 0 for any field whose determinant is constant (no
    deformation, a translation, a uniform scaling); a fold (det <= 0) counts as log 1e-9 = -20.7."""
    d = torch.as_tensor(det).float().clamp(1e-9, 1e9).log_().flatten(1)
    return d.std(1, unbiased=False)


def inverse_consistency(ddf_ab: torch.Tensor, ddf_ba: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse-consistency error (pixels) of two fields of one pair registered both ways, shape (B,).

    ``ddf_ab`` pulls image A onto B's grid (``x -> x + u_ab(x)`` maps B to A), ``ddf_ba`` the other way. On A's
    grid, ``phi_ab(phi_ba(x)) - x = u_ba(x) + u_ab(x + u_ba(x))`` (:func:`bundle.spatial.compose_ddf`) is 0
    for perfectly inverse fields; the error is its Euclidean length, averaged over ``mask`` (B, 1, H, W; e.g.
    A's lung mask) or over the whole grid.
    """
    from .spatial import compose_ddf

    r = compose_ddf(ddf_ab.float(), ddf_ba.float()).norm(dim=1, keepdim=True)  # B,1,H,W
    if mask is None:
        return r.flatten(1).mean(1)
    m = mask.float()
    return (r * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)


def pair_metrics(warped_mask, fixed_mask, ddf=None, spacing=None) -> dict[str, list[float]]:
    """All metrics for a batch of pairs: ``{"dsc", "hd", "assd", "hd95", "jac", "jac_pct", "sdlogj"}`` lists of
    length B (``hd95`` since 0.5.5, ``sdlogj`` (:func:`log_jacobian_std`) since 0.5.10)."""
    hd, sd, h95 = surface_metrics(warped_mask, fixed_mask, spacing, hd95=True)
    out = {"dsc": dice(warped_mask, fixed_mask).tolist(), "hd": hd.tolist(), "assd": sd.tolist(), "hd95": h95.tolist()}
    b = len(out["dsc"])
    if ddf is None:
        out["jac"], out["jac_pct"], out["sdlogj"] = [0] * b, [0.0] * b, [0.0] * b
    else:
        det = jacobian_determinant(torch.as_tensor(ddf))  # once, for JAC and SDlogJ
        c, pct = _fold_counts(det)
        out["jac"], out["jac_pct"], out["sdlogj"] = c.tolist(), pct.tolist(), log_jacobian_std(det).tolist()
    return out


def score_field(ddf, moving_mask, fixed_mask, spacing=None) -> dict[str, list[float]]:
    """:func:`pair_metrics` of a pull-back field (B, 2, H, W), pixels: the true moving masks (B, 1, H, W) warped
    with nearest neighbour (zeros outside), as the evaluation harness does, against the fixed masks."""
    from .spatial import warp

    ddf = torch.as_tensor(ddf).float()
    warped = warp(_as_tensor(moving_mask).float(), ddf, mode="nearest", padding_mode="zeros")
    return pair_metrics(warped, _as_tensor(fixed_mask).float(), ddf, spacing)


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
