# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Denoising convolutional autoencoder of lung masks: the anatomical shape prior (paper §3.3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MaskAutoEncoder", "ShapeEncoder"]


def _block(cin, cout, down: bool):
    conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1) if down else nn.ConvTranspose2d(cin, cout, 4, 2, 1)
    return nn.Sequential(conv, nn.InstanceNorm2d(cout, affine=True), nn.PReLU(cout))


class MaskAutoEncoder(nn.Module):
    """Conv encoder to a ``latent_dim`` vector and a mirrored decoder, for ``size`` x ``size`` masks.

    ``encode(mask)`` is the shape descriptor used (frozen) by the registration loss; masks of another size
    are area-resampled to ``size`` first. ``forward`` returns 2-class logits of the reconstruction.

    Args:
        spatial_dims: 2.
        size: mask side (64 in the paper).
        channels: encoder widths, one stride-2 convolution each (64 -> 4 with four levels).
        latent_dim: length of the shape vector.

    Shapes: input (B, 1, H, W) mask in [0, 1]; ``encode`` -> (B, latent_dim); output (B, 2, size, size) logits.
    """

    def __init__(self, spatial_dims: int = 2, size: int = 64, channels: Sequence[int] = (16, 32, 64, 64),
                 latent_dim: int = 64, output_input_size: bool = False):
        super().__init__()
        if spatial_dims != 2:
            raise ValueError("MaskAutoEncoder is 2D")
        self.size = int(size)
        self.output_input_size = output_input_size
        self.bottom = self.size // 2 ** len(channels)
        if self.bottom * 2 ** len(channels) != self.size:
            raise ValueError(f"size {size} is not divisible by 2**{len(channels)}")
        enc, c = [], 1
        for ch in channels:
            enc.append(_block(c, ch, True))
            c = ch
        self.encoder_conv = nn.Sequential(*enc)
        self.to_latent = nn.Linear(c * self.bottom**2, latent_dim)
        self.from_latent = nn.Linear(latent_dim, c * self.bottom**2)
        dec = []
        for ch in list(channels[::-1][1:]) + [channels[0]]:
            dec.append(_block(c, ch, False))
            c = ch
        self.decoder_conv = nn.Sequential(*dec, nn.Conv2d(c, 2, 3, padding=1))
        self._c = channels[-1]

    def encode(self, mask: torch.Tensor) -> torch.Tensor:
        x = mask.float()
        if tuple(x.shape[2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="area" if x.shape[2] >= self.size else "bilinear")
        return self.to_latent(self.encoder_conv(x * 2 - 1).flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = self.from_latent(z).view(z.shape[0], self._c, self.bottom, self.bottom)
        return self.decoder_conv(x)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        y = self.decode(self.encode(mask))
        if self.output_input_size and tuple(y.shape[2:]) != tuple(mask.shape[2:]):
            y = F.interpolate(y, size=tuple(mask.shape[2:]), mode="bilinear", align_corners=False)
        return y

    def as_encoder(self) -> "ShapeEncoder":
        """The encoder alone, frozen, as a module whose forward is :meth:`encode`."""
        return ShapeEncoder(self)


class ShapeEncoder(nn.Module):
    """Frozen encoder of a trained :class:`MaskAutoEncoder`: (B, 1, H, W) mask -> (B, latent_dim).

    Gradients flow to the input (the registration loss needs them) but not into the weights.
    """

    def __init__(self, ae: MaskAutoEncoder):
        super().__init__()
        self.size = ae.size
        self.encoder_conv, self.to_latent = ae.encoder_conv, ae.to_latent
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # always in inference mode

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return MaskAutoEncoder.encode(self, mask)
