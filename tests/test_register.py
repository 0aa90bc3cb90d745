"""cxreg register: outputs, geometry on the fixed grid, ITK compatibility of ddf.nii.gz, batch mode."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from bundle.cli import main
from bundle.io import save_image

from .conftest import SHARED_DATA, lung_mask, needs_shared


def _pair(tmp_path, shape=(96, 80)):
    h, w = shape
    f = lung_mask(max(h, w))[:h, :w]
    m = lung_mask(max(h, w), shift=(3, -4))[:h, :w]
    Image.fromarray((200 - 120 * f).astype(np.uint8)).save(tmp_path / "fixed.png")
    Image.fromarray((200 - 120 * m).astype(np.uint8)).save(tmp_path / "moving.png")
    Image.fromarray(f * 255).save(tmp_path / "fixed_mask.png")
    Image.fromarray(m * 255).save(tmp_path / "moving_mask.png")
    return tmp_path


def _nifti_pair(d):
    """fixed.nii.gz and moving.nii.gz beside the PNGs of :func:`_pair`: the same pixels with origin (10, -3),
    spacing (x 0.5, y 0.7) mm and the x axis flipped."""
    import itk

    origin, spacing, direction = [10.0, -3.0], [0.5, 0.7], np.array([[-1.0, 0.0], [0.0, 1.0]])
    for name in ("fixed", "moving"):
        im = itk.image_from_array(np.asarray(Image.open(d / f"{name}.png")).astype(np.float32))
        im.SetOrigin(origin)
        im.SetSpacing(spacing)
        im.SetDirection(itk.matrix_from_array(direction))
        itk.imwrite(im, str(d / f"{name}.nii.gz"))
    return d


def _run(tmp_path, models, *extra):
    return main(["register", *extra, "--model", str(models / "reg.pt"), "--seg-model", str(models / "seg.pt"),
                 "--quiet"])


def _same_outputs(out, ref):
    """Two output folders of one pair hold the same field, warped image and mask, metrics and options (but for
    where the models came from)."""
    import nibabel as nib

    a, b = (np.asanyarray(nib.load(o / "ddf.nii.gz").dataobj) for o in (out, ref))
    assert np.abs(b).max() > 0.1  # the untrained toy model does move pixels, so the comparison means something
    np.testing.assert_allclose(a, b, atol=1e-5)
    for name in ("warped.png", "warped_mask.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)), np.asarray(Image.open(ref / name)))
    ma, mb = (json.loads((o / "metrics.json").read_text()) for o in (out, ref))
    assert {k: v for k, v in ma.items() if k != "options"} == {k: v for k, v in mb.items() if k != "options"}
    assert {k: v for k, v in ma["options"].items() if k not in ("model", "seg_model")} == {
        k: v for k, v in mb["options"].items() if k not in ("model", "seg_model")}


def test_register_pair_outputs_and_itk(tmp_path, models):
    itk = pytest.importorskip("itk")
    d = _pair(tmp_path)
    out = tmp_path / "out"
    assert _run(tmp_path, models, str(d / "moving.png"), str(d / "fixed.png"), "--out", str(out),
                "--moving-mask", str(d / "moving_mask.png"), "--fixed-mask", str(d / "fixed_mask.png")) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["ddf.nii.gz", "jacobian.nii.gz", "metrics.json", "overlay.png", "warped.png", "warped_mask.png"]
    warped = np.asarray(Image.open(out / "warped.png")).astype(np.float32)
    assert warped.shape == (96, 80)  # on the fixed grid, non-square kept
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) >= {"jac", "jac_pct", "dsc", "hd", "assd"} and m["jac"] == 0  # integrated field: no folds
    from bundle import __version__

    opts = dict(m["options"])
    assert isinstance(opts.pop("fix_folds"), bool)  # the toy model's own setting (values: the fix-folds test)
    assert opts == {"model": str(models / "reg.pt"), "seg_model": str(models / "seg.pt"), "size": 256, "refine": 0,
                    "refine_mask_weight": 40.0, "refine_distance_weight": 0.0, "version": __version__}
    # ITK applies ddf.nii.gz (physical displacement, fixed grid) to the moving image and gets warped back
    VF = itk.Image[itk.Vector[itk.F, 2], 2]
    field = itk.imread(str(out / "ddf.nii.gz"), itk.Vector[itk.F, 2])
    assert isinstance(field, VF) and tuple(itk.size(field)) == (80, 96)
    mov = itk.image_from_array(np.asarray(Image.open(d / "moving.png")).astype(np.float32))
    res = itk.array_from_image(itk.warp_image_filter(mov, displacement_field=field, output_parameters_from_image=mov))
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(res[inner] - warped[inner]).mean() < 1.0  # interpolation and rounding only
    # an existing output folder is refused without --overwrite, and nothing is changed
    before = (out / "metrics.json").read_text()
    assert _run(tmp_path, models, str(d / "moving.png"), str(d / "fixed.png"), "--out", str(out)) == 1
    assert (out / "metrics.json").read_text() == before


def test_register_nifti_and_batch_with_a_bad_pair(tmp_path, models):
    d = _pair(tmp_path, (64, 64))
    save_image(d / "moving.nii.gz", np.asarray(Image.open(d / "moving.png")).astype(np.float32))
    (d / "broken.png").write_text("not an image")
    (d / "pairs.csv").write_text("moving,fixed\nmoving.nii.gz,fixed.png\n\nbroken.png,fixed.png\nmoving.nii.gz,fixed.png\n")
    out = tmp_path / "batch"
    assert _run(tmp_path, models, "--pairs", str(d / "pairs.csv"), "--out", str(out)) == 1  # one pair failed
    summary = json.loads((out / "summary.json").read_text())
    assert [s["ok"] for s in summary] == [True, False]  # blank line skipped, duplicate row dropped
    assert "broken.png" in summary[1]["error"]
    assert (out / "moving__fixed" / "warped.nii.gz").is_file()  # same format as the moving image
    assert not (out / "broken__fixed").exists()


def test_pairs_csv_errors(tmp_path, capsys):
    (tmp_path / "p.csv").write_text("a,b\nx,y\n")
    assert main(["register", "--pairs", str(tmp_path / "p.csv"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "needs the columns moving,fixed" in err and len(err.strip().splitlines()) == 1


def test_monai_bundle_inference_writes_the_same_files(tmp_path, models):
    from .test_bundles import monai_bundle
    from .conftest import REPO

    d = _pair(tmp_path, (64, 64))
    out = tmp_path / "bundle_out"
    masks = ["--moving_mask", str(d / "moving_mask.png"), "--fixed_mask", str(d / "fixed_mask.png")]
    log = monai_bundle("run", "inference", "--config_file", str(REPO / "configs" / "inference.json"),
                       "--moving", str(d / "moving.png"), "--fixed", str(d / "fixed.png"), "--output_dir", str(out),
                       "--model_path", str(models / "reg.pt"), "--seg_model", str(models / "seg.pt"), *masks,
                       cwd=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["ddf.nii.gz", "jacobian.nii.gz", "metrics.json", "overlay.png",
                                                      "warped.png", "warped_mask.png"]
    # and the same values as cxreg register on the pair (Fire hands the options over as strings)
    ref = tmp_path / "cli_out"
    assert _run(tmp_path, models, str(d / "moving.png"), str(d / "fixed.png"), "--out", str(ref),
                "--moving-mask", masks[1], "--fixed-mask", masks[3]) == 0
    from bundle.register import status_line

    mb = json.loads((ref / "metrics.json").read_text())
    assert status_line({"pair": "moving__fixed", "out": str(out), **mb}) in log  # the line cxreg register prints
    assert " DSC " in status_line({"pair": "p", "out": "o", **mb})
    _same_outputs(out, ref)


def test_inference_json_is_a_monai_inference_workflow(tmp_path, models):
    """Since 0.5.6 the registration inference.json has MONAI's inference-workflow properties (what model-zoo CI
    checks with ``check_properties()``): ``evaluator`` is a SupervisedEvaluator over the pairs whose network is
    ``network_def`` (the loaded registration network), ``inferer`` is the pipeline as a MONAI Inferer, and running
    the workflow writes what ``cxreg register`` writes. The Inferer's field is the one in that pair's output."""
    from monai.bundle import ConfigWorkflow
    from monai.engines import SupervisedEvaluator
    from monai.inferers import Inferer

    from bundle.io import load_image
    from bundle.register import Registrar

    from .conftest import REPO

    d = _pair(tmp_path, (64, 64))
    out = tmp_path / "wf_out"
    path = REPO / "configs" / "inference.json"
    w = ConfigWorkflow(config_file=str(path), workflow_type="infer", meta_file=str(REPO / "configs" / "metadata.json"),
                       logging_file=None, moving=str(d / "moving.png"), fixed=str(d / "fixed.png"),
                       output_dir=str(out), model_path=str(models / "reg.pt"), seg_model=str(models / "seg.pt"),
                       device="cpu")
    w.initialize()
    assert w.check_properties() == []
    assert isinstance(w.evaluator, SupervisedEvaluator) and isinstance(w.inferer, Inferer)
    assert w.network_def is w.evaluator.network and w.dataset_dir == str(d.resolve())
    assert not out.exists()  # building the workflow writes nothing
    w.run()
    assert sorted(p.name for p in out.iterdir()) == ["ddf.nii.gz", "jacobian.nii.gz", "metrics.json", "overlay.png",
                                                      "warped.png", "warped_mask.png"]
    # and the same values as cxreg register on the pair (Fire hands the options over as strings)
    ref = tmp_path / "cli_out"
    assert _run(tmp_path, models, str(d / "moving.png"), str(d / "fixed.png"), "--out", str(ref)) == 0
    _same_outputs(out, ref)
    moving, fixed = load_image(d / "moving.png"), load_image(d / "fixed.png")
    x = torch.from_numpy(np.stack([moving, fixed]))[None].repeat(2, 1, 1, 1)
    ddf = w.inferer(x, w.network_def)
    assert ddf.shape == (2, 2, 64, 64) and torch.equal(ddf[0], ddf[1])
    assert torch.equal(w.inferer(x[:1]), ddf[:1])  # without a network: the registrar's own
    import copy

    other = copy.deepcopy(w.network_def)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for prm in other.parameters():
            prm.add_(0.2 * torch.randn(prm.shape, generator=g))
    assert (w.inferer(x[:1], other) - ddf[:1]).abs().max() > 1e-3  # a given network is the one used
    want = Registrar(str(models / "reg.pt"), seg_model=str(models / "seg.pt"))(fixed, moving)["ddf"]
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(ddf[0].numpy(), want, atol=1e-5)
    import itk

    written = itk.array_from_image(itk.imread(str(out / "ddf.nii.gz")))  # (H, W, 2): physical (x, y) = (col, row)
    np.testing.assert_allclose(written[..., 1], want[0], atol=1e-4)
    np.testing.assert_allclose(written[..., 0], want[1], atol=1e-4)
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\) tensor"):
        w.inferer(x[:, :1], w.network_def)
    # run again: the folder exists now, and this run reports its own failure (not the first run's success)
    with pytest.raises(SystemExit, match="cxreg inference: error: .*wf_out: output folder exists"):
        w.run()
    assert [st["pair"] for st in w.evaluator.cxreg.job.status] == ["moving__fixed"] * 2  # named afresh, no __2


def test_bare_inference_workflow_passes_check_properties_and_refuses_to_run(tmp_path, models):
    """Model-zoo CI builds the workflow with no inputs: check_properties() must not end the process (the
    evaluator is built over no pairs); running it is the one-line error."""
    from monai.bundle import ConfigWorkflow

    from .conftest import REPO

    w = ConfigWorkflow(config_file=str(REPO / "configs" / "inference.json"), workflow_type="infer",
                       meta_file=str(REPO / "configs" / "metadata.json"), logging_file=None,
                       model_path=str(models / "reg.pt"), seg_model=str(models / "seg.pt"),
                       output_dir=str(tmp_path / "never"))
    w.initialize()
    assert w.check_properties() == [] and w.dataset_dir is None
    with pytest.raises(SystemExit, match="^cxreg inference: error: give --moving and --fixed, or --pairs_csv$"):
        w.run()
    assert not (tmp_path / "never").exists()


def test_bundle_inference_options_are_checked_in_one_line(tmp_path, models):
    from bundle.io import InputError
    from bundle.register import bundle_inference

    d = _pair(tmp_path, (64, 64))
    kw = dict(moving=str(d / "moving.png"), fixed=str(d / "fixed.png"), output_dir=str(tmp_path / "o"),
              model=str(models / "reg.pt"), seg_model=str(models / "seg.pt"))
    with pytest.raises(InputError, match="--refine_steps must be a whole number >= 0, not 'two'"):
        bundle_inference(**kw, refine_steps="two")
    with pytest.raises(InputError, match="--overwrite must be true or false, not 'perhaps'"):
        bundle_inference(**kw, overwrite="perhaps")
    with pytest.raises(SystemExit, match="cxreg inference: error: --refine_steps must be a whole number >= 0, not -1"):
        bundle_inference(**kw, refine_steps=-1, exit_on_error=True)
    assert not (tmp_path / "o").exists()
    assert bundle_inference(**kw, refine_steps="2")[0]["ok"]
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["options"]["refine"] == 2


def test_label_map_masks_with_mask_labels(tmp_path, models, capsys, caplog):
    """Masks given as label maps (left lung 1, right lung 2, heart 3): refused in one line without
    ``--mask-labels`` (0.5.5 kept only labels above half the maximum, dropping the left lung), and with
    ``--mask-labels 1,2`` the pair's metrics are those of the equivalent binary masks; the bundle too."""
    from bundle.register import bundle_inference

    d = _pair(tmp_path, (64, 64))
    for name in ("moving", "fixed"):
        b = np.asarray(Image.open(d / f"{name}_mask.png")) > 0
        lab = np.where(b, np.where(np.arange(64)[None, :] < 32, 1, 2), 0).astype(np.uint8)
        lab[~b & (np.abs(np.arange(64)[:, None] - 40) < 4) & (np.abs(np.arange(64)[None, :] - 32) < 4)] = 3
        assert set(np.unique(lab)) == {0, 1, 2, 3}
        Image.fromarray(lab).save(d / f"{name}_labels.png")
    masks = lambda kind: ["--moving-mask", str(d / f"moving_{kind}.png"), "--fixed-mask", str(d / f"fixed_{kind}.png")]  # noqa: E731
    pair = [str(d / "moving.png"), str(d / "fixed.png")]
    capsys.readouterr()
    assert _run(tmp_path, models, *pair, "--out", str(tmp_path / "no"), *masks("labels")) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"cxreg register: error: {d / 'fixed_labels.png'}: mask has 4 values (0, 1, 2, 3), a label "
                   "map: say which labels are lung with --mask-labels (e.g. --mask-labels 1,2)")
    assert not (tmp_path / "no").exists()
    assert _run(tmp_path, models, *pair, "--out", str(tmp_path / "bin"), *masks("mask")) == 0
    assert _run(tmp_path, models, *pair, "--out", str(tmp_path / "lab"), *masks("labels"), "--mask-labels", "1,2") == 0
    got, want = (json.loads((tmp_path / k / "metrics.json").read_text()) for k in ("lab", "bin"))
    assert got["dsc"] == want["dsc"] and got["hd"] == want["hd"] and 0.9 < want["dsc"] <= 1
    assert got["options"]["mask_labels"] == [1, 2] and "mask_labels" not in want["options"]
    warped = np.asarray(Image.open(tmp_path / "lab" / "warped_mask.png"))
    assert np.array_equal(warped, np.asarray(Image.open(tmp_path / "bin" / "warped_mask.png")))
    assert warped[:, :32].sum() > 0 and warped[:, 32:].sum() > 0  # both lungs (label 1 was dropped in 0.5.5)
    st = bundle_inference(*pair, moving_mask=str(d / "moving_labels.png"), fixed_mask=str(d / "fixed_labels.png"),
                          output_dir=str(tmp_path / "bundle"), model=str(models / "reg.pt"),
                          seg_model=str(models / "seg.pt"), mask_labels=(1, 2))
    assert st[0]["ok"] and st[0]["dsc"] == want["dsc"]
    # an atlas CSV (three moving images onto one fixed label map) with a label the maps lack: the fixed mask is
    # read once, so its warning is one line, not one per pair
    import shutil

    for k in range(3):
        shutil.copy(d / "moving.png", d / f"m{k}.png")
    (d / "atlas.csv").write_text("moving,fixed,moving_mask,fixed_mask\n" + "".join(
        f"m{k}.png,fixed.png,moving_labels.png,fixed_labels.png\n" for k in range(3)))
    import logging

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cxreg"):  # on the command line: one stderr line each
        assert _run(tmp_path, models, "--pairs", str(d / "atlas.csv"), "--out", str(tmp_path / "atlas"),
                    "--mask-labels", "1,2,5") == 0
    warned = caplog.messages
    assert sorted(warned) == sorted(f"warning: {d / n}: mask label(s) 5 not in this mask (it has 0, 1, 2, 3); lung = "
                                    f"label(s) 1, 2" for n in ("fixed_labels.png", "moving_labels.png"))


