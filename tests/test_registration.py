import types

import numpy as np
import pytest
import torch

from bundle.losses import RegistrationLoss
from bundle.networks import MultiScaleRegNet
from bundle.registration import (
    EvalStep,
    RegSettings,
    RegistrationBatches,
    TrainStep,
    affine_points,
    moments_affine,
    predict_field,
)
from bundle.spatial import identity_grid, warp

from .conftest import REPO, lung_mask, needs_shared


def _blob(size=64, shift=(0, 0), scale=(1.0, 1.0)):
    r, c = np.mgrid[0:size, 0:size].astype(np.float32)
    r0, c0 = size / 2 + shift[0], size / 2 + shift[1]
    rr, rc = 0.3 * size * scale[0], 0.2 * size * scale[1]  # semi-axes grow with the grid
    return torch.from_numpy((((r - r0) / rr) ** 2 + ((c - c0) / rc) ** 2 <= 1).astype(np.float32))[None, None]


def test_moments_affine_recovers_translation_and_scale():
    fixed, moving = _blob(128), _blob(128, shift=(8, -12), scale=(1.25, 0.8))
    a, cm, cf = moments_affine(moving, fixed)
    torch.testing.assert_close(torch.diagonal(a[0]), torch.tensor([1.25, 0.8]), atol=0.01, rtol=0)
    assert abs(a[0, 0, 1]) < 0.01 and abs(a[0, 1, 0]) < 0.01
    torch.testing.assert_close(cm[0] - cf[0], torch.tensor([8 / 128, -12 / 128]), atol=2e-3, rtol=0)
    g = identity_grid((128, 128)).expand(1, -1, -1, -1)
    u = affine_points(a, cm, cf, g)
    warped = (warp(moving, u) > 0.5).float()
    inter = (warped * fixed).sum() / fixed.sum()
    assert inter > 0.95  # the pre-alignment alone overlays the blobs


def test_moments_affine_is_resolution_independent():
    fixed = torch.from_numpy(lung_mask(128)).float()[None, None]
    moving = torch.from_numpy(lung_mask(128, shift=(6, 4), scale=0.9)).float()[None, None]
    big = moments_affine(moving, fixed)
    small = moments_affine(torch.nn.functional.avg_pool2d(moving, 2), torch.nn.functional.avg_pool2d(fixed, 2))
    for x, y in zip(big, small):
        torch.testing.assert_close(x, y, atol=2e-3, rtol=0)


def test_empty_masks_give_identity_affine():
    a, cm, cf = moments_affine(torch.zeros(1, 1, 16, 16), _blob(16))
    g = identity_grid((16, 16)).expand(1, -1, -1, -1)
    assert affine_points(a, cm, cf, g).abs().max() < 1e-5


def _zero_net():
    net = MultiScaleRegNet()
    for h in net.heads:
        torch.nn.init.zeros_(h.weight)
    return net.eval()


@pytest.mark.parametrize("integrate", [False, True])
def test_zero_field_warps_to_identity(integrate):
    st = RegSettings(work_size=32, attention=False, integrate=integrate)
    img = torch.rand(1, 1, 128, 128)
    out = predict_field(_zero_net(), st, img, torch.rand(1, 1, 128, 128))
    assert out["ddf"].shape == (1, 2, 128, 128) and out["ddf"].abs().max() == 0
    torch.testing.assert_close(warp(img, out["ddf"]), img)


def test_affine_plus_zero_residual_equals_the_affine_at_any_size():
    # the affine is estimated on 64x64 masks and applied on the 256x256 grid: same map up to the
    # moments' discretisation (<= 0.35 px anywhere, i.e. < 0.15% of the image side)
    st = RegSettings(work_size=64, attention=True, affine=True)
    fixed, moving = _blob(256), _blob(256, shift=(16, -8), scale=(1.2, 0.9))
    out = predict_field(_zero_net(), st, moving, fixed, moving, fixed)
    a = moments_affine(moving, fixed)
    g = identity_grid((256, 256)).expand(1, -1, -1, -1)
    torch.testing.assert_close(out["ddf"], affine_points(*a, g), atol=0.35, rtol=0)
    with pytest.raises(ValueError):
        predict_field(_zero_net(), st, moving, fixed)  # masks are needed


