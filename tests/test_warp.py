"""cxreg warp: a saved ddf.nii.gz applied to other images and label maps of the moving image.

Analytic checks (a constant field of whole pixels moves a label map by exactly that much, in pixels or mm), the
same result as cxreg register's own warped image, and one-line errors that leave nothing behind."""

import json

import numpy as np
import pytest
from PIL import Image

from bundle.cli import main
from bundle.warp import apply_ddf

itk = pytest.importorskip("itk")


def _write_ddf(path, shape, dxy, spacing=(1.0, 1.0), origin=(0.0, 0.0)):
    """A constant physical displacement (x, y) on a grid of ``shape`` (H, W)."""
    vec = np.zeros((*shape, 2), np.float32)
    vec[..., 0], vec[..., 1] = dxy
    im = itk.image_from_array(vec, is_vector=True)
    im.SetSpacing(list(spacing))
    im.SetOrigin(list(origin))
    itk.imwrite(im, str(path))


def _labels(shape=(40, 48)):
    lab = np.zeros(shape, np.uint8)
    lab[8:20, 10:22] = 1
    lab[22:34, 24:40] = 2
    lab[5, 40] = 7  # a single pixel: nearest neighbour must not lose it
    return lab


def test_a_constant_field_of_whole_pixels_moves_labels_exactly(tmp_path):
    lab = _labels()
    Image.fromarray(lab).save(tmp_path / "labels.png")
    _write_ddf(tmp_path / "ddf.nii.gz", lab.shape, (3.0, -4.0))  # fixed point p takes moving(p + (x 3, y -4))
    assert main(["warp", str(tmp_path / "labels.png"), str(tmp_path / "ddf.nii.gz"), "--out",
                 str(tmp_path / "out.png"), "--labels", "--quiet"]) == 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.dtype == np.uint8 and out.shape == lab.shape
    want = np.zeros_like(lab)
    want[4:, :-3] = lab[:-4, 3:]  # out[r, c] = lab[r - 4, c + 3]
    np.testing.assert_array_equal(out, want)
    assert set(np.unique(out)) == {0, 1, 2, 7}


def test_physical_displacements_with_anisotropic_spacing_and_a_flip(tmp_path):
    """Spacing (x 0.5, y 0.7) mm, x flipped, on both grids: a physical (dx 1.5, dy -2.8) mm is (-3, -4) in
    (column, row) indices; the NIfTI output keeps the field's geometry and the labels."""
    lab = _labels().astype(np.float32)
    sp, org, dr = [0.5, 0.7], [2.0, 1.0], np.array([[-1.0, 0.0], [0.0, 1.0]])
    im = itk.image_from_array(lab)
    im.SetSpacing(sp)
    im.SetOrigin(org)
    im.SetDirection(itk.matrix_from_array(dr))
    itk.imwrite(im, str(tmp_path / "labels.nii.gz"))
    vec = np.zeros((*lab.shape, 2), np.float32)
    vec[..., 0], vec[..., 1] = 1.5, -2.8
    f = itk.image_from_array(vec, is_vector=True)
    f.SetSpacing(sp)
    f.SetOrigin(org)
    f.SetDirection(itk.matrix_from_array(dr))
    itk.imwrite(f, str(tmp_path / "ddf.nii.gz"))
    assert main(["warp", str(tmp_path / "labels.nii.gz"), str(tmp_path / "ddf.nii.gz"), "--out",
                 str(tmp_path / "out.nii.gz"), "--labels", "--quiet"]) == 0
    out_im = itk.imread(str(tmp_path / "out.nii.gz"))
    assert np.allclose(out_im.GetSpacing(), sp) and np.allclose(out_im.GetOrigin(), org)
    assert np.allclose(itk.array_from_matrix(out_im.GetDirection()), dr)
    out = itk.array_from_image(out_im)
    want = np.zeros_like(lab)
    want[4:, 3:] = lab[:-4, :-3]  # out[r, c] = lab[r - 4, c - 3]
    np.testing.assert_array_equal(out, want)


