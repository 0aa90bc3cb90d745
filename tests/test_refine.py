import pytest
import torch

from bundle.networks import MultiScaleRegNet
from bundle.refine import refine_loss, refine_residual
from bundle.registration import RegSettings, predict_field
from bundle.spatial import resize_image

from .test_registration import _blob


@pytest.mark.parametrize("integrate", [False, True])
def test_refinement_never_raises_its_loss_and_improves_a_shift(integrate):
    torch.manual_seed(0)
    st = RegSettings(work_size=32, attention=True, integrate=integrate)
    fixed = torch.cat([_blob(64), _blob(64)])
    moving = torch.cat([_blob(64, shift=(3, -3)), _blob(64)])  # pair 2 is already aligned
    init = torch.randn(2, 2, 32, 32) * 0.3
    best = refine_residual(init, moving, fixed, moving, fixed, st, steps=15, size=64, lr=0.1)
    assert best.shape == (2, 2, 64, 64)
    start = refine_loss(resize_image(init, 64) * 2, moving, fixed, moving, fixed, st)
    end = refine_loss(best, moving, fixed, moving, fixed, st)
    assert torch.all(end <= start + 1e-6)
    assert end[0] < start[0] - 0.05  # the shifted pair gets much better
    same = refine_residual(init, moving, fixed, moving, fixed, st, steps=0, size=64)
    torch.testing.assert_close(same, resize_image(init, 64) * 2)


def test_predict_field_with_refinement_returns_output_grid():
    net = MultiScaleRegNet().eval()
    st = RegSettings(work_size=32, attention=True, affine=True, integrate=True)
    fixed, moving = _blob(128), _blob(128, shift=(6, -4))
    with torch.no_grad():
        out = predict_field(net, st, moving, fixed, moving, fixed, refine_steps=5, refine_size=64)
    assert out["ddf"].shape == (1, 2, 128, 128) and out["residual"].shape == (1, 2, 64, 64)
    with pytest.raises(ValueError):
        predict_field(net, RegSettings(work_size=32, attention=False), moving, fixed, refine_steps=2)


def test_refine_weights_reach_the_refinement_and_a_heavier_mask_term_aligns_the_masks_better():
    """``predict_field(refine_weights={"w_mask": W})`` is what ``cxreg evaluate --refine-mask-weight W`` sets: with
    the mask term on (and image similarity) the warped moving mask overlaps the fixed mask better (Dice) than with
    smoothness alone, and a misspelt weight name is refused."""
    from bundle.spatial import warp

    torch.manual_seed(0)
    net = MultiScaleRegNet().eval()
    st = RegSettings(work_size=32, attention=True, affine=False, integrate=True)
    fixed, moving = _blob(64), _blob(64, shift=(5, -4))
    dices = []
    for w in (0.0, 10.0):
        with torch.no_grad():
            out = predict_field(net, st, moving, fixed, moving, fixed, refine_steps=30, refine_size=64,
                                refine_weights={"w_mask": w, "w_img": 0.0 if w == 0 else 1.0})
        wm = warp(moving, out["ddf"])
        dices.append(float(2 * (wm * fixed).sum() / (wm.sum() + fixed.sum())))
    assert dices[1] > dices[0] + 0.01
    with pytest.raises(TypeError):
        predict_field(net, st, moving, fixed, moving, fixed, refine_steps=1, refine_size=64,
                      refine_weights={"w_masks": 1.0})
