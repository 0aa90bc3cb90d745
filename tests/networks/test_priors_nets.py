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
    # more than two members (docs/segmentation.md's four-member SHEN ensemble): each weighs 1/n
    c = LungSegNet(work_size=32).eval()
    torch.save(c.state_dict(), tmp_path / "c.pt")
    three = load_segmentation(f"{name}+{tmp_path / 'c.pt'}", work_size=32)
    with torch.no_grad():
        want = (2 * expected + torch.softmax(c(x), 1)) / 3
        torch.testing.assert_close(torch.softmax(three(x), 1), want, atol=1e-6, rtol=1e-5)
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


class _FixedMap(torch.nn.Module):
    """A 'network' that ignores its input and predicts lung (logit +20) on the square [16:32, 16:32]."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))  # so .parameters() is not empty

    def forward(self, x):
        lung = torch.full_like(x, -20.0)
        lung[:, :, 16:32, 16:32] = 20.0
        return torch.cat([-lung, lung], 1)


def test_shift_tta_averages_the_back_shifted_probabilities_of_five_moves():
    from bundle.networks import SegShiftTTA

    tta = SegShiftTTA(_FixedMap(), shift=1 / 16).eval()  # 4 px on a 64 x 64 image
    assert tta.offsets(64) == [(0, 0), (4, 0), (-4, 0), (0, 4), (0, -4)]
    assert tta.offsets(256)[1] == (16, 0) and SegShiftTTA(_FixedMap()).offsets(256)[1] == (4, 0)
    with torch.no_grad():
        p = torch.softmax(tta(torch.rand(1, 1, 64, 64)), 1)[0, 1]
    assert p.shape == (64, 64)
    # inside the square every move still covers it; 2 px above it only the move shifted back upwards does;
    # a corner pixel outside both the rows and the columns of the square is covered by none
    assert p[24, 24] == pytest.approx(1.0, abs=1e-6)
    assert p[14, 24] == pytest.approx(0.2, abs=1e-6) and p[34, 24] == pytest.approx(0.2, abs=1e-6)
    assert p[24, 14] == pytest.approx(0.2, abs=1e-6) and p[24, 34] == pytest.approx(0.2, abs=1e-6)
    assert p[14, 14] == pytest.approx(0.0, abs=1e-6) and p[5, 50] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="fraction"):
        SegShiftTTA(_FixedMap(), shift=0.6)


def test_shift_tta_of_a_pointwise_network_changes_nothing_away_from_the_edges():
    from bundle.networks import SegShiftTTA

    class Pointwise(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(3.0))

        def forward(self, x):
            return torch.cat([-self.w * x, self.w * x], 1)

    net = Pointwise()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        plain = torch.softmax(net(x), 1)
        tta = torch.softmax(SegShiftTTA(net, shift=1 / 16)(x), 1)
    torch.testing.assert_close(tta[..., 4:-4, 4:-4], plain[..., 4:-4, 4:-4], atol=1e-6, rtol=1e-5)


def test_tta_suffix_wraps_a_loaded_model_and_is_parsed_strictly(tmp_path):
    from bundle.networks import SegEnsemble, SegShiftTTA
    from bundle.priors import load_segmentation, split_tta

    torch.manual_seed(0)
    a = LungSegNet(work_size=32).eval()
    torch.save(a.state_dict(), tmp_path / "a.pt")
    assert split_tta("JSRT256@TTA") == ("JSRT256", True) and split_tta("JSRT256") == ("JSRT256", False)
    assert split_tta(None) == (None, False)
    loaded = load_segmentation(f"{tmp_path / 'a.pt'}@tta", work_size=32)
    assert isinstance(loaded, SegShiftTTA) and isinstance(loaded.net, LungSegNet)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), SegShiftTTA(a)(x))
    both = load_segmentation(f"{tmp_path / 'a.pt'}+{tmp_path / 'a.pt'}@tta", work_size=32)
    assert isinstance(both, SegShiftTTA) and isinstance(both.net, SegEnsemble)
    odd = tmp_path / "b@tta"  # an existing file whose name ends with the suffix is a path, not a request
    torch.save(a.state_dict(), odd)
    assert split_tta(str(odd)) == (str(odd), False) and isinstance(load_segmentation(str(odd), work_size=32), LungSegNet)
    with pytest.raises(ValueError, match="before @tta"):
        split_tta("@tta")