def test_a_png_mask_of_a_nifti_moving_image_is_read_on_the_nifti_grid(tmp_path, models):
    """Register a flipped, anisotropic NIfTI pair (PNG masks); cxreg warp of the moving NIfTI reproduces
    warped.nii.gz (so ddf.nii.gz is right under that geometry) and of the PNG mask warped_mask.png (the PNG is
    read on the registered moving image's grid); a NIfTI of another geometry is refused."""
    from .test_register import _nifti_pair, _pair, _run

    d = _nifti_pair(_pair(tmp_path, (96, 80)))
    out = tmp_path / "reg"
    assert _run(tmp_path, models, str(d / "moving.nii.gz"), str(d / "fixed.nii.gz"), "--out", str(out),
                "--moving-mask", str(d / "moving_mask.png"), "--fixed-mask", str(d / "fixed_mask.png")) == 0
    ddf = str(out / "ddf.nii.gz")
    assert main(["warp", str(d / "moving.nii.gz"), ddf, "--out", str(tmp_path / "w.nii.gz"), "--quiet"]) == 0
    assert main(["warp", str(d / "moving_mask.png"), ddf, "--out", str(tmp_path / "m.png"), "--labels", "--quiet"]) == 0
    w = itk.array_from_image(itk.imread(str(tmp_path / "w.nii.gz")))
    ref = itk.array_from_image(itk.imread(str(out / "warped.nii.gz")))
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(w[inner] - ref[inner]).mean() < 0.5
    assert np.abs(w - np.asarray(Image.open(d / "moving.png"), np.float32)).mean() > 1  # it did move
    m = np.asarray(Image.open(tmp_path / "m.png"))
    ref_m = np.asarray(Image.open(out / "warped_mask.png"))
    from scipy.ndimage import binary_dilation, binary_erosion

    band = binary_dilation(ref_m > 0) & ~binary_erosion(ref_m > 0)
    assert not ((m != ref_m) & ~band).any() and (m != ref_m).sum() <= 0.1 * band.sum()
    other = itk.image_from_array(np.asarray(Image.open(d / "moving_mask.png")).astype(np.float32))
    itk.imwrite(other, str(tmp_path / "unit_grid.nii.gz"))  # same size, unit spacing: not the moving grid
    assert main(["warp", str(tmp_path / "unit_grid.nii.gz"), ddf, "--out", str(tmp_path / "x.png"), "--labels"]) == 1
    assert not (tmp_path / "x.png").exists()


def test_zero_field_is_the_identity_and_half_pixels_interpolate_grey_values():
    img = np.arange(30, dtype=np.float64).reshape(5, 6)
    geo = (np.zeros(2), np.ones(2), np.eye(2))
    np.testing.assert_allclose(apply_ddf(img, geo, np.zeros((5, 6, 2), np.float32), geo), img)
    half = np.zeros((5, 6, 2), np.float32)
    half[..., 0] = 0.5  # x + 0.5: the mean of a pixel and its right neighbour
    np.testing.assert_allclose(apply_ddf(img, geo, half, geo)[:, :-1], img[:, :-1] + 0.5)


def test_warp_reproduces_cxreg_registers_warped_image_and_mask(tmp_path, models):
    from .test_register import _pair, _run

    d = _pair(tmp_path, (96, 80))
    out = tmp_path / "reg"
    assert _run(tmp_path, models, str(d / "moving.png"), str(d / "fixed.png"), "--out", str(out),
                "--moving-mask", str(d / "moving_mask.png"), "--fixed-mask", str(d / "fixed_mask.png")) == 0
    assert main(["warp", str(d / "moving.png"), str(out / "ddf.nii.gz"), "--out", str(tmp_path / "w.png"),
                 "--quiet"]) == 0
    assert main(["warp", str(d / "moving_mask.png"), str(out / "ddf.nii.gz"), "--out", str(tmp_path / "m.png"),
                 "--labels", "--quiet"]) == 0
    w = np.asarray(Image.open(tmp_path / "w.png")).astype(np.float32)
    ref = np.asarray(Image.open(out / "warped.png")).astype(np.float32)
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(w[inner] - ref[inner]).mean() < 1.0  # interpolation and rounding only
    m = np.asarray(Image.open(tmp_path / "m.png"))
    assert set(np.unique(m)) <= {0, 255}  # labels kept, nothing blended
    ref_m = np.asarray(Image.open(out / "warped_mask.png"))
    # nearest neighbour against register's bilinear-then-threshold: they may differ only next to the mask's border
    from scipy.ndimage import binary_dilation, binary_erosion

    band = binary_dilation(ref_m > 0) & ~binary_erosion(ref_m > 0)
    assert not ((m != ref_m) & ~band).any()
    assert (m != ref_m).sum() <= 0.1 * band.sum()


