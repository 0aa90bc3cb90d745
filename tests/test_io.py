import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from bundle.io import InputError, atomic_file, json_ready, load_image, load_mask, save_image, stem, write_text_atomic


def _asym(h=7, w=11):
    a = np.zeros((h, w), np.uint8)
    a[2, 5] = 200  # row 2, col 5: asymmetric, so a transpose or flip is visible
    a[0, 0] = 50
    return a


def test_png_is_row_col_like_pil(tmp_path):
    a = _asym()
    Image.fromarray(a).save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")
    assert x.shape == (7, 11)
    assert x[2, 5] == 200 and x[0, 0] == 50


def test_png_nifti_png_round_trip(tmp_path):
    a = _asym()
    Image.fromarray(a).save(tmp_path / "a.png")
    save_image(tmp_path / "a.nii.gz", load_image(tmp_path / "a.png"), spacing=(0.5, 0.25))
    b = load_image(tmp_path / "a.nii.gz")
    np.testing.assert_array_equal(b, a.astype(np.float32))
    # NIfTI axis i is the image x axis (columns), as ITK and viewers expect
    raw = nib.load(str(tmp_path / "a.nii.gz"))
    assert raw.shape == (11, 7) and raw.get_fdata()[5, 2] == 200
    assert raw.header.get_zooms()[:2] == (0.25, 0.5)
    save_image(tmp_path / "b.png", b.astype(np.uint8))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), a)


def test_itk_sees_the_same_array(tmp_path):
    itk = pytest.importorskip("itk")
    a = _asym()
    save_image(tmp_path / "a.nii.gz", a.astype(np.float32))
    np.testing.assert_array_equal(itk.GetArrayFromImage(itk.imread(str(tmp_path / "a.nii.gz"))), a)


def test_rgb_rgba_and_16bit(tmp_path):
    a = _asym()
    Image.fromarray(np.stack([a] * 3, -1)).save(tmp_path / "rgb.png")
    Image.fromarray(np.stack([a] * 3 + [np.full_like(a, 255)], -1)).save(tmp_path / "rgba.png")
    np.testing.assert_allclose(load_image(tmp_path / "rgb.png"), a, atol=0.01)
    np.testing.assert_allclose(load_image(tmp_path / "rgba.png"), a, atol=0.01)
    b = a.astype(np.uint16) * 300
    Image.fromarray(b).save(tmp_path / "16.png")
    x = load_image(tmp_path / "16.png")
    assert x.max() == 60000 and x[2, 5] == 60000


