import pytest
import torch

from bundle.networks import LungSegNet, MaskAutoEncoder, ShapeEncoder


def test_segnet_size_and_shapes():
    net = LungSegNet().eval()
    n = sum(p.numel() for p in net.parameters())
    assert 1.7e6 < n < 2.0e6  # the paper's ~1.9M
    with torch.no_grad():
        assert net(torch.rand(2, 1, 256, 200)).shape == (2, 2, 256, 200)
        assert net(torch.rand(1, 1, 64, 64)).shape == (1, 2, 64, 64)


def test_segnet_is_intensity_agnostic():
    torch.manual_seed(0)
    net = LungSegNet(work_size=32).eval()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(3 * x + 5), atol=1e-4, rtol=1e-4)


def test_segnet_rejects_3d():
    with pytest.raises(ValueError):
        LungSegNet(spatial_dims=3)


def test_autoencoder_shapes_and_encoder():
    ae = MaskAutoEncoder()
    m = (torch.rand(3, 1, 64, 64) > 0.5).float()
    assert ae(m).shape == (3, 2, 64, 64) and ae.encode(m).shape == (3, 64)
    assert ae.encode(torch.rand(2, 1, 256, 256)).shape == (2, 64)
    full = MaskAutoEncoder(output_input_size=True)
    assert full(torch.rand(1, 1, 256, 256)).shape == (1, 2, 256, 256)
    with pytest.raises(ValueError):
        MaskAutoEncoder(size=60)


def test_shape_encoder_is_frozen_but_differentiable():
    ae = MaskAutoEncoder()
    enc = ae.as_encoder()
    assert isinstance(enc, ShapeEncoder) and not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training
    m = torch.rand(2, 1, 64, 64, requires_grad=True)
    torch.testing.assert_close(enc(m), ae.encode(m))
    enc(m).pow(2).sum().backward()
    assert m.grad.abs().sum() > 0


def test_seg_ensemble_averages_the_members_probabilities_and_loads_from_a_plus_name(tmp_path):
    from bundle.networks import SegEnsemble
    from bundle.priors import ensemble_members, load_segmentation

    torch.manual_seed(0)
    a, b = LungSegNet(work_size=32).eval(), LungSegNet(work_size=32, intensity="equalize").eval()
    x = torch.rand(2, 1, 48, 48)
    ens = SegEnsemble([a, b]).eval()
    with torch.no_grad():
        expected = 0.5 * (torch.softmax(a(x), 1) + torch.softmax(b(x), 1))
        torch.testing.assert_close(torch.softmax(ens(x), 1), expected, atol=1e-6, rtol=1e-5)
        assert ens(x).shape == (2, 2, 48, 48)
    torch.save(a.state_dict(), tmp_path / "a.pt")
    torch.save(b.state_dict(), tmp_path / "b.pt")
    name = f"{tmp_path / 'a.pt'}+{tmp_path / 'b.pt'}"
    assert ensemble_members(name) == [str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]
    assert ensemble_members("JSRT") is None
    loaded = load_segmentation(name, work_size=32)
    assert isinstance(loaded, SegEnsemble) and [m.intensity for m in loaded.members] == ["zscore", "equalize"]
    with torch.no_grad():
        torch.testing.assert_close(torch.softmax(loaded(x), 1), expected, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="non-empty"):
        ensemble_members("JSRT+")