def test_register_dicom_pair_with_spacing_itk_applies_the_field(tmp_path, models):
    """DICOM in (read by ITK; MONOCHROME2), NIfTI warped out; ddf.nii.gz in mm, applied by ITK on the DICOM grid."""
    itk = pytest.importorskip("itk")
    d = _pair(tmp_path, (96, 80))
    for name in ("fixed", "moving"):
        im = itk.image_from_array(np.asarray(Image.open(d / f"{name}.png")).astype(np.uint16))
        im.SetSpacing([0.5, 0.5])
        itk.imwrite(im, str(d / f"{name}.dcm"))
    out = tmp_path / "out"
    assert _run(tmp_path, models, str(d / "moving.dcm"), str(d / "fixed.dcm"), "--out", str(out),
                "--moving-mask", str(d / "moving_mask.png"), "--fixed-mask", str(d / "fixed_mask.png")) == 0
    assert (out / "warped.nii.gz").is_file() and not (out / "warped.png").exists()
    from bundle.io import load_image

    warped = load_image(out / "warped.nii.gz")
    field = itk.imread(str(out / "ddf.nii.gz"), itk.Vector[itk.F, 2])
    assert np.allclose(field.GetSpacing(), [0.5, 0.5])
    assert np.allclose(itk.imread(str(out / "warped.nii.gz")).GetSpacing(), [0.5, 0.5])  # the fixed grid's
    mov = itk.imread(str(d / "moving.dcm"), itk.F)
    mov2d = itk.image_from_array(itk.array_from_image(mov).squeeze())
    mov2d.SetSpacing([0.5, 0.5])
    res = itk.array_from_image(itk.warp_image_filter(mov2d, displacement_field=field,
                                                     output_parameters_from_image=mov2d))
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(res[inner] - warped[inner]).mean() < 1.0


