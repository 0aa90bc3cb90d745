import math
import warnings

import numpy as np
import pytest
import torch

from bundle.metrics import assd, dice, folding, hausdorff, log_jacobian_std, pair_metrics, summarise


def sq(r0, c0, h=10, w=10, size=32):
    m = torch.zeros(1, 1, size, size)
    m[..., r0 : r0 + h, c0 : c0 + w] = 1
    return m


def test_shifted_squares_hand_computed():
    a, b = sq(5, 5), sq(5, 8)  # 10x10 squares, 3 columns apart: overlap 10x7
    assert dice(a, b).item() == pytest.approx(2 * 70 / 200)
    assert hausdorff(a, b).item() == pytest.approx(3.0)
    # boundary of a (36 px) to boundary of b: top/bottom rows 3+2+1 each, left column 8x3,
    # right column min(r-5, 14-r, 3) over rows 6..13 = 18; total 54 / 36 = 1.5, symmetric
    assert assd(a, b).item() == pytest.approx(1.5)


def test_off_by_one_boundary_changes_dice():
    a, b = sq(5, 5, 10, 10), sq(5, 5, 10, 11)
    assert dice(a, b).item() == pytest.approx(200 / 210)
    assert hausdorff(a, b).item() == pytest.approx(1.0)


def test_hausdorff_is_the_maximum_not_95th_percentile():
    a = sq(5, 5)
    b = a.clone()
    b[0, 0, 30, 30] = 1  # one far outlier pixel
    far = math.hypot(30 - 14, 30 - 14)  # to the nearest boundary pixel of a, the corner (14, 14)
    assert hausdorff(a, b).item() == pytest.approx(far)
    # a 95th-percentile HD would ignore one pixel among ~37 boundary pixels
    assert hausdorff(a, b).item() > 20
    from bundle.metrics import surface_metrics

    hd, _, h95 = surface_metrics(a, b, hd95=True)  # and it does: HD95 ignores the outlier
    assert hd.item() == pytest.approx(far) and h95.item() == pytest.approx(0.0)


def test_spacing_gives_millimetres():
    a, b = sq(5, 5), sq(5, 8)
    assert hausdorff(a, b, spacing=(0.5, 0.5)).item() == pytest.approx(1.5)
    assert hausdorff(a, b, spacing=(1.0, 2.0)).item() == pytest.approx(6.0)  # shift is along columns


def test_batch_and_numpy_inputs():
    a = torch.cat([sq(5, 5), sq(5, 5)])
    b = torch.cat([sq(5, 5), sq(5, 8)])
    np.testing.assert_allclose(dice(a.numpy(), b.numpy()).numpy(), [1.0, 0.7], rtol=1e-6)
    np.testing.assert_allclose(hausdorff(a, b).numpy(), [0.0, 3.0])


def test_empty_masks():
    e = torch.zeros(1, 1, 32, 32)
    assert dice(e, e).item() == 1.0
    assert dice(e, sq(5, 5)).item() == 0.0
    assert math.isnan(hausdorff(e, sq(5, 5)).item()) and math.isnan(assd(sq(5, 5), e).item())


def test_folding_counts_known_fold():
    ddf = torch.zeros(2, 2, 16, 40)
    for x in range(40):
        ddf[1, 1, :, x] = 0 if x < 10 else (-2 * (x - 10) if x <= 20 else -20)
    count, pct = folding(ddf)
    assert count.tolist() == [0, 11 * 16]  # columns 10..20 inclusive, all 16 rows
    assert pct[1].item() == pytest.approx(100 * 176 / 640)


def test_pair_metrics_and_summary():
    m = pair_metrics(torch.cat([sq(5, 5), sq(5, 8)]), torch.cat([sq(5, 5), sq(5, 5)]), torch.zeros(2, 2, 32, 32))
    assert m["dsc"] == pytest.approx([1.0, 0.7]) and m["jac"] == [0, 0]
    s = summarise({"hd": [1.0, 3.0, float("nan")]})
    assert s["hd"]["mean"] == 2.0 and s["hd"]["std"] == 1.0 and s["hd"]["nan"] == 1


