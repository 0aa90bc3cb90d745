import pytest
import torch
import torch.nn.functional as F

from bundle.losses import ContourLoss, SegmentationLoss, laplacian_edges


def sq(shift=0, size=24):
    m = torch.zeros(1, 1, size, size)
    m[..., 6:16, 6 + shift : 16 + shift] = 1
    return m


def test_laplacian_of_a_single_pixel():
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 3, 3] = 1
    e = laplacian_edges(x)[0, 0]
    assert e[3, 3] == -4 and e[2, 3] == e[4, 3] == e[3, 2] == e[3, 4] == 1 and e.abs().sum() == 8
    assert laplacian_edges(torch.ones(1, 1, 5, 5)).abs().max() == 0  # flat: no edges, also at the border


def test_contour_loss_hand_value():
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 3, 3] = 1
    loss = ContourLoss(softmax=False)(x, torch.zeros_like(x))
    assert loss.item() == pytest.approx((16 + 4) / 49)


def test_contour_loss_zero_for_identical_and_grows_with_shift():
    c = ContourLoss(softmax=False)
    assert c(sq(), sq()).item() == 0
    vals = [c(sq(s), sq()).item() for s in (1, 2, 3, 4)]
    assert min(vals) > 0
    # hand values on a 24x24 grid: a 1-pixel shift lays the inner (-1) edge of one square on the outer (+1)
    # edge of the other, so those pixels count (2)^2; from 2 pixels on the edges are apart and the loss
    # grows with the shift (the top and bottom edges overlap less)
    assert vals[0] == pytest.approx(144 / 576)
    assert vals[1] < vals[2] < vals[3]


def test_contour_loss_on_logits_and_shapes():
    t = sq()
    logits = torch.cat([-10 * (t * 2 - 1), 10 * (t * 2 - 1)], 1)
    assert ContourLoss()(logits, t).item() < 1e-6
    with pytest.raises(ValueError):
        ContourLoss(softmax=False)(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 9, 9))


def test_segmentation_loss_is_ce_plus_weighted_contour():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 24, 24, requires_grad=True)
    t = torch.cat([sq(), sq(2)])
    ce = F.cross_entropy(logits, t[:, 0].long())
    assert SegmentationLoss(0.0)(logits, t).item() == pytest.approx(ce.item())
    total = SegmentationLoss(1.75)(logits, t)
    assert total.item() == pytest.approx(ce.item() + 1.75 * ContourLoss()(logits, t).item(), rel=1e-5)
    total.backward()
    assert logits.grad.abs().sum() > 0