def test_nifti_outputs_carry_the_fixed_images_origin_spacing_and_direction(tmp_path, models):
    """warped.nii.gz, ddf.nii.gz and jacobian.nii.gz lie on the fixed grid, so they carry its geometry (before 0.5.5
    warped.nii.gz had a unit diagonal affine and did not overlay on a fixed image with spacing or origin); the voxel
    values are those of the PNG run of the same pair."""
    itk = pytest.importorskip("itk")
    d = _nifti_pair(_pair(tmp_path, (96, 80)))
    masks = ("--moving-mask", str(d / "moving_mask.png"), "--fixed-mask", str(d / "fixed_mask.png"))
    assert _run(tmp_path, models, str(d / "moving.nii.gz"), str(d / "fixed.nii.gz"), "--out", str(d / "nii"), *masks) == 0
    assert _run(tmp_path, models, str(d / "moving.png"), str(d / "fixed.png"), "--out", str(d / "png"), *masks) == 0
    fixed = itk.imread(str(d / "fixed.nii.gz"))
    m = json.loads((d / "nii" / "metrics.json").read_text())
    assert m["spacing_mm"] == pytest.approx([0.7, 0.5]) and "hd_mm" in m  # (row, col) from ITK's (x 0.5, y 0.7)
    assert "hd_mm" not in json.loads((d / "png" / "metrics.json").read_text())
    for name in ("warped.nii.gz", "ddf.nii.gz", "jacobian.nii.gz"):
        out = itk.imread(str(d / "nii" / name))
        assert np.allclose(out.GetOrigin(), fixed.GetOrigin()), name
        assert np.allclose(out.GetSpacing(), fixed.GetSpacing()), name
        assert np.allclose(itk.array_from_matrix(out.GetDirection()), itk.array_from_matrix(fixed.GetDirection())), name
    from bundle.io import load_image

    warped_nii = load_image(d / "nii" / "warped.nii.gz")
    warped_png = np.asarray(Image.open(d / "png" / "warped.png")).astype(np.float32)
    assert warped_nii.shape == (96, 80)
    assert np.abs(warped_nii - warped_png).max() <= 0.5 + 1e-4  # the PNG is the same values rounded to integers
    assert not np.allclose(warped_nii, np.asarray(Image.open(d / "moving.png")), atol=1)  # it did move


