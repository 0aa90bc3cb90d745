import pytest
import torch

from bundle.losses import GlobalNCCLoss, MaskCrossEntropyLoss, RegistrationLoss, ShapeEncoderLoss, TotalVariationLoss
from bundle.networks import MaskAutoEncoder


def test_global_ncc():
    torch.manual_seed(0)
    a = torch.rand(2, 1, 16, 16)
    assert GlobalNCCLoss()(a, a).item() == pytest.approx(-1.0, abs=1e-5)
    assert GlobalNCCLoss()(3 * a + 2, a).item() == pytest.approx(-1.0, abs=1e-5)
    assert GlobalNCCLoss()(1 - a, a).item() == pytest.approx(1.0, abs=1e-5)
    x = torch.zeros(1, 1, 4, 4)
    x[..., :2, :] = 1
    y = torch.zeros(1, 1, 4, 4)
    y[..., :, :2] = 1
    assert GlobalNCCLoss()(x, y).item() == pytest.approx(0.0, abs=1e-6)  # orthogonal halves
    assert GlobalNCCLoss(reduction="none")(a, a).shape == (2,)


def test_total_variation():
    u = torch.zeros(1, 2, 8, 8)
    u[:, 0] = 3.0
    assert TotalVariationLoss()(u).item() == 0.0
    v = torch.zeros(1, 2, 8, 8)
    v[:, 1] = torch.arange(8.0).view(1, 1, 8)  # +1 per column in channel 1
    assert TotalVariationLoss()(v).item() == pytest.approx(0.5)  # mean over both channels


def test_mask_cross_entropy():
    t = torch.zeros(1, 1, 4, 4)
    t[..., :2, :] = 1
    assert MaskCrossEntropyLoss()(t, t).item() == pytest.approx(-torch.log(torch.tensor(1 - 1e-4)).item(), rel=1e-3)
    half = torch.full_like(t, 0.5)
    assert MaskCrossEntropyLoss()(half, t).item() == pytest.approx(0.6931, abs=1e-4)


def test_shape_encoder_loss_frozen_and_zero_for_same_mask():
    enc = MaskAutoEncoder().as_encoder()
    loss = ShapeEncoderLoss(enc)
    assert list(loss.parameters()) == []
    m = (torch.rand(2, 1, 64, 64) > 0.5).float()
    assert loss(m, m).item() == 0.0
    w = torch.rand(2, 1, 64, 64, requires_grad=True)
    v = loss(w, m)
    v.backward()
    assert v.item() > 0 and w.grad.abs().sum() > 0


def test_registration_loss_terms_and_switches():
    torch.manual_seed(0)
    f = torch.rand(2, 1, 32, 32)
    m = (torch.rand(2, 1, 32, 32) > 0.5).float()
    ddf = torch.zeros(2, 2, 32, 32)
    full = RegistrationLoss(encoder=MaskAutoEncoder(size=32, channels=(8, 8, 8)).as_encoder())
    t = full(f, f, m, m, ddf)
    assert set(t) == {"ncc", "ssim", "ce", "ae", "df", "loss"}
    assert t["ncc"].item() == pytest.approx(-1.0, abs=1e-4) and t["ssim"].item() == pytest.approx(0.0, abs=1e-4)
    assert t["ae"].item() == 0 and t["df"].item() == 0
    assert t["loss"].item() == pytest.approx(sum(t[k].item() for k in ("ncc", "ssim", "ce", "ae", "df")))
    no_ssim = RegistrationLoss(ssim=0.0, encoder=None)(f, f, m, m, ddf)
    assert "ssim" not in no_ssim and "ae" not in no_ssim