def test_surface_metrics_equal_monai_metric_classes():
    from bundle.metrics import assd, hausdorff, surface_metrics

    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    masks = []
    for _ in range(6):  # ellipses of different size, shape and place: boundaries of different lengths
        cy, cx, ry, rx = (torch.rand(4, generator=g) * torch.tensor([16, 16, 12, 12]) + torch.tensor([16, 16, 4, 4]))
        masks.append((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).float()[None])
    p, t = torch.stack(masks[:3]), torch.stack(masks[3:])
    p[1] = 0  # an empty mask gives NaN in both
    from monai.metrics import HausdorffDistanceMetric

    for spacing in (None, (0.5, 2.0)):
        hd, sd = surface_metrics(p, t, spacing)
        assert torch.allclose(hd, hausdorff(p, t, spacing), equal_nan=True)
        assert torch.allclose(sd, assd(p, t, spacing), atol=1e-5, equal_nan=True)
        hd2, sd2, h95 = surface_metrics(p, t, spacing, hd95=True)
        torch.testing.assert_close(hd2, hd, rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(sd2, sd, rtol=0, atol=0, equal_nan=True)
        onehot = lambda x: torch.cat([1 - x, x], 1)  # noqa: E731
        with warnings.catch_warnings():  # MONAI's own always_return_as_numpy deprecation notice
            warnings.simplefilter("ignore")
            want = HausdorffDistanceMetric(include_background=False, percentile=95)(onehot(p), onehot(t),
                                                                                    spacing=spacing)
        assert torch.allclose(h95, want[:, 0].float(), atol=1e-5, equal_nan=True)
        assert (h95[[0, 2]] < hd[[0, 2]]).all()  # the ellipses differ, so the 95th percentile is below the maximum
    assert torch.isnan(hd[1]) and not torch.isnan(hd[0])


def test_inverse_consistency_is_zero_for_a_translation_and_its_inverse():
    from bundle.metrics import inverse_consistency

    t = torch.zeros(1, 2, 32, 32)
    t[:, 0], t[:, 1] = 3.0, -4.0  # a (3, -4) px translation: |t| = 5
    assert float(inverse_consistency(t, -t)) == 0.0
    assert float(inverse_consistency(t, t)) == pytest.approx(10.0)  # twice the shift: not an inverse
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:16, 8:16] = 1
    assert float(inverse_consistency(t, torch.zeros_like(t), mask)) == pytest.approx(5.0)


def test_inverse_consistency_of_a_scaling_and_its_exact_inverse():
    """x -> 1.25 x about the centre, and x -> 0.8 x: inverse maps, error ~0 away from the border (interpolation
    of a linear field is exact)."""
    from bundle.metrics import inverse_consistency
    from bundle.spatial import identity_grid

    g = identity_grid((64, 64)) - 31.5
    ab, ba = 0.25 * g, -0.2 * g  # phi_ab(x) = 1.25 x, phi_ba(x) = 0.8 x
    inner = torch.zeros(1, 1, 64, 64)
    inner[..., 16:48, 16:48] = 1
    assert float(inverse_consistency(ab, ba, inner)) < 1e-4
    assert float(inverse_consistency(ab, ab, inner)) > 1.0


def test_score_field_warps_the_moving_mask_by_the_field_and_scores_it():
    """A square moved 3 pixels down is brought back exactly by the pull-back field u = (+3, 0) (DSC 1, HD 0, no
    folds); the zero field leaves the 3-pixel offset: HD 3."""
    from bundle.metrics import score_field

    fixed = torch.zeros(1, 1, 32, 32)
    fixed[..., 8:20, 10:22] = 1
    moving = torch.roll(fixed, 3, dims=2)
    u = torch.zeros(1, 2, 32, 32)
    u[:, 0] = 3.0
    m = score_field(u, moving, fixed)
    assert m["dsc"][0] == pytest.approx(1.0) and m["hd"][0] == pytest.approx(0.0) and m["jac"][0] == 0
    m0 = score_field(torch.zeros_like(u), moving, fixed)
    assert m0["hd"][0] == pytest.approx(3.0) and m0["dsc"][0] == pytest.approx(2 * 108 / 288)


def test_sdlogj_is_zero_for_constant_determinants_and_matches_a_hand_computed_field():
    """SDlogJ (std of log det J): 0 for no deformation, a translation and a uniform scaling (det constant, here
    1, 1 and 1.5 ** 2); for u_col = a * col ** 2 the stencil's determinant is known per column (central
    differences: 1 + 2 a c inside; one-sided at the border: 1 + a at c = 0, 1 + a (2W - 3) at c = W - 1)."""
    from bundle.spatial import jacobian_determinant

    h, w, a = 12, 16, 0.01
    r, c = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    fields = torch.stack([torch.zeros(2, h, w, dtype=torch.float64),
                          torch.stack([torch.full((h, w), 2.0), torch.full((h, w), -3.0)]).double(),
                          torch.stack([0.5 * r, 0.5 * c]),
                          torch.stack([torch.zeros(h, w, dtype=torch.float64), a * c ** 2])])
    got = log_jacobian_std(jacobian_determinant(fields))
    assert got[:3].abs().max() < 1e-6
    cols = np.arange(w, dtype=np.float64)
    det = 1 + 2 * a * cols
    det[0], det[-1] = 1 + a, 1 + a * (2 * w - 3)
    want = np.std(np.log(np.tile(det, (h, 1))))
    assert got[3].item() == pytest.approx(want, rel=1e-5) and want > 0.05
    # a fold: its pixels count as log(1e-9), far from the rest
    fold = torch.zeros(1, 2, h, w)
    fold[0, 1, :, 8:] = -3.0  # columns 7..8 fold over
    assert (jacobian_determinant(fold) <= 0).any() and log_jacobian_std(jacobian_determinant(fold)).item() > 3
    assert pair_metrics(sq(5, 5), sq(5, 5), fields[3:].float())["sdlogj"][0] == pytest.approx(want, rel=1e-4)
