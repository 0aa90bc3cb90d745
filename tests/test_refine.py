import pytest
import torch

from bundle.networks import MultiScaleRegNet
from bundle.refine import border_distances, refine_loss, refine_residual
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


def test_border_distances_and_boundary_term_of_shifted_squares_are_exact():
    """A 10 x 10 square: distances to it outside and to the background inside are exact Euclidean ones; the
    boundary term of the square against itself is 0, and against copies shifted right by 1 and 2 px it is
    (10·1 + 10·1) / 100 = 0.2 and (outside: 10·(1+2); inside, the two uncovered columns: 10·1 + 8·2 + 2·1, the
    second column's end pixels being 1 px from the background above / below) / 100 = 0.58: it grows faster than
    the miss, soft Dice only in proportion."""
    from bundle.refine import border_distances, boundary_term

    sq = torch.zeros(1, 1, 32, 32)
    sq[..., 10:20, 10:20] = 1
    d = border_distances(sq)
    assert d.shape == (1, 2, 32, 32)
    assert d[0, 0, 15, 22] == 3 and d[0, 0, 15, 15] == 0  # 3 px right of the square; inside: 0
    assert d[0, 0, 7, 7] == pytest.approx(18 ** 0.5)  # diagonal from the corner (10, 10)
    assert d[0, 1, 15, 10] == 1 and d[0, 1, 14, 14] == 5 and d[0, 1, 5, 5] == 0
    assert boundary_term(sq, sq, d).item() == 0
    for shift, expected in ((1, 0.2), (2, 0.58)):
        moved = torch.roll(sq, shift, dims=3)
        assert boundary_term(moved, sq, d).item() == pytest.approx(expected)
    empty = border_distances(torch.zeros(1, 1, 8, 8))
    assert torch.all(empty == 0)


def test_the_boundary_term_reaches_the_refinement_and_pulls_the_masks_together():
    """``refine_weights={"w_dist": W}`` (``--refine-distance-weight``): with only smoothness and the boundary term
    the refined field aligns a shifted blob's mask better than smoothness alone, and the best iterate never has a
    higher loss than the start."""
    from bundle.refine import border_distances
    from bundle.spatial import warp

    torch.manual_seed(0)
    net = MultiScaleRegNet().eval()
    st = RegSettings(work_size=32, attention=True, affine=False, integrate=True)
    fixed, moving = _blob(64), _blob(64, shift=(5, -4))
    fixed_m, moving_m = (fixed > 0.5).float(), (moving > 0.5).float()
    dices = []
    for w in (0.0, 5.0):
        with torch.no_grad():
            out = predict_field(net, st, moving, fixed, moving_m, fixed_m, refine_steps=30, refine_size=64,
                                refine_weights={"w_dist": w, "w_img": 0.0, "w_mask": 0.0})
        wm = (warp(moving_m, out["ddf"]) > 0.5).float()
        dices.append(float(2 * (wm * fixed_m).sum() / (wm.sum() + fixed_m.sum())))
    assert dices[1] > dices[0] + 0.02
    init = torch.zeros(1, 2, 64, 64)
    kw = {"w_dist": 5.0, "w_img": 0.0, "w_mask": 0.0}
    best = refine_residual(init, moving, fixed, moving_m, fixed_m, st, steps=10, size=64, **kw)
    dist = border_distances(fixed_m)
    assert refine_loss(best, moving, fixed, moving_m, fixed_m, st, fixed_dist=dist, **kw) <= refine_loss(
        init, moving, fixed, moving_m, fixed_m, st, fixed_dist=dist, **kw) + 1e-6


def test_refining_in_sub_batches_gives_the_same_fields_as_all_at_once():
    """``max_batch`` only bounds memory: each pair's loss depends on its own parameter and Adam is elementwise,
    so 5 pairs refined 2 at a time (with the affine pre-alignment and the boundary term, whose per-pair tensors
    are sliced too) equal the 5 refined together."""
    from bundle.registration import moments_affine

    torch.manual_seed(0)
    st = RegSettings(work_size=32, attention=True, affine=True, integrate=True)
    fixed = torch.cat([_blob(64, shift=(k - 2, 1)) for k in range(5)])
    moving = torch.cat([_blob(64, shift=(3, -k)) for k in range(5)])
    init = torch.randn(5, 2, 32, 32) * 0.3
    aff = moments_affine(resize_image(moving, 32), resize_image(fixed, 32))
    kw = dict(steps=6, size=64, w_dist=0.5)
    whole = refine_residual(init, moving, fixed, moving, fixed, st, aff, max_batch=None, **kw)
    parts = refine_residual(init, moving, fixed, moving, fixed, st, aff, max_batch=2, **kw)
    assert (whole - resize_image(init, 64) * 2).abs().max() > 0.05  # the steps moved the fields
    torch.testing.assert_close(parts, whole, rtol=0, atol=1e-6)
    # a given per-pair fixed_dist (B, 1, 64, 64) is sliced with the pairs: the same fields as computing it per part
    dist = border_distances(resize_image(fixed, 64))
    given = refine_residual(init, moving, fixed, moving, fixed, st, aff, max_batch=2, fixed_dist=dist, **kw)
    torch.testing.assert_close(given, whole, rtol=0, atol=1e-6)
    calls = []  # "auto" (the default) splits a CPU batch of 9 into sub-batches of 8 and 1
    import bundle.refine as R

    orig = R.refine_loss
    try:
        R.refine_loss = lambda p, *a, **k: calls.append(p.shape[0]) or orig(p, *a, **k)
        big = torch.cat([init, init[:4]])
        refine_residual(big, *(torch.cat([t, t[:4]]) for t in (moving, fixed, moving, fixed)), st,
                        tuple(torch.cat([a, a[:4]]) for a in aff), steps=1, size=64)
    finally:
        R.refine_loss = orig
    assert sorted(set(calls)) == [1, 8]


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "x", None])
def test_bad_refinement_weights_are_refused_before_any_model_loads(bad, tmp_path):
    """The Python API checks what the CLI's parser checks: ``check_weights`` names the weight; ``Registrar`` and
    ``OursMethod`` refuse before loading anything (the missing model file is never reached), ``EvalStep`` at
    construction, ``predict_field`` before refining."""
    from bundle.refine import check_weights
    from bundle.register import Registrar
    from bundle.registration import EvalStep, OursMethod

    assert check_weights({"w_mask": "80", "w_dist": 0, "fixed_dist": "t"}) == {"w_mask": 80.0, "w_dist": 0.0,
                                                                             "fixed_dist": "t"}
    assert check_weights(None) == {}
    with pytest.raises(ValueError, match="refinement weight w_mask must be a finite number >= 0"):
        check_weights({"w_mask": bad})
    missing = str(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="refinement weight w_dist"):
        Registrar(missing, refine_distance_weight=bad)
    with pytest.raises(ValueError, match="refinement weight w_mask"):
        OursMethod(missing, refine_weights={"w_mask": bad})
    with pytest.raises(ValueError, match="refinement weight w_smooth"):
        EvalStep(RegSettings(), refine_steps=1, refine_weights={"w_smooth": bad})
    x = _blob(32)
    with pytest.raises(ValueError, match="refinement weight w_img"):
        predict_field(MultiScaleRegNet().eval(), RegSettings(work_size=32), x, x, x, x, refine_steps=1,
                      refine_weights={"w_img": bad})
