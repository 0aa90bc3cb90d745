"""Analytic geometry of the whole registration path (``Registrar``, ``register``, ``cxreg register``).

A registration network whose output heads are zero predicts no deformation, so what comes out is decided by the
geometry alone: the padding of non-square images to the working square, the resampling between grids, the global
affine stage from the lung masks' moments and the conversion to ITK's physical (x, y) displacement field. Each
case has an exact answer.
"""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from bundle.networks import LungSegNet, MultiScaleRegNet
from bundle.register import Registrar, register
from bundle.registration import RegSettings

from .conftest import lung_mask

SHIFT = (6, -3)  # rows down, columns left: whole pixels at 96 x 80, and on the 32 x 32 working grid of 96-px sides


def _zero_net():
    torch.manual_seed(0)
    net = MultiScaleRegNet()
    for h in net.heads:
        torch.nn.init.zeros_(h.weight)
        torch.nn.init.zeros_(h.bias)
    return net


def _settings(affine):
    return RegSettings(work_size=32, attention=False, affine=affine, integrate=False, fix_folds=False)


def _shifted_pair():
    """A 96 x 80 fixed image with its lung mask and the moving image = fixed moved by SHIFT (lungs stay inside)."""
    fm = lung_mask(96)[:, :80]
    mm = np.roll(fm, SHIFT, (0, 1))
    assert mm.sum() == fm.sum()  # nothing wrapped around
    return (200 - 120 * fm).astype(np.float32), (200 - 120 * mm).astype(np.float32), fm, mm


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("zero")
    torch.save({"model": _zero_net().state_dict(), "settings": _settings(True).__dict__}, d / "reg.pt")
    torch.save(LungSegNet(work_size=32).state_dict(), d / "seg.pt")
    return d


def test_zero_field_is_the_identity_and_a_2x_moving_image_maps_analytically():
    r = Registrar.from_networks(_zero_net(), _settings(False), LungSegNet(work_size=32), size=96)
    f = _shifted_pair()[0]
    ones = np.ones(f.shape, np.uint8)
    res = r(f, f, ones, ones)  # non-square fixed grid (96 x 80), padded to the square and back
    assert res["ddf"].shape == (2, 96, 80) and np.abs(res["ddf"]).max() < 1e-4
    assert np.abs(res["warped"] - f).max() < 1e-2 and (res["jacobian"] > 0.999).all()
    big = np.kron(f, np.ones((2, 2), np.float32))  # the moving image is a 2x copy: pixel p -> (p + 0.5) * 2 - 0.5
    rr, cc = np.mgrid[0:96, 0:80]
    res = r(f, big, ones, np.ones(big.shape, np.uint8))
    np.testing.assert_allclose(res["ddf"], np.stack([rr + 0.5, cc + 0.5]), atol=1e-4)


def test_affine_stage_recovers_a_translation_exactly():
    r = Registrar.from_networks(_zero_net(), _settings(True), LungSegNet(work_size=32), size=96)
    f, m, fm, mm = _shifted_pair()
    res = r(f, m, fm, mm)
    lung = fm > 0
    assert np.abs(res["ddf"][0][lung] - SHIFT[0]).max() < 1e-3 and np.abs(res["ddf"][1][lung] - SHIFT[1]).max() < 1e-3
    np.testing.assert_array_equal(res["warped_mask"], fm)  # the moved lungs land exactly on the fixed ones
    # the wrong way round (moving first) gives the opposite field: the direction is fixed <- moving
    back = r(m, f, mm, fm)
    assert np.abs(back["ddf"][0][mm > 0] + SHIFT[0]).max() < 1e-3


def test_register_api_cli_and_itk_field_agree_on_a_translation(tmp_path, model_files):
    itk = pytest.importorskip("itk")
    from bundle.cli import main

    f, m, fm, mm = _shifted_pair()
    for name, arr in (("fixed", f), ("moving", m), ("fixed_mask", fm * 255), ("moving_mask", mm * 255)):
        Image.fromarray(arr.astype(np.uint8)).save(tmp_path / f"{name}.png")
    kw = {"model": str(model_files / "reg.pt"), "seg_model": str(model_files / "seg.pt")}
    by_path = register(str(tmp_path / "fixed.png"), str(tmp_path / "moving.png"), fixed_mask=str(tmp_path / "fixed_mask.png"),
                       moving_mask=str(tmp_path / "moving_mask.png"), **kw)
    by_array = register(f, m, fixed_mask=fm, moving_mask=mm, **kw)  # fixed first, as ANTsPy
    np.testing.assert_array_equal(by_path["ddf"], by_array["ddf"])
    lung = fm > 0
    assert np.abs(by_array["ddf"][0][lung] - SHIFT[0]).max() < 1e-3  # at the default 256 x 256 working grid too
    assert np.abs(by_array["ddf"][1][lung] - SHIFT[1]).max() < 1e-3
    assert by_array["metrics"]["dsc"] == 1.0 and by_array["metrics"]["hd"] == 0.0 and by_array["metrics"]["jac"] == 0

    out = tmp_path / "out"
    assert main(["register", str(tmp_path / "moving.png"), str(tmp_path / "fixed.png"), "--out", str(out),
                 "--moving-mask", str(tmp_path / "moving_mask.png"), "--fixed-mask", str(tmp_path / "fixed_mask.png"),
                 "--model", kw["model"], "--seg-model", kw["seg_model"], "--quiet"]) == 0
    vec = itk.array_from_image(itk.imread(str(out / "ddf.nii.gz"), itk.Vector[itk.F, 2]))  # (rows, cols, (x, y))
    np.testing.assert_allclose(vec[..., 0], by_array["ddf"][1], atol=1e-5)  # x = column displacement (PNG: 1 mm px)
    np.testing.assert_allclose(vec[..., 1], by_array["ddf"][0], atol=1e-5)  # y = row displacement
    warped = np.asarray(Image.open(out / "warped.png")).astype(np.float32)
    assert np.abs(warped - f)[lung].max() <= 1.0  # the moving image pulled back onto the fixed one
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dsc"] == 1.0 and metrics["jac"] == 0
