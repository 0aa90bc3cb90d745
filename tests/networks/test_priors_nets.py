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


def test_segnet_weights_carry_their_working_size():
    torch.manual_seed(0)
    a = LungSegNet(work_size=64).eval()
    b = LungSegNet().eval()  # default 128
    b.load_state_dict(a.state_dict())
    assert b.work_size == 64
    x = torch.rand(2, 1, 96, 96)
    assert torch.equal(a(x), b(x))  # the same computation, not the same weights at another scale
    # weights saved before the size was stored keep the constructor's size
    old = {k: v for k, v in a.state_dict().items() if k != "work_size_code"}
    c = LungSegNet(work_size=32)
    c.load_state_dict(old)
    assert c.work_size == 32
    bad = dict(a.state_dict(), work_size_code=torch.tensor(40))
    with pytest.raises(ValueError, match="working size 40 in the weights is not a positive multiple of 16"):
        LungSegNet().load_state_dict(bad)


def test_init_weights_fine_tunes_a_segnet_at_the_configured_working_size(tmp_path):
    from bundle.workflow import init_weights

    torch.manual_seed(0)
    src = LungSegNet(work_size=64)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    net = init_weights(LungSegNet(work_size=32), tmp_path / "w.pt", "segmentation")
    assert net.work_size == 32 and int(net.state_dict()["work_size_code"]) == 32
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), src.parameters()))