def test_physical_ddf_equals_the_index_to_point_formula():
    """The ITK field written to ddf.nii.gz, built from 1-D rows and columns (since 0.5.8, for memory), equals
    ``point_m(i + u) - point_f(i)`` with ``point(i) = origin + direction @ (spacing * i)`` (float64 reference)
    for different origins, anisotropic spacings and a rotated, flipped direction; equal geometries cancel exactly."""
    from bundle.register import _physical_ddf

    g = np.random.default_rng(0)
    h, w = 19, 27
    ddf = (g.normal(size=(2, h, w)) * 4).astype(np.float32)  # rows, cols
    t = 0.4
    fixed = (np.array([-12.5, 30.0]), np.array([0.5, 0.7]), np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]))
    moving = (np.array([3.0, -8.0]), np.array([0.8, 0.6]), np.array([[1.0, 0.0], [0.0, -1.0]]))
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    idx_f = np.stack([cc, rr], -1)
    idx_m = idx_f + np.stack([ddf[1], ddf[0]], -1).astype(np.float64)
    point = lambda geom, i: geom[0] + (i * geom[1]) @ geom[2].T  # noqa: E731
    ref = point(moving, idx_m) - point(fixed, idx_f)
    got = _physical_ddf(ddf, fixed, moving)
    assert got.shape == (h, w, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
    same = _physical_ddf(ddf, fixed, fixed)  # the index terms cancel: the field is direction @ (spacing * u)
    np.testing.assert_allclose(same, (np.stack([ddf[1], ddf[0]], -1) * fixed[1]) @ fixed[2].T, rtol=0, atol=1e-5)


def test_geometry_of_a_nifti_stored_as_x_y_1_and_of_a_singular_in_plane_direction(tmp_path):
    """A NIfTI of shape (x, y, 1) keeps its in-plane spacing and origin (before 0.5.5: a unit grid); a direction
    whose in-plane part is singular (rows along z, as a coronal DICOM's) falls back to the identity instead of
    making ITK refuse the outputs."""
    itk = pytest.importorskip("itk")
    from bundle.register import _itk_geometry

    im = itk.image_from_array(np.zeros((1, 30, 20), np.float32))  # (z, y, x) array: x 20, y 30, z 1
    im.SetSpacing([0.5, 0.7, 2.0])
    im.SetOrigin([1.0, 2.0, 3.0])
    itk.imwrite(im, str(tmp_path / "xy1.nii.gz"))
    o, sp, dr = _itk_geometry(tmp_path / "xy1.nii.gz", (30, 20))
    assert np.allclose(sp, [0.5, 0.7]) and np.allclose(o, [1.0, 2.0]) and np.allclose(np.abs(dr), np.eye(2))
    im.SetDirection(itk.matrix_from_array(np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])))
    itk.imwrite(im, str(tmp_path / "coronal.nii.gz"))
    o, sp, dr = _itk_geometry(tmp_path / "coronal.nii.gz", (30, 20))
    assert np.allclose(dr, np.eye(2)) and np.allclose(sp, [0.5, 0.7])


