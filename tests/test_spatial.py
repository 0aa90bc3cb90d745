import math

import pytest
import torch

from bundle.spatial import (
    affine_ddf,
    compose_ddf,
    identity_grid,
    jacobian_determinant,
    resize_ddf,
    resize_image,
    resize_mask,
    warp,
    warp_mask,
)


def square(size=32, r0=10, c0=12, n=8):
    x = torch.zeros(1, 1, size, size)
    x[..., r0 : r0 + n, c0 : c0 + n] = 1
    return x


def test_zero_field_is_identity():
    img = torch.rand(2, 1, 16, 20)
    out = warp(img, torch.zeros(2, 2, 16, 20))
    torch.testing.assert_close(out, img)


@pytest.mark.parametrize("dr,dc", [(0, 3), (2, 0), (-3, 4)])
def test_translation_moves_square_exactly(dr, dc):
    # pull-back: warped[p] = moving[p + u]; a constant u = (dr, dc) moves content by (-dr, -dc)
    ddf = torch.zeros(1, 2, 32, 32)
    ddf[:, 0], ddf[:, 1] = dr, dc
    out = warp_mask(square(), ddf)
    torch.testing.assert_close(out, square(r0=10 - dr, c0=12 - dc))


def test_channel_order_is_row_then_column():
    ddf = torch.zeros(1, 2, 32, 32)
    ddf[:, 1] = 3.0  # columns only
    out = warp_mask(square(), ddf)
    assert out[0, 0].sum(0).nonzero().min() == 12 - 3  # columns moved
    assert out[0, 0].sum(1).nonzero().min() == 10  # rows did not


def test_resize_ddf_scales_vectors():
    ddf = torch.zeros(1, 2, 64, 64)
    ddf[:, 0], ddf[:, 1] = 1.5, -2.0
    up = resize_ddf(ddf, 256)
    assert up.shape == (1, 2, 256, 256)
    torch.testing.assert_close(up[:, 0], torch.full((1, 256, 256), 6.0))
    torch.testing.assert_close(up[:, 1], torch.full((1, 256, 256), -8.0))


def test_resize_ddf_matches_fine_affine_field():
    # an affine map defined in continuous (pixel-area) coordinates, sampled at 64 and 256
    def field(n):
        s = 256 / n
        g = identity_grid((n, n))
        x = (g + 0.5) * s - 0.5  # pixel centres in 256-pixel units
        a = torch.tensor([[0.05, 0.02], [-0.03, 0.04]])
        u = torch.einsum("ij,bjhw->bihw", a, x - 127.5) + torch.tensor([3.0, -2.0]).view(1, 2, 1, 1)
        return u / s  # in pixels of the n-grid

    up = resize_ddf(field(64), 256)
    fine = field(256)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # borders extrapolate
    torch.testing.assert_close(up[inner], fine[inner], atol=1e-4, rtol=0)


def test_resize_image_area_and_mask_threshold():
    img = torch.zeros(1, 1, 8, 8)
    img[..., :4, :4] = 1
    img[..., 4, 4] = 1  # a quarter of one 2x2 block
    small = resize_image(img, 4)
    assert small[0, 0, 0, 0] == 1 and small[0, 0, 2, 2] == 0.25
    m = resize_mask(img, 4)
    assert m[0, 0, 2, 2] == 0 and m[0, 0, :2, :2].sum() == 4


def test_jacobian_of_affine_field():
    a = torch.tensor([[[1.2, 0.3, 0.0], [-0.1, 0.9, 0.0]]])  # moving = A @ fixed
    ddf = affine_ddf(a, (20, 24))
    det = jacobian_determinant(ddf)
    torch.testing.assert_close(det, torch.full_like(det, 1.2 * 0.9 + 0.3 * 0.1))


def test_jacobian_of_known_fold():
    ddf = torch.zeros(1, 2, 16, 40)
    for x in range(40):  # u_col(x) = 0 | -2 (x - 10) | -20: slope -2 on columns 10..20
        ddf[0, 1, :, x] = 0 if x < 10 else (-2 * (x - 10) if x <= 20 else -20)
    det = jacobian_determinant(ddf)[0]
    assert torch.all(det[:, 11:20] == -1)  # interior: 1 + (-2)
    assert torch.all(det[:, [10, 20]] == 0)  # central difference across the kink: 1 + (-1)
    assert torch.all(det[:, :10] == 1) and torch.all(det[:, 21:] == 1)


def test_compose_translations_add():
    a = torch.zeros(1, 2, 16, 16)
    a[:, 0] = 1.0
    b = torch.zeros(1, 2, 16, 16)
    b[:, 1] = 2.0
    c = compose_ddf(a, b)
    torch.testing.assert_close(c[:, 0], torch.ones(1, 16, 16))
    torch.testing.assert_close(c[:, 1], torch.full((1, 16, 16), 2.0))