def _two_lungs(size, scales):
    r, c = np.mgrid[0:size, 0:size].astype(np.float32)
    m = np.zeros((size, size), bool)
    for cc, s in zip((0.3, 0.7), scales):
        m |= ((r - size / 2) / (0.3 * size * s)) ** 2 + ((c - size * cc) / (0.12 * size * s)) ** 2 <= 1
    return torch.from_numpy(m.astype(np.float32))[None, None]


def _pair_batch(n=4, size=64):
    # one lung shrinks and the other grows: no affine map explains it, so the network has work to do
    fixed = torch.cat([_two_lungs(size, (1.0, 1.0))] * n)
    moving = torch.cat([_two_lungs(size, (0.85, 1.15))] * n)
    return {"moving": moving * 0.8 + 0.1, "fixed": fixed * 0.8 + 0.1, "moving_mask": moving, "fixed_mask": fixed,
            "moving_attn": moving, "fixed_attn": fixed}


@pytest.mark.parametrize("affine,integrate,integrate_scales", [(False, False, 0), (True, True, 0), (True, False, 7)])
def test_training_iterations_lower_the_loss(affine, integrate, integrate_scales):
    torch.manual_seed(0)
    st = RegSettings(work_size=64, attention=True, affine=affine, integrate=integrate,
                     net={"integrate_scales": integrate_scales})
    net = MultiScaleRegNet(**st.net)
    loss = RegistrationLoss(encoder=None)
    eng = types.SimpleNamespace(state=types.SimpleNamespace(device=torch.device("cpu")), network=net,
                                optimizer=torch.optim.Adam(net.parameters(), 1e-3), amp=False, scaler=None)
    step = TrainStep(st, loss)
    b = _pair_batch()
    first = step(eng, b)
    assert set(first) >= {"loss", "ncc", "ssim", "ce", "df", "folds"}
    for _ in range(15):
        last = step(eng, b)
    assert last["loss"] < first["loss"] - 0.01
    res = EvalStep(st)(eng, b)
    assert res["pred"].shape == (4, 2, 64, 64) and set(torch.unique(res["pred"]).tolist()) <= {0.0, 1.0}


def test_batches_are_seeded_and_change_with_epoch():
    imgs = torch.rand(6, 1, 32, 32)
    masks = (imgs > 0.5).float()
    ds = RegistrationBatches(imgs, masks, masks, batches_per_epoch=3, batch_size=5, seed=1, augment=True)
    a = ds[0]
    assert a["moving"].shape == (5, 1, 32, 32) and a["image"].shape == (5, 2, 32, 32)
    torch.testing.assert_close(ds[0]["moving"], a["moving"])
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["moving"], a["moving"])
    assert set(torch.unique(ds[0]["moving_mask"]).tolist()) <= {0.0, 1.0}
    plain = RegistrationBatches(imgs, masks, masks, 1, 5, seed=1, augment=False)[0]
    assert any(torch.equal(plain["moving"][0], imgs[k]) for k in range(6))


@needs_shared
@pytest.mark.skipif(not (REPO / "models" / "registration_JSRT.pt").is_file(), reason="no shipped JSRT weights")
def test_shipped_jsrt_model_reaches_095_on_50_pairs(tmp_path):
    from bundle.evaluate import evaluate
    from bundle.registration import OursMethod

    s = evaluate("ours", "JSRT", tmp_path / "e", max_pairs=50, progress=False, method_fn=OursMethod("JSRT"))
    assert s["n_pairs"] == 50 and s["metrics"]["dsc"]["mean"] >= 0.95


def test_soften_attention_keeps_the_mask_and_ramps_outside():
    from bundle.registration import soften_attention

    m = torch.zeros(1, 1, 32, 32)
    m[..., 10:20, 10:20] = 1
    assert torch.equal(soften_attention(m, 0), m)
    s = soften_attention(m, 2)
    assert torch.equal(s[..., 10:20, 10:20], torch.ones(1, 1, 10, 10))  # inside unchanged
    row = s[0, 0, 15]
    # 1 px outside: averaged over 5 columns of which 4 are in the 2-px dilation -> 4/5; 2 px: 3/5 ... 4 px: 1/5
    assert torch.allclose(row[20:25], torch.tensor([0.8, 0.6, 0.4, 0.2, 0.0]), atol=1e-6)
    assert float(s[..., :6, :].sum()) == 0.0  # nothing beyond 2 * radius