def test_distances_in_mm_use_the_fixed_images_row_and_column_spacing():
    """A square shifted by 3 rows: HD 3 px; with (row, col) spacing (0.5, 2.0) mm that is 1.5 mm, and a shift by 3
    columns is 6 mm; unit spacing (PNG) adds no mm keys."""
    from bundle.register import metrics_of

    def res(dr, dc):
        f = np.zeros((40, 40), np.uint8)
        f[10:30, 10:30] = 1
        w = np.roll(np.roll(f, dr, 0), dc, 1)
        return {"ddf": np.zeros((2, 40, 40), np.float32), "jacobian": np.ones((40, 40), np.float32),
                "warped_mask": w, "fixed_mask": f, "masks_given": True}

    rows, cols = metrics_of(res(3, 0), (0.5, 2.0)), metrics_of(res(0, 3), (0.5, 2.0))
    assert rows["hd"] == pytest.approx(3) and rows["hd_mm"] == pytest.approx(1.5) and rows["spacing_mm"] == [0.5, 2.0]
    assert cols["hd"] == pytest.approx(3) and cols["hd_mm"] == pytest.approx(6.0)
    assert 0 < rows["assd_mm"] < rows["assd"]
    assert "hd_mm" not in metrics_of(res(3, 0), (1.0, 1.0)) and "hd_mm" not in metrics_of(res(3, 0), None)


