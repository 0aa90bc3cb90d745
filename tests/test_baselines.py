"""The classical baselines return fields in our convention (sign and axis checked on a known shift)."""

import numpy as np
import pytest
import torch

from bundle.spatial import warp

from .conftest import lung_mask


def _pair():
    fixed = 200.0 - 150.0 * lung_mask(96).astype(np.float32)
    moving = 200.0 - 150.0 * lung_mask(96, shift=(0, 4)).astype(np.float32)  # moving = fixed shifted right by 4
    return fixed, moving


@pytest.mark.parametrize("name", ["elastix", "syn"])
def test_baseline_recovers_a_shift(name):
    if name == "elastix":
        itk = pytest.importorskip("itk")
        if not hasattr(itk, "elastix_registration_method"):  # itk's lazy loader imports it on first access
            pytest.skip("itk-elastix not installed")
        from bundle.baselines import elastix_register as reg
    else:
        pytest.importorskip("ants")
        from bundle.baselines import syn_register as reg
    fixed, moving = _pair()
    u = reg(fixed, moving)
    assert u.shape == (2, 96, 96)
    lung = lung_mask(96).astype(bool)
    # pull-back: fixed[p] = moving[p + (0, 4)] -> column displacement ~ +4 inside the lungs, row ~ 0
    assert abs(np.median(u[1][lung]) - 4) < 1.0 and abs(np.median(u[0][lung])) < 0.5
    w = warp(torch.from_numpy(moving)[None, None], torch.from_numpy(u)[None])[0, 0].numpy()
    assert np.abs(w - fixed).mean() < 0.5 * np.abs(moving - fixed).mean()