def test_init_weights_copies_a_saved_model_and_names_a_misfit(tmp_path):
    from bundle.io import InputError
    from bundle.networks import MultiScaleRegNet
    from bundle.registration import init_weights

    src = MultiScaleRegNet(channels=(4, 8, 8, 8, 8))
    torch.save({"model": src.state_dict(), "settings": {}}, tmp_path / "m.pt")
    dst = init_weights(MultiScaleRegNet(channels=(4, 8, 8, 8, 8)), tmp_path / "m.pt")
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))
    fresh = MultiScaleRegNet(channels=(4, 8, 8, 8, 8))
    assert init_weights(fresh, None) is fresh
    with pytest.raises(InputError, match="m.pt: does not fit"):
        init_weights(MultiScaleRegNet(channels=(8, 8, 8, 8, 8)), tmp_path / "m.pt")


def test_integrating_at_the_output_grid_matches_and_keeps_a_hard_field_unfolded():
    from bundle.registration import RegSettings, predict_field
    from bundle.spatial import jacobian_determinant

    class Swirl(torch.nn.Module):  # a fixed strong rotational velocity field at the work size
        def forward(self, x):
            n = x.shape[-1]
            g = identity_grid((n, n)).reshape(2, n, n) - (n - 1) / 2
            r2 = (g ** 2).sum(0, keepdim=True)
            return (6.0 * torch.exp(-r2 / (2 * (n / 6) ** 2)) * torch.stack([-g[1], g[0]]) / (n / 6))[None]

    img = torch.rand(1, 1, 256, 256)
    base = dict(work_size=32, attention=False, affine=False, integrate=True)
    a = predict_field(Swirl(), RegSettings(**base), img, img)["ddf"]
    b = predict_field(Swirl(), RegSettings(**base, integrate_at_output=True), img, img)["ddf"]
    assert a.shape == b.shape == (1, 2, 256, 256)
    assert (a - b).abs().mean() < 0.05 * a.abs().mean()  # the same deformation ...
    assert int((jacobian_determinant(b) <= 0).sum()) == 0  # ... and still no folding on the fine grid


def test_equalized_registration_input_ignores_contrast_changes():
    """``intensity="equalize"`` (the universal model): a gamma-changed pair gives the same field; ``unit`` does not."""
    torch.manual_seed(0)
    net = MultiScaleRegNet(channels=(8, 8, 8, 8, 8)).eval()
    m = torch.from_numpy(lung_mask(64, (3, 2))).float()[None, None] * 0.5 + 0.2
    f = torch.from_numpy(lung_mask(64)).float()[None, None] * 0.5 + 0.2
    m, f = m + 0.05 * torch.rand_like(m), f + 0.05 * torch.rand_like(f)
    ones = torch.ones_like(m)
    for mode, same in (("equalize", True), ("unit", False)):
        s = RegSettings(work_size=64, attention=False, intensity=mode)
        a = predict_field(net, s, m, f, ones, ones)["ddf"]
        b = predict_field(net, s, m ** 0.5, f ** 0.5, ones, ones)["ddf"]
        assert torch.allclose(a, b, atol=1e-6) == same, mode
    assert RegSettings.from_dict({"work_size": 64}).intensity == "unit"  # models saved before the option


def test_inverse_consistency_loss_is_zero_for_opposite_translations_and_exact_otherwise():
    from bundle.registration import inverse_consistency_loss

    t = torch.zeros(2, 2, 32, 32)
    t[:, 0], t[:, 1] = 3.0, -1.5
    assert float(inverse_consistency_loss(t, -t)) == pytest.approx(0.0, abs=1e-10)
    # the same translation both ways composes to twice the shift: |2t|² = 4 (3² + 1.5²) = 45
    assert float(inverse_consistency_loss(t, t)) == pytest.approx(45.0, rel=1e-6)
    # a field and the identity: the error is the field itself
    assert float(inverse_consistency_loss(t, torch.zeros_like(t))) == pytest.approx(3.0 ** 2 + 1.5 ** 2, rel=1e-6)


