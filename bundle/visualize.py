# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Pictures for docs and outputs, with Pillow only: mask contours, checkerboards, field grids, Jacobian maps."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

__all__ = ["to_rgb", "contour", "overlay", "checkerboard", "grid_image", "jacobian_rgb", "tile"]


def to_rgb(img) -> np.ndarray:
    """(H, W) in [0, 1] (tensor or array) -> (H, W, 3) uint8."""
    a = np.asarray(torch.as_tensor(img).detach().cpu().float().squeeze())
    a = np.clip(a * 255, 0, 255).astype(np.uint8)
    return np.stack([a] * 3, -1)


def contour(mask) -> np.ndarray:
    """Boolean 1-pixel inner boundary of a (H, W) 0/1 mask."""
    m = np.asarray(torch.as_tensor(mask).detach().cpu().squeeze()) > 0.5
    inner = m.copy()
    inner[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return m & ~inner


def overlay(img, masks_colors) -> np.ndarray:
    """Image with the contour of each ``(mask, (r, g, b))`` drawn on top."""
    rgb = to_rgb(img)
    for m, col in masks_colors:
        rgb[contour(m)] = col
    return rgb


def checkerboard(a, b, tiles: int = 8) -> np.ndarray:
    """Checkerboard of two (H, W) images in [0, 1] -> RGB."""
    a, b = to_rgb(a), to_rgb(b)
    h, w = a.shape[:2]
    # tile (i, j) shows a where i + j is even, i.e. where the parities of i and j agree (a (H, W) bool array,
    # not two (H, W) int64 index grids: 4 instead of ~100 MiB for a 2048 x 2048 image)
    sel = ((np.arange(h) * tiles // h) % 2)[:, None] == ((np.arange(w) * tiles // w) % 2)[None, :]
    out = b.copy()
    out[sel] = a[sel]
    return out


def grid_image(ddf, step: int = 8, size: int | None = None, background=None) -> np.ndarray:
    """Deformed grid lines of a pull-back field (2, H, W): where each fixed-grid line samples the moving image."""
    u = np.asarray(torch.as_tensor(ddf).detach().cpu().float().squeeze())
    h, w = u.shape[1:]
    base = to_rgb(background) if background is not None else np.full((h, w, 3), 255, np.uint8)
    im = Image.fromarray(base)
    d = ImageDraw.Draw(im)
    rows, cols = np.mgrid[0:h, 0:w]
    pr, pc = rows + u[0], cols + u[1]
    for r in range(0, h, step):
        d.line(list(zip(pc[r].tolist(), pr[r].tolist())), fill=(200, 30, 30), width=1)
    for c in range(0, w, step):
        d.line(list(zip(pc[:, c].tolist(), pr[:, c].tolist())), fill=(30, 30, 200), width=1)
    return np.asarray(im)


def jacobian_rgb(det) -> np.ndarray:
    """Jacobian determinant map -> RGB: blue < 1 (shrink), white = 1, red > 1 (grow), black where det <= 0."""
    j = np.asarray(torch.as_tensor(det).detach().cpu().float().squeeze())
    t = np.clip(np.log2(np.clip(j, 1e-3, None)), -1, 1)  # halving .. doubling
    out = np.ones(j.shape + (3,), np.float32)
    neg, pos = t < 0, t > 0
    out[neg, 0] = out[neg, 1] = 1 + t[neg]
    out[pos, 1] = out[pos, 2] = 1 - t[pos]
    out = (out * 255).astype(np.uint8)
    out[j <= 0] = 0
    return out


def tile(panels: list[list[np.ndarray]], labels: list[list[str]] | None = None, pad: int = 4) -> Image.Image:
    """Rows of equally sized RGB panels with optional captions under each panel."""
    h, w = panels[0][0].shape[:2]
    cap = 14 if labels else 0
    nrow, ncol = len(panels), max(len(r) for r in panels)
    canvas = Image.new("RGB", (ncol * (w + pad) + pad, nrow * (h + cap + pad) + pad), "white")
    d = ImageDraw.Draw(canvas)
    for i, row in enumerate(panels):
        for j, p in enumerate(row):
            x, y = pad + j * (w + pad), pad + i * (h + cap + pad)
            canvas.paste(Image.fromarray(p), (x, y))
            if labels:
                d.text((x + 2, y + h + 1), labels[i][j], fill=(0, 0, 0))
    return canvas
