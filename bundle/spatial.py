# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Geometry of displacement fields, written once (see docs/conventions.md).

* Images are ``(B, C, H, W)`` tensors; pixel ``p = (row, col)``.
* A displacement field (DDF) ``u`` is ``(B, 2, H, W)`` in **pixels of its own grid**; channel 0 moves
  along rows (positive = down), channel 1 along columns (positive = right). This is MONAI's channel
  order (channel i = spatial axis i).
* Direction: pull-back. ``warped[p] = moving[p + u(p)]``: for every fixed-grid pixel, ``u`` says where
  to sample the moving image. This is MONAI ``Warp`` and ITK's displacement-field transform.
* ``Warp`` samples with ``align_corners=True`` (pixel index = sampling coordinate) and border padding.
* Changing grids (64x64 -> 256x256) uses the pixel-as-area model of area down-sampling: pixel ``i`` of
  an ``n``-grid covers ``[i, i+1) * N/n`` of an ``N``-grid, i.e. its centre is ``(i + 0.5) * N/n - 0.5``.
  A field is therefore resized with ``align_corners=False`` bilinear interpolation and its vectors are
  multiplied by ``N/n`` (per axis).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "warp",
    "warp_mask",
    "resize_ddf",
    "resize_image",
    "resize_mask",
    "identity_grid",
    "jacobian_determinant",
    "compose_ddf",
    "affine_ddf",
    "integrate_velocity",
    "remove_folds",
]

_WARPS: dict = {}


def _warp_op(mode: str, padding_mode: str):
    from monai.networks.blocks import Warp

    key = (mode, padding_mode)
    if key not in _WARPS:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _WARPS[key] = Warp(mode=mode, padding_mode=padding_mode)
    return _WARPS[key]


_INTEGRATORS: dict = {}


def integrate_velocity(velocity: torch.Tensor, num_steps: int = 7) -> torch.Tensor:
    """Stationary velocity field (B, 2, H, W) -> displacement by scaling and squaring (MONAI ``DVF2DDF``)."""
    if num_steps not in _INTEGRATORS:
        import warnings

        from monai.networks.blocks import DVF2DDF

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _INTEGRATORS[num_steps] = DVF2DDF(num_steps=num_steps, mode="bilinear", padding_mode="zeros")
    return _INTEGRATORS[num_steps](velocity)


def warp(image: torch.Tensor, ddf: torch.Tensor, mode: str = "bilinear", padding_mode: str = "border") -> torch.Tensor:
    """Warp ``image`` (B, C, H, W) with ``ddf`` (B, 2, H, W) by MONAI ``Warp`` (pull-back, pixels)."""
    if ddf.shape[1] != 2 or ddf.shape[2:] != image.shape[2:] or ddf.shape[0] != image.shape[0]:
        raise ValueError(f"ddf shape {tuple(ddf.shape)} does not fit image shape {tuple(image.shape)}")
    return _warp_op(mode, padding_mode)(image, ddf)


