# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Test-time refinement (instance optimisation) of a predicted field, per pair.

The network's field (residual, or velocity when the model integrates) is resized to ``size`` and optimised
for ``steps`` Adam steps on

    loss = λ_img (-NCC(fixed·m_f, warped moving·m_m)) + λ_mask (1 - soft Dice(warped m_m, m_f))
           + λ_smooth TV(field) [+ λ_dist D(warped m_m, m_f)]

where ``m`` are the attention (predicted lung) masks, so no ground truth is used. The optional boundary
term ``D`` (a "boundary loss", Kervadec et al. 2019; off unless ``w_dist > 0``) is the mismatched lung mass
weighted by its distance to ``m_f``'s border, ``sum(w·d_out + (1 - w)·d_in) / sum(m_f)`` with ``w`` the warped
moving mask and ``d_out`` / ``d_in`` the distance (pixels of the refinement grid) to ``m_f`` outside / to its
background inside: 0 when the masks agree, and a pixel that is far from the right side costs in proportion to
how far, which is what the Hausdorff distance measures and soft Dice does not. The best iterate (lowest
loss, per pair) is returned, so the loss it optimises is never higher than at the start.
"""

from __future__ import annotations

import torch

from .losses import GlobalNCCLoss
from .spatial import identity_grid, integrate_velocity, resize_ddf, resize_image, warp

__all__ = ["refine_residual", "refine_loss", "border_distances", "boundary_term", "check_weights"]


#: Default weight of the lung-mask overlap term (image similarity 1, smoothness 0.5). 1.0 until 0.5.3; 40 was
#: measured better on every dataset and with every segmentation tried (docs/registration.md, "Heavier mask
#: terms, once more"), e.g. JSRT with the default lung masks DSC 0.9713 -> 0.9725, HD 11.05 -> 10.69.
DEFAULT_MASK_WEIGHT = 40.0


def check_weights(weights: dict | None) -> dict:
    """The refinement's term weights (``w_img``, ``w_mask``, ``w_smooth``, ``w_dist``) as floats, checked:
    each must be a finite number >= 0, else ``ValueError`` naming it (``cxreg`` checks the same in its parser).
    Other keys (``fixed_dist``) pass unchanged."""
    import math

    out = dict(weights or {})
    for k in ("w_img", "w_mask", "w_smooth", "w_dist"):
        if k in out:
            try:
                v = float(out[k])
            except (TypeError, ValueError):
                raise ValueError(f"refinement weight {k} must be a finite number >= 0, not {out[k]!r}") from None
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"refinement weight {k} must be a finite number >= 0, not {out[k]}")
            out[k] = v
    return out


def _soft_dice(a, b, eps=1e-5):
    inter = (a * b).flatten(1).sum(1)
    return 1 - (2 * inter + eps) / (a.flatten(1).sum(1) + b.flatten(1).sum(1) + eps)


def border_distances(masks: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W): per pixel the Euclidean distance (pixels) to the mask for pixels outside it (channel 0)
    and to the background for pixels inside it (channel 1), 0 elsewhere; masks (B, 1, H, W) thresholded at 0.5.
    An empty (or full) mask gives zeros in the channel that has no target."""
    from scipy import ndimage

    out = torch.zeros(masks.shape[0], 2, *masks.shape[2:])
    for i, m in enumerate(masks[:, 0].detach().cpu().numpy() > 0.5):
        if m.any():
            out[i, 0] = torch.from_numpy(ndimage.distance_transform_edt(~m)).float()
        if (~m).any():
            out[i, 1] = torch.from_numpy(ndimage.distance_transform_edt(m)).float()
    return out.to(masks.device)


