# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Test-time refinement (instance optimisation) of a predicted field, per pair.

The network's field (residual, or velocity when the model integrates) is resized to ``size`` and optimised
for ``steps`` Adam steps on

    loss = λ_img (-NCC(fixed·m_f, warped moving·m_m)) + λ_mask (1 - soft Dice(warped m_m, m_f))
           + λ_smooth TV(field)

where ``m`` are the attention (predicted lung) masks, so no ground truth is used. The best iterate (lowest
loss, per pair) is returned, so the loss it optimises is never higher than at the start.
"""

from __future__ import annotations

import torch

from .losses import GlobalNCCLoss
from .spatial import identity_grid, integrate_velocity, resize_ddf, resize_image, warp

__all__ = ["refine_residual", "refine_loss"]


def _soft_dice(a, b, eps=1e-5):
    inter = (a * b).flatten(1).sum(1)
    return 1 - (2 * inter + eps) / (a.flatten(1).sum(1) + b.flatten(1).sum(1) + eps)


def refine_loss(param, moving_in, fixed_in, moving_attn, fixed_attn, settings, affine=None, w_img=1.0, w_mask=1.0,
                w_smooth=0.5) -> torch.Tensor:
    """Per-pair loss (B,) of a residual/velocity ``param`` (B, 2, S, S); images and masks at size S."""
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
    return w_img * ncc + w_mask * _soft_dice(wa, fixed_attn) + w_smooth * tv


def refine_residual(init: torch.Tensor, moving, fixed, moving_attn, fixed_attn, settings, affine=None,
                    steps: int = 20, size: int = 128, lr: float = 0.1, **weights) -> torch.Tensor:
    """Optimise ``init`` (B, 2, s, s) (network residual or velocity, pixels of its grid) at ``size``.

    ``moving``, ``fixed`` are the (masked) images and ``*_attn`` the masks, at any size (resampled to ``size``).
    Returns the best parameter per pair at ``size`` (pixels of that grid); ``steps=0`` returns ``init`` resized.
    """
    p0 = resize_ddf(init.detach(), size)
    if steps <= 0:
        return p0
    mi, fi = resize_image(moving, size), resize_image(fixed, size)
    ma, fa = resize_image(moving_attn.float(), size), resize_image(fixed_attn.float(), size)
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