def warp_mask(mask: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
    """Warp a binary mask (B, 1, H, W): bilinear on the 0/1 values, then threshold at 0.5.

    For two labels this equals warping the one-hot encoding bilinearly and taking the argmax.
    Returns a float tensor of 0/1.
    """
    return (warp(mask.float(), ddf, mode="bilinear", padding_mode="zeros") > 0.5).float()


def resize_image(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize (B, C, H, W) images: area averaging when shrinking, bilinear (align_corners=False) when growing."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(image.shape[2:]) == size:
        return image
    if size[0] <= image.shape[2] and size[1] <= image.shape[3]:
        return F.interpolate(image.float(), size=size, mode="area")
    return F.interpolate(image.float(), size=size, mode="bilinear", align_corners=False)


def resize_mask(mask: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize binary masks (B, 1, H, W): area fraction (or bilinear when growing) thresholded at 0.5."""
    return (resize_image(mask.float(), size) > 0.5).float()


def resize_ddf(ddf: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resample a (B, 2, h, w) field to ``size`` and rescale its vectors to the new pixel size.

    Bilinear with ``align_corners=False`` (pixel-as-area model, consistent with area down-sampling),
    channel 0 multiplied by ``H/h`` and channel 1 by ``W/w``. A constant field of ``d`` pixels at 64x64
    becomes exactly ``4 d`` at 256x256.
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    h, w = ddf.shape[2:]
    if (h, w) == size:
        return ddf
    out = F.interpolate(ddf, size=size, mode="bilinear", align_corners=False)
    scale = torch.tensor([size[0] / h, size[1] / w], dtype=ddf.dtype, device=ddf.device).view(1, 2, 1, 1)
    return out * scale


def identity_grid(shape: tuple[int, int], device=None, dtype=torch.float32) -> torch.Tensor:
    """(1, 2, H, W) grid of pixel coordinates (row, col)."""
    rows = torch.arange(shape[0], device=device, dtype=dtype)
    cols = torch.arange(shape[1], device=device, dtype=dtype)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), 0)[None]


def compose_ddf(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Field of "apply ``first``, then ``second``" in pull-back form: ``u(p) = second(p) + first(p + second(p))``.

    With ``warp(warp(m, first), second) ~= warp(m, compose_ddf(first, second))``.
    """
    return second + warp(first, second, mode="bilinear", padding_mode="border")


def affine_ddf(matrix: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Pull-back field of an affine map in pixel coordinates.

    ``matrix`` is (B, 2, 3) mapping fixed (row, col, 1) to moving (row, col); returns (B, 2, H, W).
    """
    grid = identity_grid(shape, device=matrix.device, dtype=matrix.dtype)  # 1,2,H,W
    flat = torch.cat([grid.flatten(2), torch.ones_like(grid[:, :1]).flatten(2)], 1)  # 1,3,HW
    moved = torch.einsum("bij,njk->bik", matrix, flat)  # B,2,HW
    return moved.view(matrix.shape[0], 2, *shape) - grid


def jacobian_determinant(ddf: torch.Tensor) -> torch.Tensor:
    """Determinant of the Jacobian of ``x -> x + u(x)`` for (B, 2, H, W) fields; returns (B, H, W).

    Stencil: central differences in the interior, one-sided first differences on the border rows and
    columns (``torch.gradient`` with unit spacing, edge_order=1). ``det = (1 + d0u0)(1 + d1u1) - d1u0 d0u1``.
    Units cancel, so the determinant does not depend on the pixel spacing.
    """
    if ddf.ndim != 4 or ddf.shape[1] != 2:
        raise ValueError(f"expected a (B, 2, H, W) field, got {tuple(ddf.shape)}")
    d0u0, d1u0 = torch.gradient(ddf[:, 0].float(), dim=(1, 2))
    d0u1, d1u1 = torch.gradient(ddf[:, 1].float(), dim=(1, 2))
    if torch.is_grad_enabled() and ddf.requires_grad:
        return (1 + d0u0) * (1 + d1u1) - d1u0 * d0u1
    # no graph to keep: the same arithmetic in the four gradient buffers (peak 4 instead of ~9 (B, H, W) arrays;
    # a 2048 x 2048 field: ~65 MiB instead of ~175 MiB)
    return d0u0.add_(1).mul_(d1u1.add_(1)).sub_(d1u0.mul_(d0u1))


def remove_folds(ddf: torch.Tensor, max_iters: int = 1000, radius: int = 2, min_det: float = 0.0,
                 grow_every: int = 200, window: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Locally smooth a (B, 2, H, W) field where it folds, until no pixel has ``det J <= min_det``.

    Every iteration finds the pixels with :func:`jacobian_determinant` ``<= min_det``, grows them by ``radius``
    pixels (a square neighbourhood) and replaces the field there by its 3x3 mean (replicate padding); the field
    elsewhere is left exactly as it was. A fold that survives ``grow_every`` iterations gets a neighbourhood
    twice as wide (repeated averaging of a wide enough region tends to a fold-free, near-constant field).
    Fields without folds are returned unchanged (same values), and only the batch items that fold are
    processed. Returns ``(field, remaining)``: the corrected field and, per item, the number of pixels still at
    ``det J <= min_det`` after ``max_iters`` iterations (0 when it converged).

    ``window`` (default): iterate on a window around the folds instead of the whole grid (a 2048 x 2048 field
    with a few folds: a few MiB instead of ~250 MiB); the result is the same, value for value — the window
    grows, and the iteration restarts, whenever the smoothed region comes within 3 pixels of its inner edges.
    """
    if ddf.ndim != 4 or ddf.shape[1] != 2:
        raise ValueError(f"expected a (B, 2, H, W) field, got {tuple(ddf.shape)}")
    out = ddf.clone()
    bad = jacobian_determinant(out) <= min_det  # B,H,W
    todo = bad.flatten(1).any(1).nonzero().flatten()
    remaining = torch.zeros(ddf.shape[0], dtype=torch.long, device=ddf.device)
    if todo.numel() == 0:
        return out, remaining
    H, W = ddf.shape[2:]
    rows, cols = bad[todo].any(0).nonzero(as_tuple=True)
    b0, b1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    margin = 4 * radius + 8 if window else max(H, W)
    while True:
        y0, y1, x0, x1 = max(b0 - margin, 0), min(b1 + margin, H), max(c0 - margin, 0), min(c1 + margin, W)
        res = _smooth_folds(out[todo, :, y0:y1, x0:x1], bad[todo, y0:y1, x0:x1], (y0 > 0, y1 < H, x0 > 0, x1 < W),
                            max_iters, radius, min_det, grow_every, max(H, W))
        if res is not None:
            break
        margin *= 2  # the smoothing reached the window's inner edge: again on a wider window (at most the grid)
    sub, sub_bad = res
    out[todo, :, y0:y1, x0:x1] = sub.to(out.dtype)
    remaining[todo] = sub_bad.flatten(1).sum(1)
    return out, remaining


def _smooth_folds(sub: torch.Tensor, sub_bad: torch.Tensor, inner: tuple[bool, bool, bool, bool], max_iters: int,
                  radius: int, min_det: float, grow_every: int, side: int):
    """:func:`remove_folds`' iteration on a (B', 2, h, w) window whose ``inner`` edges (top, bottom, left, right)
    lie inside the grid; ``None`` if the smoothed region comes within 3 pixels of such an edge (outside that band
    the window's values, det J and region are those of the whole grid). Its 1-pixel inner edge rows, not folded
    at the start and not changed since, are not folded, whatever the window's one-sided differences say there
    (without this, such a false fold would only send the iteration to a wider window: same result, more time)."""
    guard = torch.zeros(sub.shape[2:], dtype=torch.bool, device=sub.device)
    edge = torch.zeros_like(guard)
    top, bottom, left, right = inner
    if top:
        guard[:3], edge[:1] = True, True
    if bottom:
        guard[-3:], edge[-1:] = True, True
    if left:
        guard[:, :3], edge[:, :1] = True, True
    if right:
        guard[:, -3:], edge[:, -1:] = True, True
    windowed = bool(edge.any())
    for it in range(max_iters):
        r = radius * 2 ** (it // max(grow_every, 1))
        r = min(r, side)
        # the square neighbourhood as two 1-D max pools (the same region; O(r) per pixel instead of O(r^2))
        region = F.max_pool2d(sub_bad[:, None].float(), (2 * r + 1, 1), stride=1, padding=(r, 0))
        region = F.max_pool2d(region, (1, 2 * r + 1), stride=1, padding=(0, r)) > 0  # B',1,h,w
        if windowed and bool((region[:, 0] & guard).any()):
            return None
        smooth = F.avg_pool2d(F.pad(sub, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        sub = torch.where(region, smooth, sub)
        sub_bad = jacobian_determinant(sub) <= min_det
        if windowed:
            sub_bad &= ~edge
        if not sub_bad.any():
            break
    return sub, sub_bad
