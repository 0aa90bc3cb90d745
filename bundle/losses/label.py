# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Anatomical (mask) losses of the registration: cross-entropy and shape-encoder distance (paper eq. 11-13)."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

__all__ = ["MaskCrossEntropyLoss", "ShapeEncoderLoss"]


class MaskCrossEntropyLoss(_Loss):
    """Two-class cross-entropy between a soft warped mask and a 0/1 target (paper eq. 12).

    With ``p`` the warped lung probability, ``-(t log p + (1 - t) log(1 - p))`` averaged over pixels: the
    categorical CE of one-hot(target) against (1 - p, p). ``p`` is clamped to [eps, 1 - eps].

    Shapes: ``input`` (B, 1, H, W) in [0, 1]; ``target`` (B, 1, H, W) 0/1; returns a scalar.
    """

    def __init__(self, eps: float = 1e-4):
        super().__init__()
        self.eps = eps

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = input.float().clamp(self.eps, 1 - self.eps)
        t = target.float()
        return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()


class ShapeEncoderLoss(_Loss):
    """Squared Euclidean distance between shape codes: ``||enc(warped) - enc(fixed)||^2`` (paper eq. 13).

    ``encoder`` is the frozen encoder of the mask autoencoder (:class:`bundle.networks.ShapeEncoder`); it is
    held outside the module's parameters so the optimiser and checkpoints of the registration network
    never see it. The squared distance is summed over the code and averaged over the batch.

    Shapes: ``input``, ``target`` (B, 1, H, W) masks in [0, 1]; returns a scalar.
    """

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self._encoder = [encoder]  # not a registered submodule

    @property
    def encoder(self) -> torch.nn.Module:
        return self._encoder[0]

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        with torch.no_grad():
            zt = enc(target.float())
        return (enc(input.float()) - zt).pow(2).sum(1).mean()