def test_errors_are_one_line_and_write_nothing(tmp_path, capsys, models):
    lab = _labels()
    Image.fromarray(lab).save(tmp_path / "labels.png")
    Image.fromarray(lab.astype(np.float32) * 0.5 + 0.25, mode="F").save(tmp_path / "grey.tiff")
    _write_ddf(tmp_path / "ddf.nii.gz", lab.shape, (1.0, 0.0))
    scalar = itk.image_from_array(np.zeros(lab.shape, np.float32))
    itk.imwrite(scalar, str(tmp_path / "scalar.nii.gz"))
    nonint = itk.image_from_array(lab.astype(np.float32) + 0.5)
    itk.imwrite(nonint, str(tmp_path / "nonint.nii.gz"))
    (tmp_path / "exists.png").write_bytes(b"keep")
    cases = [
        (["labels.png", "scalar.nii.gz", "o1.png"], "scalar.nii.gz: not a 2D displacement field"),
        (["labels.png", "missing.nii.gz", "o2.png"], "missing.nii.gz: displacement field not found"),
        (["nonint.nii.gz", "ddf.nii.gz", "o3.nii.gz", "--labels"], "nonint.nii.gz: not a label map"),
        (["labels.png", "ddf.nii.gz", "o4.jpg"], "o4.jpg: unsupported output type"),
        (["labels.png", "ddf.nii.gz", "exists.png"], "exists.png: output file exists (use --overwrite"),
    ]
    for (mov, ddf, o, *extra), msg in cases:
        assert main(["warp", str(tmp_path / mov), str(tmp_path / ddf), "--out", str(tmp_path / o), *extra]) == 1
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err
        if o != "exists.png":
            assert not (tmp_path / o).exists()
    assert (tmp_path / "exists.png").read_bytes() == b"keep"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_float_values_are_not_squeezed_into_a_png_and_a_failed_write_leaves_nothing(tmp_path, capsys, monkeypatch):
    prob = itk.image_from_array(np.linspace(0, 1, 40 * 48, dtype=np.float32).reshape(40, 48))
    itk.imwrite(prob, str(tmp_path / "prob.nii.gz"))
    _write_ddf(tmp_path / "ddf.nii.gz", (40, 48), (1.0, 0.0))
    assert main(["warp", str(tmp_path / "prob.nii.gz"), str(tmp_path / "ddf.nii.gz"), "--out",
                 str(tmp_path / "sub" / "p.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert "prob.nii.gz: values are not whole numbers" in err and "p.nii.gz" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "sub").exists()  # no folder made for a refused run
    assert main(["warp", str(tmp_path / "prob.nii.gz"), str(tmp_path / "ddf.nii.gz"), "--out",
                 str(tmp_path / "p.nii.gz"), "--quiet"]) == 0
    w = itk.array_from_image(itk.imread(str(tmp_path / "p.nii.gz")))
    assert w.dtype == np.float32 and 0 < w.min() < w.max() <= 1  # the probabilities kept as floats
    from PIL import Image as PILImage

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    Image.fromarray(_labels()).save(tmp_path / "labels.png")
    monkeypatch.setattr(PILImage.Image, "save", disk_full)
    assert main(["warp", str(tmp_path / "labels.png"), str(tmp_path / "ddf.nii.gz"), "--out",
                 str(tmp_path / "o.png"), "--labels"]) == 1
    err = capsys.readouterr().err.strip()
    assert "o.png: cannot be written (No space left on device)" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.png").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_image_of_another_size_than_the_registered_moving_image_is_refused(tmp_path, capsys, models):
    from .test_register import _pair, _run

    d = _pair(tmp_path, (64, 64))
    out = tmp_path / "reg"
    assert _run(tmp_path, models, str(d / "moving.png"), str(d / "fixed.png"), "--out", str(out)) == 0
    assert json.loads((out / "metrics.json").read_text())["moving"] == str(d / "moving.png")
    Image.fromarray(np.zeros((50, 64), np.uint8)).save(tmp_path / "small.png")
    assert main(["warp", str(tmp_path / "small.png"), str(out / "ddf.nii.gz"), "--out", str(tmp_path / "o.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert "small.png: image is 50x64 pixels" in err and "64x64" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_the_size_check_holds_from_another_folder_and_after_the_moving_image_is_gone(tmp_path, capsys, models,
                                                                                     monkeypatch):
    """cxreg register run with relative paths records absolute ones and the moving image's size (since 0.5.7),
    so cxreg warp refuses an image of another size when run from elsewhere, and even once the moving image was
    deleted."""
    from .test_register import _pair, _run

    d = _pair(tmp_path, (64, 64))
    monkeypatch.chdir(tmp_path)
    assert _run(tmp_path, models, "moving.png", "fixed.png", "--out", "reg") == 0
    info = json.loads((tmp_path / "reg" / "metrics.json").read_text())
    assert info["moving"] == str(d / "moving.png") and info["fixed"] == str(d / "fixed.png")
    assert info["moving_shape"] == [64, 64]
    (tmp_path / "elsewhere").mkdir()
    Image.fromarray(np.zeros((50, 64), np.uint8)).save(tmp_path / "elsewhere" / "small.png")
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    for gone in (False, True):
        if gone:
            (d / "moving.png").unlink()
        assert main(["warp", "small.png", "../reg/ddf.nii.gz", "--out", "o.png"]) == 1
        err = capsys.readouterr().err.strip()
        assert "small.png: image is 50x64 pixels" in err and "64x64" in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "elsewhere" / "o.png").exists()
