# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Lung segmentation network ("attention" of the registration bundle, paper §3.2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import UNet

__all__ = ["LungSegNet", "SegEnsemble", "SegShiftTTA"]


class LungSegNet(torch.nn.Module):
    """MONAI ``UNet`` for 2-class lung segmentation, resolution- and intensity-agnostic at its input.

    The input is normalised per image (``intensity="zscore"``: zero mean, unit variance; ``"equalize"``: histogram
    equalisation, :func:`bundle.transforms.equalize_histogram`), area-resampled to ``work_size``, run
    through the U-Net, and the logits are resampled bilinearly back to the input size, so any image
    size works and the prediction lies on the input grid. The default widths (17, 34, 68, 136, 272) with 2
    residual units per level give 1.84M parameters (the paper's shrunk U-Net has ~1.9M).

    Args:
        spatial_dims: 2.
        channels, strides, num_res_units: as MONAI ``UNet``.
        work_size: side of the square the U-Net runs at (must be divisible by the product of strides). Saved in
            the state dict (buffer ``work_size_code``), so weights trained at 256 run at 256 when loaded into a
            default-constructed net; weights without it keep the constructor's value.
        intensity: ``zscore`` (default, as the per-dataset models) or ``equalize`` (the universal model). It is
            saved in the state dict (buffer ``intensity_code``), so loading weights restores it; weights
            without it are ``zscore``.

    Shapes: input (B, 1, H, W) grey image (any range); output (B, 2, H, W) logits (background, lung).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        channels: Sequence[int] = (17, 34, 68, 136, 272),
        strides: Sequence[int] = (2, 2, 2, 2),
        num_res_units: int = 2,
        work_size: int = 128,
        dropout: float = 0.0,
        intensity: str = "zscore",
    ):
        super().__init__()
        if spatial_dims != 2:
            raise ValueError("LungSegNet is 2D")
        self.work_size = int(work_size)
        self._divisor = int(np.prod(strides))
        self.unet = UNet(spatial_dims, 1, 2, channels=channels, strides=strides, num_res_units=num_res_units,
                         dropout=dropout)
        if intensity not in self.MODES:
            raise ValueError(f"intensity must be one of {self.MODES}, not {intensity!r}")
        self.intensity = intensity
        self.register_buffer("intensity_code", torch.tensor(self.MODES.index(intensity)))
        self.register_buffer("work_size_code", torch.tensor(self.work_size))

    MODES = ("zscore", "equalize")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "intensity_code"
        if key not in state_dict:  # weights saved before the option existed
            state_dict[key] = torch.tensor(0)
        code = int(state_dict[key])
        if not 0 <= code < len(self.MODES):
            raise ValueError(f"unknown intensity code {code} in the weights")
        self.intensity = self.MODES[code]
        key = prefix + "work_size_code"
        if key not in state_dict:  # weights saved before the working size was stored
            state_dict[key] = torch.tensor(self.work_size)
        size = int(state_dict[key])
        if size < self._divisor or size % self._divisor:
            raise ValueError(f"working size {size} in the weights is not a positive multiple of {self._divisor}")
        self.work_size = size
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        from ..transforms import normalize_intensity

        return normalize_intensity(x.float(), self.intensity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        x = self.normalise(x)
        if tuple(size) != (self.work_size, self.work_size):
            x = F.interpolate(x, size=(self.work_size,) * 2, mode="area" if size[0] >= self.work_size else "bilinear")
        y = self.unet(x)
        if tuple(y.shape[2:]) != tuple(size):
            y = F.interpolate(y, size=tuple(size), mode="bilinear", align_corners=False)
        return y


class SegEnsemble(torch.nn.Module):
    """Average of the lung probabilities of several segmentation networks, returned as logits.

    ``forward`` returns ``log(mean_i softmax(net_i(x)))``, so a softmax (or an argmax) of the output gives the
    averaged probabilities, and the ensemble drops in wherever a single :class:`LungSegNet` is used. Each member
    keeps its own intensity normalisation and working size.

    Shapes: input (B, 1, H, W) grey image; output (B, 2, H, W) logits.
    """

    def __init__(self, members: Sequence[torch.nn.Module]):
        super().__init__()
        if len(members) < 1:
            raise ValueError("SegEnsemble needs at least one member")
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([torch.softmax(m(x).float(), 1) for m in self.members]).mean(0)
        return torch.log(p.clamp_min(1e-12))


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` (B, C, H, W) moved by ``dy`` rows down and ``dx`` columns right, edges replicated (same shape)."""
    h, w = x.shape[2:]
    p = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)), mode="replicate")
    return p[:, :, max(-dy, 0) : max(-dy, 0) + h, max(-dx, 0) : max(-dx, 0) + w]


class SegShiftTTA(torch.nn.Module):
    """Test-time augmentation of a segmentation network by small shifts: the lung probabilities of the image
    and of four copies moved up, down, left and right (by ``shift`` of the image side, 4 px at 256 x 256) are
    shifted back and averaged, and returned as logits (as :class:`SegEnsemble`). Five network passes; it smooths
    the boundary errors that dominate the Hausdorff distance (docs/segmentation.md).

    Shapes: input (B, 1, H, W) grey image; output (B, 2, H, W) logits ``log(mean softmax)``.
    """

    def __init__(self, net: torch.nn.Module, shift: float = 1 / 64):
        super().__init__()
        if not 0 <= shift < 0.5:
            raise ValueError(f"shift must be a fraction of the image side in [0, 0.5), not {shift}")
        self.net = net
        self.shift = float(shift)

    def offsets(self, size: int) -> list[tuple[int, int]]:
        """The (dy, dx) pixel offsets used for an image of side ``size``: (0, 0) and the four moves."""
        s = int(round(self.shift * size))
        return [(0, 0)] + ([(s, 0), (-s, 0), (0, s), (0, -s)] if s > 0 else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offs = self.offsets(min(x.shape[2:]))
        p = torch.stack([_shift(torch.softmax(self.net(_shift(x, dy, dx)).float(), 1), -dy, -dx)
                         for dy, dx in offs]).mean(0)
        return torch.log(p.clamp_min(1e-12))