def test_compose_order_matters_a_scaling_then_a_translation():
    """``compose_ddf(first, second)(p) = second(p) + first(p + second(p))``: with a linear ``first`` (a 10 % scaling
    about the centre) and a constant ``second`` (2 px along columns) the two orders differ by 0.1 * 2 = 0.2 px."""
    g = identity_grid((32, 32)) - 15.5
    first = 0.1 * g
    second = torch.zeros(1, 2, 32, 32)
    second[:, 1] = 2.0
    inner = (..., slice(8, -8), slice(8, -8))  # away from the border, where the sampling clamps
    torch.testing.assert_close(compose_ddf(first, second)[inner], (second + 0.1 * (g + second))[inner])
    torch.testing.assert_close(compose_ddf(second, first)[inner], (first + second)[inner])
    assert (compose_ddf(first, second) - compose_ddf(second, first))[inner][:, 1].sub(0.2).abs().max() < 1e-5


def test_bad_field_shape():
    with pytest.raises(ValueError):
        warp(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError):
        jacobian_determinant(torch.zeros(1, 3, 4, 4))


def test_rotation_by_90_degrees_turns_a_line():
    # pull-back field of a 90 degree rotation about the centre maps a horizontal bar to a vertical one
    n = 21
    c = (n - 1) / 2
    rot = torch.tensor([[[0.0, -1.0, 2 * c], [1.0, 0.0, 0.0]]])  # moving(r, c) = (2c - col, row)... about centre
    rot = torch.tensor([[[0.0, 1.0, 0.0], [-1.0, 0.0, 2 * c]]])
    img = torch.zeros(1, 1, n, n)
    img[..., 10, 3:18] = 1  # horizontal bar through the centre
    out = warp(img, affine_ddf(rot, (n, n)), mode="nearest")
    assert out[0, 0, 3:18, 10].sum() == 15 and out[0, 0, 10].sum() == 1
    assert math.isclose(float(jacobian_determinant(affine_ddf(rot, (n, n))).mean()), 1.0, abs_tol=1e-5)


def test_integrated_constant_velocity_is_that_translation():
    from bundle.spatial import integrate_velocity

    v = torch.zeros(1, 2, 32, 32)
    v[:, 1] = 2.0
    u = integrate_velocity(v, 7)
    # a constant velocity integrates to the same constant displacement (away from the zero-padded border)
    torch.testing.assert_close(u[..., 8:-8, 8:-8], v[..., 8:-8, 8:-8], atol=1e-4, rtol=0)


def test_a_velocity_that_folds_as_a_displacement_integrates_to_an_unfolded_field():
    # hard synthetic case: a strong, tight vortex folds (hundreds of pixels) when used directly as a
    # displacement field; integrated by scaling and squaring it becomes a diffeomorphism (det J > 0 everywhere)
    from bundle.spatial import integrate_velocity

    n = 64
    g = identity_grid((n, n)).reshape(2, n, n) - (n - 1) / 2
    r2 = (g ** 2).sum(0, keepdim=True)
    v = (30.0 * torch.exp(-r2 / (2 * 6.0 ** 2)) * torch.stack([-g[1], g[0]]) / 6.0)[None]
    assert int((jacobian_determinant(v) <= 0).sum()) > 100
    u = integrate_velocity(v, 7)
    assert float(u.abs().max()) > 10  # a large deformation, not a near-identity
    assert int((jacobian_determinant(u) <= 0).sum()) == 0


def _bump(n=64, amp=12.0, sigma=4.0):
    """Row displacement ``amp * gaussian``: amp 12 folds ~40 pixels in the middle (det J down to -0.78)."""
    g = identity_grid((n, n)).reshape(2, n, n) - n // 2
    u = torch.zeros(1, 2, n, n)
    u[0, 0] = amp * torch.exp(-(g ** 2).sum(0) / (2 * sigma ** 2))
    return u


@pytest.mark.parametrize("amp, kept", [(12.0, 0.8), (30.0, 0.45)])
def test_remove_folds_leaves_no_fold_and_touches_only_the_neighbourhood(amp, kept):
    from bundle.spatial import remove_folds

    u = _bump(amp=amp)
    bad = jacobian_determinant(u)[0] <= 0
    assert int(bad.sum()) > 20
    v, left = remove_folds(u, radius=2)
    assert int(left[0]) == 0 and int((jacobian_determinant(v) <= 0).sum()) == 0
    changed = (v != u).any(1)[0]
    rows, cols = bad.nonzero(as_tuple=True)
    # everything changed lies near the fold; far from it the field is exactly the input
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())
    far = torch.ones_like(changed)
    far[max(r0 - 12, 0): r1 + 13, max(c0 - 12, 0): c1 + 13] = False
    assert changed.any() and not changed[far].any()
    # the correction is local smoothing, not a new field: a moderate fold keeps 80 % of the bump's peak
    # displacement, an extreme one (det J down to -3.5) still 45 %
    assert float(v[0, 0].max()) > kept * amp


