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