@needs_shared
def test_fix_folds_flag_on_a_real_pair_that_folds(tmp_path):
    # SHEN CHNCXR_0448_1 -> CHNCXR_0546_1 is the test pair where the universal model's raw field folds most (430
    # pixels, docs/results/registration/SHEN_universal_df1_raw); the shipped setting repairs them all, --fix-folds
    # off shows them
    img = SHARED_DATA / "SHEN" / "images"
    args = [str(img / "CHNCXR_0448_1.png"), str(img / "CHNCXR_0546_1.png"), "--quiet"]
    assert main(["register", *args, "--out", str(tmp_path / "off"), "--fix-folds", "off"]) == 0
    assert main(["register", *args, "--out", str(tmp_path / "default")]) == 0
    off = json.loads((tmp_path / "off" / "metrics.json").read_text())
    on = json.loads((tmp_path / "default" / "metrics.json").read_text())
    assert "folds_removed" not in off and off["jac"] > 100  # not run: the key is absent, not 0
    assert off["options"]["fix_folds"] is False and on["options"]["fix_folds"] is True
    assert on["options"]["model"] == "universal" and on["options"]["seg_model"] == "universal"
    assert on["jac"] == 0 and on["folds_removed"] == off["jac"]
    with pytest.raises(SystemExit):
        main(["register", *args, "--out", str(tmp_path / "x"), "--fix-folds", "maybe"])


