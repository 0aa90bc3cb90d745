import pytest
import torch

from bundle.networks import DFSA, MultiScaleRegNet


@pytest.mark.parametrize("scales", [1, 2, 3, 4])
@pytest.mark.parametrize("fusion", ["dfsa", "add"])
def test_shapes_and_gradients(scales, fusion):
    torch.manual_seed(0)
    net = MultiScaleRegNet(num_scales=scales, fusion=fusion)
    x = torch.rand(2, 2, 64, 48, requires_grad=True)
    out = net.forward_all(x)
    assert out["ddf"].shape == (2, 2, 64, 48)
    assert sorted(out["raw"]) == list(range(scales))
    assert out["raw"][scales - 1].shape[2:] == (64 // 2 ** (scales - 1), 48 // 2 ** (scales - 1))
    assert len(out["weights"]) == (scales - 1 if fusion == "dfsa" else 0)
    out["ddf"].pow(2).sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.heads[0].parameters())


def test_dfsa_weights_are_in_unit_interval_and_scale_each_channel():
    torch.manual_seed(0)
    d = DFSA()
    f = torch.randn(3, 2, 16, 16) * 10
    w = d.weights(f)
    assert w.shape == f.shape and w.min() >= 0 and w.max() <= 1
    torch.testing.assert_close(d(f), f * w)
    # channels are weighted independently: changing x does not change the y weights
    g = f.clone()
    g[:, 1] = 0
    torch.testing.assert_close(d.weights(g)[:, 0], w[:, 0])


def test_fusion_adds_upsampled_coarse_field():
    # with DFSA replaced by "add", the fine field is up(coarse)*2 + raw: check on a constant coarse field
    net = MultiScaleRegNet(num_scales=2, fusion="add")
    up = net.upsample_field(torch.full((1, 2, 8, 8), 1.5), (16, 16))
    torch.testing.assert_close(up, torch.full((1, 2, 16, 16), 3.0))


def test_starts_near_identity_and_bad_args():
    net = MultiScaleRegNet()
    assert net(torch.rand(1, 2, 32, 32)).abs().max() < 1e-2
    with pytest.raises(ValueError):
        MultiScaleRegNet(num_scales=5)
    with pytest.raises(ValueError):
        MultiScaleRegNet(fusion="mean")
    with pytest.raises(ValueError):
        net(torch.rand(1, 2, 40, 40))


@pytest.mark.parametrize("fusion", ["add", "dfsa"])
def test_per_scale_integration_keeps_a_hard_random_field_unfolded(fusion):
    """Large random heads: adding the scales' displacements folds hundreds of pixels; integrating each scale
    and composing them folds none (and the field is as large)."""
    from bundle.metrics import folding

    def field(integrate_scales):
        torch.manual_seed(0)
        net = MultiScaleRegNet(fusion=fusion, integrate_scales=integrate_scales)
        for h in net.heads:
            torch.nn.init.normal_(h.weight, std=2.0)
        with torch.no_grad():
            return net(torch.rand(4, 2, 64, 64))

    added, composed = field(0), field(7)
    if fusion == "add":
        assert int(folding(added)[0].sum()) > 100
    assert int(folding(composed)[0].sum()) == 0
    assert composed.abs().max() > 2.0


def test_per_scale_integration_of_zero_heads_is_the_identity_and_rejects_negative_steps():
    net = MultiScaleRegNet(integrate_scales=7)
    for h in net.heads:
        torch.nn.init.zeros_(h.weight)
    assert torch.equal(net(torch.rand(2, 2, 32, 32)), torch.zeros(2, 2, 32, 32))
    with pytest.raises(ValueError, match="integrate_scales"):
        MultiScaleRegNet(integrate_scales=-1)