def test_3d_nifti_with_singleton_axis(tmp_path):
    a = _asym().astype(np.float32)
    nib.save(nib.Nifti1Image(a.T[:, :, None], np.eye(4)), str(tmp_path / "s.nii.gz"))
    np.testing.assert_array_equal(load_image(tmp_path / "s.nii.gz"), a)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.float32), np.eye(4)), str(tmp_path / "v.nii.gz"))
    with pytest.raises(InputError, match="v.nii.gz"):
        load_image(tmp_path / "v.nii.gz")


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated", "suffix"])
def test_bad_files_name_the_file(tmp_path, kind):
    p = tmp_path / ("x.png" if kind != "suffix" else "x.jpg")
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("not an image")
    elif kind == "truncated":
        Image.fromarray(_asym(64, 64)).save(p)
        p.write_bytes(p.read_bytes()[:60])
    elif kind == "suffix":
        p.write_text("x")
    with pytest.raises(InputError) as e:
        load_image(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_load_mask_binarises(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[2:5, 2:5] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    x = load_mask(tmp_path / "m.png")
    assert x.dtype == np.uint8 and set(np.unique(x)) == {0, 1} and x.sum() == 9
    m[0, 0] = 100  # a third value: a label map (0.5.5 took it for background, below half the maximum)
    Image.fromarray(m).save(tmp_path / "m3.png")
    with pytest.raises(InputError, match="a label map"):
        load_mask(tmp_path / "m3.png")
    assert load_mask(tmp_path / "m3.png", labels=(255,)).sum() == 9
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "empty.png")  # no lung at all: refused
    with pytest.raises(InputError, match=r"empty.png: mask is empty \(every pixel is 0\)"):
        load_mask(tmp_path / "empty.png")


def test_json_ready_writes_null_for_nan_and_inf():
    import json

    out = json.dumps(json_ready({"hd": float("nan"), "x": [1.5, float("inf"), np.float32(2.0)], "n": 3, "s": "a"}),
                     allow_nan=False)  # strict JSON: raises if a NaN were left
    assert json.loads(out) == {"hd": None, "x": [1.5, None, 2.0], "n": 3, "s": "a"}


def test_load_mask_label_maps_need_their_lung_labels(tmp_path):
    """A 0/1/2/3 label map (left lung 1, right lung 2, heart 3): before 0.5.6 it was thresholded at half its
    maximum, which kept the heart and the right lung and dropped the left lung, silently. Now it is refused
    without ``labels``, and ``labels`` picks exactly the given values; two-valued masks keep their higher value
    (a 40/190 mask too); a soft mask with many values is lung above half its maximum."""
    from bundle.io import InputError, parse_labels

    m = np.zeros((8, 8), np.uint8)
    m[1:7, 1:3], m[1:7, 5:7], m[3:5, 3:5] = 1, 2, 3  # 12 + 12 lung pixels, 4 heart
    Image.fromarray(m).save(tmp_path / "labels.png")
    with pytest.raises(InputError) as e:
        load_mask(tmp_path / "labels.png")
    assert str(e.value) == (f"{tmp_path / 'labels.png'}: mask has 4 values (0, 1, 2, 3), a label map: say which "
                            "labels are lung with --mask-labels (e.g. --mask-labels 1,2)")
    lungs = load_mask(tmp_path / "labels.png", (1, 2))
    assert lungs.sum() == 24 and lungs[3, 3] == 0 and lungs[2, 1] == 1 and lungs[2, 5] == 1
    assert load_mask(tmp_path / "labels.png", "3").sum() == 4
    with pytest.raises(InputError, match=r"labels.png: none of the mask labels 5 is in this mask \(it has 0, 1, 2, 3\)"):
        load_mask(tmp_path / "labels.png", [5])
    with pytest.raises(InputError, match="--mask-labels must be labels > 0"):
        parse_labels("lungs")
    two = (m > 0).astype(np.uint8) * 150 + 40  # 40 background, 190 lung
    Image.fromarray(two).save(tmp_path / "two.png")
    assert load_mask(tmp_path / "two.png").sum() == 28
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "full.png")
    assert load_mask(tmp_path / "full.png").sum() == 64
    soft = np.linspace(0, 255, 64).reshape(8, 8).astype(np.uint8)  # 64 values: a soft mask
    Image.fromarray(soft).save(tmp_path / "soft.png")
    assert load_mask(tmp_path / "soft.png").sum() == int((soft > 127).sum()) == 32


def test_stem():
    assert stem("a/b/c.nii.gz") == "c" and stem("x.png") == "x" and stem("y.nii") == "y"


def test_dicom_is_row_col_monochrome1_inverted_and_fake_dicom_refused(tmp_path):
    import itk

    from bundle.io import InputError, load_image

    a = (np.arange(40 * 60).reshape(40, 60) % 251).astype(np.uint16)
    itk.imwrite(itk.image_from_array(a), str(tmp_path / "m2.dcm"))
    assert np.array_equal(load_image(tmp_path / "m2.dcm"), a.astype(np.float32))  # (row, col) like PNG
    raw = (tmp_path / "m2.dcm").read_bytes()  # GDCM writes MONOCHROME2; flip the tag value in place
    assert raw.count(b"MONOCHROME2 ") == 1
    (tmp_path / "m1.dcm").write_bytes(raw.replace(b"MONOCHROME2 ", b"MONOCHROME1 "))
    m1 = load_image(tmp_path / "m1.dcm")
    assert np.array_equal(m1, (65535 - a).astype(np.float32))  # ITK/GDCM inverts MONOCHROME1: bright = dense
    (tmp_path / "fake.dcm").write_bytes(b"\0" * 200)
    with pytest.raises(InputError, match="fake.dcm: not a DICOM file"):
        load_image(tmp_path / "fake.dcm")