class _Bump(torch.nn.Module):
    """A fixed work-size displacement that folds ~40 pixels at 256 x 256 (no weights)."""

    def forward(self, x):
        from bundle.spatial import identity_grid

        n = x.shape[-1]
        g = identity_grid((n, n)).reshape(2, n, n) - n // 2
        u = torch.zeros(x.shape[0], 2, n, n)
        u[:, 0] = 3.0 * torch.exp(-(g ** 2).sum(0) / 2.0)
        return u


@pytest.mark.parametrize("shape", [(256, 256), (300, 200)])
def test_registrar_removes_folds_on_the_fixed_image_grid_and_the_override_wins(shape):
    from bundle.networks import LungSegNet
    from bundle.register import Registrar, bundle_inference, fix_folds_arg
    from bundle.registration import RegSettings
    from bundle.spatial import jacobian_determinant

    settings = RegSettings(work_size=64, attention=False, affine=False, integrate=False, fix_folds=True)
    rng = np.random.default_rng(0)
    fixed, moving = rng.random(shape).astype(np.float32), rng.random(shape).astype(np.float32)
    mask = np.ones(shape, np.uint8)
    raw = Registrar.from_networks(_Bump(), settings, LungSegNet(), fix_folds=False)(fixed, moving, mask, mask)
    fixed_res = Registrar.from_networks(_Bump(), settings, LungSegNet())(fixed, moving, mask, mask)
    n_raw = int((jacobian_determinant(torch.from_numpy(raw["ddf"])[None]) <= 0).sum())
    assert n_raw > 20 and int((raw["jacobian"] <= 0).sum()) == n_raw and "folds_removed" not in raw
    assert int((fixed_res["jacobian"] <= 0).sum()) == 0 and fixed_res["folds_removed"] > 20
    assert raw["ddf"].shape == fixed_res["ddf"].shape == (2, *shape)
    # strings as MONAI's Fire parser hands them over
    assert fix_folds_arg("false") is False and fix_folds_arg("True") is True and fix_folds_arg(None) is None
    assert fix_folds_arg("null") is None
    from bundle.io import InputError

    with pytest.raises(InputError, match="--fix_folds"):
        fix_folds_arg("maybe")
    with pytest.raises(InputError):
        bundle_inference(moving="m.png", fixed="f.png", fix_folds="sometimes")