def test_inverse_consistency_loss_gradients_find_the_inverse_of_a_smooth_field():
    """Optimising u_ba alone on the loss against a fixed smooth (non-translation) u_ab finds its inverse."""
    from bundle.registration import inverse_consistency_loss

    n = 32
    g = identity_grid((n, n))[0]
    u_ab = torch.stack([2.0 * torch.sin(g[1] * 2 * np.pi / n), 1.5 * torch.cos(g[0] * 2 * np.pi / n)])[None]
    u_ba = torch.zeros_like(u_ab, requires_grad=True)
    opt = torch.optim.Adam([u_ba], lr=0.1)
    start = float(inverse_consistency_loss(u_ab, u_ba.detach()))
    for _ in range(300):
        opt.zero_grad()
        loss = inverse_consistency_loss(u_ab, u_ba)
        loss.backward()
        opt.step()
    assert float(inverse_consistency_loss(u_ab, u_ba.detach())) < 0.02 * start
    # the inverse of x -> x + u is not x -> x - u for a non-constant u; the optimum lies elsewhere
    assert float(inverse_consistency_loss(u_ab, -u_ab)) > 5 * float(inverse_consistency_loss(u_ab, u_ba.detach()))


def test_train_step_adds_the_weighted_inverse_consistency_of_both_directions():
    import copy

    from bundle.registration import inverse_consistency_loss

    torch.manual_seed(0)
    st = RegSettings(work_size=64, attention=True, affine=True, integrate=True)
    net = MultiScaleRegNet()
    for h in net.heads:  # a field large enough to be measurably inconsistent
        torch.nn.init.normal_(h.weight, std=0.3)
    b = _pair_batch()
    before = copy.deepcopy(net).eval()
    with torch.no_grad():
        ab = predict_field(before, st, b["moving"], b["fixed"], b["moving_attn"], b["fixed_attn"])["ddf_work"]
        ba = predict_field(before, st, b["fixed"], b["moving"], b["fixed_attn"], b["moving_attn"])["ddf_work"]
        expected = 0.25 * float(inverse_consistency_loss(ab, ba))
    eng = types.SimpleNamespace(state=types.SimpleNamespace(device=torch.device("cpu")), network=net,
                                optimizer=torch.optim.Adam(net.parameters(), 1e-3), amp=False, scaler=None)
    with_ic = TrainStep(st, RegistrationLoss(encoder=None), lambda_ic=0.25)(eng, b)
    assert expected > 1e-3 and float(with_ic["ic"]) == pytest.approx(expected, rel=1e-4)
    plain = TrainStep(st, RegistrationLoss(encoder=None))(eng, b)
    assert "ic" not in plain


def test_fix_folds_setting_removes_a_networks_folds_and_the_call_can_override_it():
    from bundle.spatial import jacobian_determinant

    class Bump(torch.nn.Module):  # a fixed displacement at the work size that folds ~40 pixels at 256 x 256
        def forward(self, x):
            n = x.shape[-1]
            g = identity_grid((n, n)).reshape(2, n, n) - n // 2
            u = torch.zeros(1, 2, n, n)
            u[0, 0] = 3.0 * torch.exp(-(g ** 2).sum(0) / (2 * 1.0 ** 2))
            return u

    img = torch.rand(1, 1, 256, 256)
    base = dict(work_size=64, attention=False, affine=False, integrate=False)
    off = predict_field(Bump(), RegSettings(**base), img, img)
    assert "folds_fixed" not in off
    n_folds = int((jacobian_determinant(off["ddf"]) <= 0).sum())
    assert n_folds > 20
    on = predict_field(Bump(), RegSettings(**base, fix_folds=True), img, img)
    assert int((jacobian_determinant(on["ddf"]) <= 0).sum()) == 0
    assert on["folds_fixed"].tolist() == [n_folds] and on["folds_left"].tolist() == [0]
    assert torch.equal(on["ddf_work"], off["ddf_work"])  # only the output field is post-processed
    forced_off = predict_field(Bump(), RegSettings(**base, fix_folds=True), img, img, fix_folds=False)
    assert torch.equal(forced_off["ddf"], off["ddf"])


def test_shipped_models_remove_folds_by_default():
    from bundle.registration import load_registration

    for name in ("JSRT", "MONT", "SHEN", "universal"):
        assert load_registration(name)[1].fix_folds, name