def test_a_missing_or_foreign_pairs_csv_is_a_one_line_error(tmp_path):
    from bundle.io import InputError, read_pairs_csv

    with pytest.raises(InputError, match=r"pairs.csv: no such file"):
        read_pairs_csv(tmp_path / "pairs.csv")
    (tmp_path / "pairs.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"pairs.csv: not a pairs.csv \(no moving and fixed columns\)"):
        read_pairs_csv(tmp_path / "pairs.csv")
    (tmp_path / "pairs.csv").write_text("moving,fixed,hd\nm1,f1,3.5\nm2,f1,4\n")
    assert read_pairs_csv(tmp_path / "pairs.csv")[("m2", "f1")]["hd"] == "4"


def test_atomic_file_replaces_on_success_and_keeps_the_old_file_on_error(tmp_path):
    dest = tmp_path / "sub" / "out.nii.gz"
    with atomic_file(dest) as tmp:
        assert tmp.parent == dest.parent and tmp.name.startswith(".out.nii.gz.") and tmp.name.endswith(".nii.gz")
        assert not dest.exists()  # nothing visible under the final name while writing
        save_image(tmp, np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(load_image(dest), np.arange(12).reshape(3, 4))
    assert dest.stat().st_mode & 0o777 == 0o644
    before = dest.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_file(dest) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert dest.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out.nii.gz"]  # and no temporary file is left
    assert write_text_atomic(tmp_path / "a.json", '{"é": 1}').read_text(encoding="utf-8") == '{"é": 1}'
    long = tmp_path / ("x" * 246 + ".png")  # 250 characters: fits the 255 limit, a temp name of it would not
    with atomic_file(long) as tmp:
        save_image(tmp, np.zeros((4, 4), np.uint8))
    assert long.is_file()
    import os

    old = os.umask(0o077)  # the finished file follows the umask, as open() would
    try:
        write_text_atomic(tmp_path / "private.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600


def test_a_mask_label_that_is_absent_is_named_in_a_warning(tmp_path, caplog):
    """``--mask-labels 1,5`` on a 0-3 label map: lung = label 1 (a mask may lack a lung for a real reason), and one
    warning line names the file and the absent label; all labels present: no warning."""
    import logging

    m = np.zeros((8, 8), np.uint8)
    m[1:7, 1:3], m[1:7, 5:7], m[3:5, 3:5] = 1, 2, 3
    Image.fromarray(m).save(tmp_path / "labels.png")
    with caplog.at_level(logging.WARNING, logger="cxreg"):
        assert load_mask(tmp_path / "labels.png", (1, 2)).sum() == 24
        assert caplog.messages == []
        assert load_mask(tmp_path / "labels.png", (1, 5)).sum() == 12
    assert caplog.messages == [f"warning: {tmp_path / 'labels.png'}: mask label(s) 5 not in this mask (it has 0, 1, "
                               f"2, 3); lung = label(s) 1"]


@pytest.mark.parametrize("vector", [False, True])
def test_write_nifti_is_read_by_itk_as_its_own_writer_s_file(tmp_path, vector):
    """``cxreg register`` writes ddf/jacobian/warped NIfTI with nibabel (since 0.5.9; ITK's writer costs ~250 MiB
    of memory): ITK reads each file back with the image type, pixels, origin, spacing and direction of the file
    ``itk.imwrite`` makes from the same image, and the two headers agree field by field."""
    import itk
    import nibabel as nib

    from bundle.io import write_nifti

    rng = np.random.default_rng(0)
    rot = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    for k, d in enumerate((np.eye(2), np.diag([1.0, -1.0]), np.diag([-1.0, 1.0]), rot, rot @ np.diag([1.0, -1.0]))):
        # float32 fields and images; uint8 / uint16 label maps (cxreg warp --labels)
        dtype = np.float32 if vector or k < 3 else (np.uint8, np.uint16)[k - 3]
        a = (rng.random((5, 7, 2) if vector else (5, 7)) * {np.float32: 1, np.uint8: 250, np.uint16: 3000}[dtype]).astype(dtype)
        origin, spacing = [3.5, -2.25 * k], [0.7, 1.3]
        im = itk.image_view_from_array(a, is_vector=vector)
        im.SetOrigin(origin)
        im.SetSpacing(spacing)
        im.SetDirection(itk.matrix_from_array(d))
        itk.imwrite(im, str(tmp_path / "itk.nii.gz"))
        write_nifti(tmp_path / "ours.nii.gz", a, origin, spacing, d, vector=vector)
        want, got = itk.imread(str(tmp_path / "itk.nii.gz")), itk.imread(str(tmp_path / "ours.nii.gz"))
        assert type(got) is type(want) and got.GetImageDimension() == 2
        assert np.array_equal(itk.array_from_image(got), a) and np.array_equal(itk.array_from_image(want), a)
        np.testing.assert_allclose(np.array(got.GetOrigin()), origin, atol=1e-6)
        np.testing.assert_allclose(np.array(got.GetSpacing()), spacing, atol=1e-6)
        np.testing.assert_allclose(itk.array_from_matrix(got.GetDirection()),
                                   itk.array_from_matrix(want.GetDirection()), atol=1e-6)
        hw, hg = nib.load(tmp_path / "itk.nii.gz").header, nib.load(tmp_path / "ours.nii.gz").header
        for key in hw.keys():
            if np.asarray(hw[key]).dtype.kind == "f":
                np.testing.assert_allclose(hg[key], hw[key], atol=1e-6, err_msg=key)
            else:
                assert np.array_equal(hg[key], hw[key]), key
