# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Regularisers of displacement fields."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

__all__ = ["TotalVariationLoss"]


class TotalVariationLoss(_Loss):
    """Anisotropic total variation of a displacement field: ``mean(|d_row u|) + mean(|d_col u|)``.

    Forward differences, averaged over channels, pixels and batch; the field is in pixels, so a field that
    changes by 1 pixel per pixel along one axis has TV 1 (per that axis, averaged over both channels).
    0 for any constant (translation) field.

    Shapes: ``input`` (B, 2, H, W); returns a scalar.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        dr = (input[:, :, 1:, :] - input[:, :, :-1, :]).abs().mean()
        dc = (input[:, :, :, 1:] - input[:, :, :, :-1]).abs().mean()
        return dr + dc
