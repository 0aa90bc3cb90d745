# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Image similarity losses."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

__all__ = ["GlobalNCCLoss"]


class GlobalNCCLoss(_Loss):
    """Negative global normalised cross-correlation (paper eq. 8), per image over all pixels.

    ``loss = -NCC(fixed, warped)`` averaged over the batch: -1 for images that are an increasing affine
    function of each other, 0 for uncorrelated ones, +1 for inverted ones. MONAI's
    ``LocalNormalizedCrossCorrelationLoss`` is the windowed version; the paper uses the global one.

    Shapes: ``input``, ``target`` (B, C, H, W); returns a scalar (``reduction="mean"``) or (B,).
    """

    def __init__(self, eps: float = 1e-5, reduction: str = "mean"):
        super().__init__(reduction=reduction)
        self.eps = eps

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.shape != target.shape:
            raise ValueError(f"shapes differ: {tuple(input.shape)} vs {tuple(target.shape)}")
        a = input.flatten(1).float()
        b = target.flatten(1).float()
        a = a - a.mean(1, keepdim=True)
        b = b - b.mean(1, keepdim=True)
        ncc = (a * b).sum(1) / torch.sqrt((a * a).sum(1) * (b * b).sum(1) + self.eps)
        loss = -ncc
        return loss.mean() if self.reduction == "mean" else (loss.sum() if self.reduction == "sum" else loss)
