# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Dense multi-scale registration network with DFSA fusion (paper §3.4, Fig. 3-4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["DFSA", "MultiScaleRegNet"]


def _conv(cin, cout, stride=1, norm=False):
    layers = [nn.Conv2d(cin, cout, 3, stride, 1)]
    if norm:
        layers.append(nn.InstanceNorm2d(cout, affine=True))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2))


class DFSA(nn.Module):
    """Displacement-field spatial attention: one sigmoid weight map per field channel.

    Each channel of the (already up-sampled) coarse field passes on its own through ``3x3`` convolutions
    (1 -> ``hidden`` -> ``hidden`` -> 1) ending in a sigmoid; the channel is multiplied by its map.

    Shapes: input (B, 2, H, W) field; output (B, 2, H, W) weighted field; ``weights(x)`` (B, 2, H, W) in [0, 1].
    """

    def __init__(self, hidden: int = 8):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(1, hidden, 3, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(hidden, hidden, 3, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(hidden, 1, 3, padding=1), nn.Sigmoid(),
            )
            for _ in range(2)
        )

    def weights(self, field: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(field[:, i : i + 1]) for i, b in enumerate(self.branches)], 1)

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        return field * self.weights(field)


class MultiScaleRegNet(nn.Module):
    """U-Net-like registration network predicting fields at scales 1, 1/2, 1/4, 1/8 fused coarse to fine.

    ``DF_k^a = fuse(up(DF_{k+1}^a)) + DF_k^c`` where ``up`` doubles the size (bilinear, pixel-area model)
    and the vectors (pixels of the finer grid), and ``fuse`` is :class:`DFSA` (``fusion="dfsa"``) or the
    identity (``fusion="add"``). With ``num_scales=n`` the ``n`` finest heads are used (``1`` = one field at
    full scale, as AC-RegNet). The output is in pixels of the input grid, channel 0 rows, channel 1 columns.

    Args:
        spatial_dims: 2.
        in_channels: 2 (moving, fixed).
        channels: widths of the encoder levels at scales 1, 1/2, 1/4, 1/8, 1/16 (bottleneck).
        num_scales: 1..4 fields fused.
        fusion: ``"dfsa"`` or ``"add"``.
        dfsa_hidden: width of the DFSA convolutions.
        convs_per_level: 3x3 convolutions per encoder/decoder level (1 = VoxelMorph-like, fastest).
        norm: instance normalisation after each convolution.
        integrate_scales: ``0`` (default) = the paper's additive fusion of displacements. ``n > 0`` = every head
            predicts a stationary velocity at its own scale, integrated there by scaling and squaring in ``n``
            steps, and the fusion *composes* the fields instead of adding them:
            ``DF_k^a(x) = d_k(x) + w(x) * up(DF_{k+1}^a)(x + d_k(x))`` with ``d_k = exp(v_k)`` and ``w`` the DFSA
            weights (1 with ``fusion="add"``): each scale's field is invertible, and so is their composition
            wherever the DFSA weights keep the coarse field invertible (per-scale integration, as opposed to
            integrating the fused field, ``RegSettings.integrate``).

    Shapes: input (B, 2, H, W) with H, W divisible by 16; output (B, 2, H, W) field.
    ``forward_all`` returns a dict with the per-scale raw fields ``"raw"``, fused fields ``"fused"``
    (coarse to fine) and DFSA weight maps ``"weights"``.
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 2, channels: Sequence[int] = (16, 32, 32, 64, 64),
                 num_scales: int = 4, fusion: str = "dfsa", dfsa_hidden: int = 8, convs_per_level: int = 1,
                 norm: bool = False, integrate_scales: int = 0):
        super().__init__()
        if spatial_dims != 2:
            raise ValueError("MultiScaleRegNet is 2D")
        if not 1 <= num_scales <= 4:
            raise ValueError(f"num_scales must be 1..4, got {num_scales}")
        if fusion not in ("dfsa", "add"):
            raise ValueError(f"fusion must be 'dfsa' or 'add', got {fusion!r}")
        if len(channels) != 5:
            raise ValueError("channels needs 5 widths (scales 1, 1/2, 1/4, 1/8 and the 1/16 bottleneck)")
        if integrate_scales < 0:
            raise ValueError(f"integrate_scales must be >= 0, got {integrate_scales}")
        self.num_scales, self.fusion, self.integrate_scales = num_scales, fusion, int(integrate_scales)
        c = list(channels)
        extra = lambda ch: [_conv(ch, ch, norm=norm) for _ in range(convs_per_level - 1)]  # noqa: E731
        self.enc = nn.ModuleList([nn.Sequential(_conv(in_channels, c[0], norm=norm), *extra(c[0]))])
        for i in range(1, 5):
            self.enc.append(nn.Sequential(_conv(c[i - 1], c[i], stride=2, norm=norm), *extra(c[i])))
        # decoder level k (scale 1/2^k) gets the up-sampled level k+1 features and the skip of level k
        self.dec = nn.ModuleList(
            nn.Sequential(_conv(c[k + 1] + c[k], c[k], norm=norm), *extra(c[k])) for k in range(4)
        )
        self.heads = nn.ModuleList(nn.Conv2d(c[k], 2, 3, padding=1) for k in range(4))
        for h in self.heads:  # start near the identity
            nn.init.normal_(h.weight, std=1e-5)
            nn.init.zeros_(h.bias)
        self.dfsa = nn.ModuleList(DFSA(dfsa_hidden) for _ in range(3)) if fusion == "dfsa" else None

    @staticmethod
    def upsample_field(field: torch.Tensor, size) -> torch.Tensor:
        from ..spatial import resize_ddf

        return resize_ddf(field, tuple(size))

    def forward_all(self, x: torch.Tensor) -> dict:
        if x.shape[2] % 16 or x.shape[3] % 16:
            raise ValueError(f"input size {tuple(x.shape[2:])} must be divisible by 16")
        skips, h = [], x
        for i, e in enumerate(self.enc):
            h = e(h)
            skips.append(h)
        feats = [None] * 4
        h = skips[4]
        for k in (3, 2, 1, 0):
            h = F.interpolate(h, size=skips[k].shape[2:], mode="bilinear", align_corners=False)
            h = self.dec[k](torch.cat([h, skips[k]], 1))
            feats[k] = h
        first = self.num_scales - 1  # coarsest head used
        raw, fused, weights = {}, {}, {}
        field = None
        from ..spatial import compose_ddf, integrate_velocity

        for k in range(first, -1, -1):
            raw[k] = self.heads[k](feats[k])
            d = integrate_velocity(raw[k], self.integrate_scales) if self.integrate_scales else raw[k]
            if field is None:
                field = d
            else:
                up = self.upsample_field(field, raw[k].shape[2:])
                if self.dfsa is not None:
                    w = self.dfsa[k].weights(up)
                    weights[k] = w
                    up = up * w
                field = compose_ddf(up, d) if self.integrate_scales else up + d
            fused[k] = field
        # fields at scale 1/2^k are in pixels of that grid; the finest (k = 0) is the input grid
        return {"ddf": field, "raw": raw, "fused": fused, "weights": weights}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)["ddf"]
