# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""The registration training loss (paper eq. 14) as one configurable module."""

from __future__ import annotations

import torch
from monai.losses import SSIMLoss
from torch.nn.modules.loss import _Loss

from .deform import TotalVariationLoss
from .image import GlobalNCCLoss
from .label import MaskCrossEntropyLoss, ShapeEncoderLoss

__all__ = ["RegistrationLoss"]


class RegistrationLoss(_Loss):
    """``λ_ncc (-NCC) + λ_ssim (1 - SSIM) + λ_ce CE + λ_ae ||enc(w) - enc(f)||² + λ_df TV`` (paper eq. 14).

    ``-NCC`` is :class:`GlobalNCCLoss`, ``1 - SSIM`` is MONAI ``SSIMLoss`` (11x11 Gaussian window, data
    range 1), so the image part equals the paper's ``-(λ_ncc NCC + λ_ssim SSIM)`` up to a constant. A weight
    of 0 switches a term off (and skips its computation); ``encoder=None`` forces ``λ_ae = 0``.

    ``forward(fixed, warped, fixed_mask, warped_mask, ddf)`` with images (B, 1, H, W) in [0, 1], masks
    (B, 1, H, W) (warped mask soft in [0, 1]) and the field (B, 2, H, W) in pixels returns a dict of the
    weighted terms and ``"loss"``, their sum.
    """

    def __init__(self, ncc: float = 1.0, ssim: float = 1.0, ce: float = 1.0, ae: float = 0.1, df: float = 3.5,
                 encoder: torch.nn.Module | None = None, ssim_win_size: int = 11):
        super().__init__()
        self.w = {"ncc": float(ncc), "ssim": float(ssim), "ce": float(ce), "ae": float(ae) if encoder else 0.0,
                  "df": float(df)}
        self.ncc = GlobalNCCLoss()
        self.ssim = SSIMLoss(spatial_dims=2, data_range=1.0, kernel_type="gaussian", win_size=ssim_win_size)
        self.ce = MaskCrossEntropyLoss()
        self.ae = ShapeEncoderLoss(encoder) if encoder is not None else None
        self.df = TotalVariationLoss()

    def forward(self, fixed, warped, fixed_mask, warped_mask, ddf) -> dict[str, torch.Tensor]:
        terms = {}
        if self.w["ncc"]:
            terms["ncc"] = self.w["ncc"] * self.ncc(warped, fixed)
        if self.w["ssim"]:
            terms["ssim"] = self.w["ssim"] * self.ssim(warped.float(), fixed.float())
        if self.w["ce"]:
            terms["ce"] = self.w["ce"] * self.ce(warped_mask, fixed_mask)
        if self.w["ae"]:
            terms["ae"] = self.w["ae"] * self.ae(warped_mask, fixed_mask)
        if self.w["df"]:
            terms["df"] = self.w["df"] * self.df(ddf)
        terms["loss"] = sum(terms.values())
        return terms