def test_reg_settings_read_bool_strings_and_refuse_others():
    from bundle.registration import RegSettings

    s = RegSettings(integrate="false", affine="True", fix_folds="on", attention=1)
    assert (s.integrate, s.affine, s.fix_folds, s.attention) == (False, True, True, True)
    with pytest.raises(ValueError, match="fix_folds"):
        RegSettings(fix_folds="maybe")


@pytest.mark.parametrize("cmd,term", [("register", "mask"), ("register", "distance"), ("evaluate", "mask"),
                                      ("evaluate", "distance"), ("export", "mask"), ("benchmark", "mask")])
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "x"])
def test_refine_weights_are_refused_by_the_parser(tmp_path, capsys, cmd, value, term):
    """A negative, NaN, infinite or non-numeric refinement weight is a usage error (exit 2, one line naming the
    flag) before any model or data is touched (export and benchmark take only the mask weight)."""
    args = {"register": ["register", "m.png", "f.png"], "evaluate": ["evaluate", "--method", "ours"],
            "export": ["export", "--bundle", "registration", "--dataset", "JSRT"], "benchmark": ["benchmark"]}[cmd]
    with pytest.raises(SystemExit) as e:
        main([*args, "--out", str(tmp_path / "o"), f"--refine-{term}-weight", value])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"cxreg {cmd}: error: argument --refine-{term}-weight: expected a")
    assert ">= 0" in err[0] and value in err[0]
    assert not (tmp_path / "o").exists()