def boundary_term(warped: torch.Tensor, fixed_attn: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Per-pair (B,) ``sum(w·d_out + (1 - w)·d_in) / sum(m_f)`` (module docstring); ``dist`` from
    :func:`border_distances` of ``fixed_attn``; in pixels, 0 when ``warped`` equals the fixed mask."""
    cost = warped * dist[:, :1] + (1 - warped) * dist[:, 1:]
    return cost.flatten(1).sum(1) / fixed_attn.flatten(1).sum(1).clamp_min(1.0)


def refine_loss(param, moving_in, fixed_in, moving_attn, fixed_attn, settings, affine=None, w_img=1.0,
                w_mask=DEFAULT_MASK_WEIGHT, w_smooth=0.5, w_dist=0.0, fixed_dist=None) -> torch.Tensor:
    """Per-pair loss (B,) of a residual/velocity ``param`` (B, 2, S, S); images and masks at size S.
    ``w_dist > 0`` adds the boundary term, with ``fixed_dist`` = :func:`border_distances` of ``fixed_attn``
    (computed here if not given)."""
    from .registration import affine_points

    r = integrate_velocity(param, settings.int_steps) if settings.integrate else param
    u = r
    if affine is not None:
        g = identity_grid(r.shape[2:], device=r.device).expand(r.shape[0], -1, -1, -1)
        u = r + affine_points(*affine, g + r)
    wm = warp(moving_in, u)
    wa = warp(moving_attn, u, padding_mode="zeros")
    ncc = GlobalNCCLoss(reduction="none")(wm, fixed_in)
    tv = (param[:, :, 1:] - param[:, :, :-1]).abs().flatten(1).mean(1) + (param[..., 1:] - param[..., :-1]).abs().flatten(1).mean(1)
    loss = w_img * ncc + w_mask * _soft_dice(wa, fixed_attn) + w_smooth * tv
    if w_dist > 0:
        if fixed_dist is None:
            fixed_dist = border_distances(fixed_attn)
        loss = loss + w_dist * boundary_term(wa, fixed_attn, fixed_dist)
    return loss


def refine_residual(init: torch.Tensor, moving, fixed, moving_attn, fixed_attn, settings, affine=None,
                    steps: int = 20, size: int = 128, lr: float = 0.1, max_batch: int | str | None = "auto",
                    **weights) -> torch.Tensor:
    """Optimise ``init`` (B, 2, s, s) (network residual or velocity, pixels of its grid) at ``size``.

    ``moving``, ``fixed`` are the (masked) images and ``*_attn`` the masks, at any size (resampled to ``size``).
    Returns the best parameter per pair at ``size`` (pixels of that grid); ``steps=0`` returns ``init`` resized.
    Pairs are optimised ``max_batch`` at a time (``None`` or 0: all at once): each pair's loss depends on its own
    parameter only and Adam is elementwise, so the result is the same and the peak memory is that of
    ``max_batch`` pairs. ``"auto"`` (default): 8 on CPU (measured: peak RSS 1.11 -> 0.94 GiB for a batch of 32,
    docs/registration.md), all at once on other devices (as before 0.5.5; sub-batches there are not measured).
    """
    n = init.shape[0]
    if max_batch == "auto":
        max_batch = 8 if init.device.type == "cpu" else None
    if max_batch and n > max_batch:
        parts = []
        for i in range(0, n, max_batch):
            sl = slice(i, i + max_batch)
            w = {k: v[sl] if torch.is_tensor(v) and v.dim() and v.shape[0] == n else v for k, v in weights.items()}
            parts.append(refine_residual(init[sl], moving[sl], fixed[sl], moving_attn[sl], fixed_attn[sl], settings,
                                         None if affine is None else tuple(a[sl] for a in affine), steps=steps,
                                         size=size, lr=lr, max_batch=None, **w))
        return torch.cat(parts)
    p0 = resize_ddf(init.detach(), size)
    if steps <= 0:
        return p0
    mi, fi = resize_image(moving, size), resize_image(fixed, size)
    ma, fa = resize_image(moving_attn.float(), size), resize_image(fixed_attn.float(), size)
    if weights.get("w_dist", 0) > 0 and weights.get("fixed_dist") is None:
        weights["fixed_dist"] = border_distances(fa)  # once per pair, not per step
    param = p0.clone().requires_grad_(True)
    opt = torch.optim.Adam([param], lr=lr)
    best = p0.clone()
    with torch.no_grad():
        best_loss = refine_loss(p0, mi, fi, ma, fa, settings, affine, **weights)
    for _ in range(steps):
        with torch.enable_grad():
            loss = refine_loss(param, mi, fi, ma, fa, settings, affine, **weights)
            opt.zero_grad()
            loss.sum().backward()
        with torch.no_grad():
            better = loss.detach() < best_loss
            best[better] = param.detach()[better]
            best_loss = torch.where(better, loss.detach(), best_loss)
        opt.step()
    with torch.no_grad():  # the last step's result
        last = refine_loss(param, mi, fi, ma, fa, settings, affine, **weights)
        better = last < best_loss
        best[better] = param.detach()[better]
    return best