def test_remove_folds_returns_fold_free_fields_unchanged_and_handles_mixed_batches():
    from bundle.spatial import remove_folds

    smooth = 0.3 * _bump(amp=6.0)  # det J > 0 everywhere
    assert int((jacobian_determinant(smooth) <= 0).sum()) == 0
    batch = torch.cat([smooth, _bump(amp=12.0), torch.zeros(1, 2, 64, 64)])
    v, left = remove_folds(batch)
    assert torch.equal(v[0], smooth[0]) and torch.equal(v[2], batch[2])
    assert left.tolist() == [0, 0, 0] and int((jacobian_determinant(v) <= 0).sum()) == 0
    assert not torch.equal(v[1], batch[1])
    with pytest.raises(ValueError):
        remove_folds(torch.zeros(1, 3, 8, 8))


def _bump_at(n, amp, sigma, cy, cx):
    g = identity_grid((n, n)).reshape(2, n, n)
    u = torch.zeros(1, 2, n, n)
    u[0, 0] = amp * torch.exp(-((g[0] - cy) ** 2 + (g[1] - cx) ** 2) / (2 * sigma ** 2))
    return u


@pytest.mark.parametrize("kw", [{}, {"max_iters": 3}, {"grow_every": 5}])
def test_remove_folds_on_a_window_equals_the_whole_grid_value_for_value(kw):
    """The default works on a window around the folds (memory at 2048 x 2048); its result is the whole-grid
    iteration's, exactly: folds in the middle, at an image edge and in a corner, two folds far apart in one
    field, a fold wide enough to make the window grow, a mixed batch."""
    from bundle.spatial import remove_folds

    cases = [_bump_at(128, 12.0, 4.0, 64, 64), _bump_at(128, 30.0, 4.0, 3, 60), _bump_at(160, 30.0, 4.0, 155, 3),
             _bump_at(192, 12.0, 4.0, 40, 40) + _bump_at(192, 12.0, 4.0, 150, 150), _bump_at(160, 30.0, 8.0, 80, 80),
             torch.cat([_bump_at(96, 0.0, 4.0, 48, 48), _bump_at(96, 12.0, 4.0, 20, 70)])]
    for cx in (128, 129):  # a column-alternating band where the window's left edge falls: fold-free with the
        u = _bump_at(256, 12.0, 4.0, 128, cx)  # grid's central differences, folded with the window's one-sided ones
        u[0, 1, :, 20:116] = torch.tensor([(-1.0) ** j for j in range(20, 116)])
        cases.append(u)
    for u in cases:
        assert int((jacobian_determinant(u) <= 0).sum()) > 20
        want, want_left = remove_folds(u, window=False, **kw)
        got, got_left = remove_folds(u, **kw)
        assert torch.equal(got, want) and torch.equal(got_left, want_left)
        assert not torch.equal(got, u)


def test_remove_folds_reports_what_it_could_not_fix():
    from bundle.spatial import remove_folds

    v, left = remove_folds(_bump(amp=30.0), max_iters=1)
    assert int(left[0]) == int((jacobian_determinant(v) <= 0).sum()) > 0


def test_jacobian_without_a_graph_equals_the_differentiable_one_and_leaves_the_field_alone():
    """Without autograd the determinant is computed in its gradient buffers (less memory); the values are those
    of the out-of-place formula, the input field is unchanged, and with ``requires_grad`` gradients still flow."""
    g = torch.Generator().manual_seed(0)
    ddf = torch.randn(2, 2, 17, 23, generator=g) * 3
    keep = ddf.clone()
    with torch.no_grad():
        lean = jacobian_determinant(ddf)
    assert torch.equal(ddf, keep)
    d0u0, d1u0 = torch.gradient(ddf[:, 0], dim=(1, 2))
    d0u1, d1u1 = torch.gradient(ddf[:, 1], dim=(1, 2))
    torch.testing.assert_close(lean, (1 + d0u0) * (1 + d1u1) - d1u0 * d0u1, rtol=0, atol=1e-5)
    x = ddf.clone().requires_grad_(True)
    det = jacobian_determinant(x)
    det.sum().backward()
    torch.testing.assert_close(det.detach(), lean, rtol=0, atol=1e-5)
    assert x.grad is not None and x.grad.abs().sum() > 0
