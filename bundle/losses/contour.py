# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Contour loss (paper eq. 2-4) and the CE + contour segmentation loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

__all__ = ["laplacian_edges", "ContourLoss", "SegmentationLoss"]

_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian_edges(x: torch.Tensor) -> torch.Tensor:
    """Laplacian edge map of (B, C, H, W) maps, per channel, replicate padding (0 on flat regions)."""
    k = _LAPLACE.to(x).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=x.shape[1])


class ContourLoss(_Loss):
    """L2 distance between the Laplacian edge maps of a soft prediction and the target mask.

    ``loss = mean((lap(p) - lap(t))**2)`` where ``p`` is the lung probability (softmax channel 1 of
    ``input`` logits, or ``input`` itself with ``softmax=False``) and ``t`` the 0/1 target. The mean is
    over pixels and batch (``reduction="mean"``), so the value does not depend on the image size.
    It is 0 for identical masks and positive otherwise. For hard masks it is not monotonic in a boundary
    shift: a 1-pixel shift overlaps edge pixels of opposite sign, which count double, so it can exceed a
    2-pixel shift; from 2 pixels on it grows with the shift (see tests/losses/test_contour.py).

    Args:
        softmax: ``input`` holds (B, 2, H, W) logits; take softmax channel 1. Otherwise ``input`` is a
            (B, 1, H, W) probability map.

    Shapes: ``input`` (B, 2, H, W) logits or (B, 1, H, W) probabilities; ``target`` (B, 1, H, W) 0/1.
    """

    def __init__(self, softmax: bool = True, reduction: str = "mean"):
        super().__init__(reduction=reduction)
        self.softmax = softmax

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(input, 1)[:, 1:2] if self.softmax else input
        if p.shape != target.shape:
            raise ValueError(f"prediction {tuple(p.shape)} and target {tuple(target.shape)} differ")
        d = (laplacian_edges(p) - laplacian_edges(target.float())) ** 2
        if self.reduction == "mean":
            return d.mean()
        if self.reduction == "sum":
            return d.sum()
        return d.flatten(1).mean(1)


class SegmentationLoss(_Loss):
    """Cross-entropy + ``contour_weight`` * :class:`ContourLoss` (paper eq. 3: weight 1.75; eq. 4: 2.0).

    Shapes: ``input`` (B, 2, H, W) logits; ``target`` (B, 1, H, W) with 0/1 labels.
    ``contour_weight=0`` gives the CE-only ablation of Table 2/3.
    """

    def __init__(self, contour_weight: float = 1.75):
        super().__init__()
        self.contour_weight = float(contour_weight)
        self.contour = ContourLoss()

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(input, target[:, 0].long())
        if self.contour_weight:
            loss = loss + self.contour_weight * self.contour(input, target)
        return loss
