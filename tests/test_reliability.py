"""Reliability and security (issue 8): bad inputs, safe loading, no network, crash-safe and seeded training.

Every case of docs/reliability.md is a test here. Registration runs use small untrained model files (the
behaviour under test is input handling, not accuracy); training runs use the segmentation bundle on a
6-image synthetic set, as tests/test_bundles.py does.
"""

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from bundle.cli import main
from bundle.io import MAX_SIDE, MIN_SIDE, InputError, save_image

from .conftest import REPO, lung_mask, make_dataset

ENV = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")


# ----------------------------------------------------------------------------------------------- inputs
class Evil:
    """Unpickling this runs ``open(marker, 'w')``: the classic malicious-checkpoint payload."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """One folder with a good pair and every kind of bad or unusual input of the issue."""
    d = tmp_path_factory.mktemp("inputs")
    f, m = lung_mask(96), lung_mask(96, shift=(3, -4))
    fi, mi = (200 - 120 * f).astype(np.uint8), (200 - 120 * m).astype(np.uint8)
    Image.fromarray(fi).save(d / "fixed.png")
    Image.fromarray(mi).save(d / "moving.png")
    Image.fromarray(f * 255).save(d / "fixed_mask.png")
    Image.fromarray(m * 255).save(d / "moving_mask.png")
    Image.fromarray((m * 150 + 40).astype(np.uint8)).save(d / "grey_mask.png")  # not binary: 40 / 190
    Image.fromarray(lung_mask(50) * 255).save(d / "small_mask.png")
    (d / "empty.png").write_bytes(b"")
    (d / "text.png").write_text("this is text, not an image\n")
    raw = (d / "moving.png").read_bytes()
    (d / "truncated.png").write_bytes(raw[: len(raw) // 2])
    save_image(d / "moving.nii.gz", mi.astype(np.float32))
    raw = (d / "moving.nii.gz").read_bytes()
    (d / "corrupt.nii.gz").write_bytes(raw[: len(raw) // 2])
    (d / "garbage.nii.gz").write_bytes(gzip.compress(b"not a nifti header" * 20))
    Image.fromarray(np.stack([mi] * 3, -1)).save(d / "rgb.png")
    Image.fromarray(np.stack([mi] * 3 + [np.full_like(mi, 255)], -1)).save(d / "rgba.png")
    Image.fromarray(mi.astype(np.uint16) * 257).save(d / "u16.png")
    save_image(d / "float.nii.gz", mi.astype(np.float32) / 255)
    for name, val in (("nan", np.nan), ("inf", np.inf)):
        a = mi.astype(np.float32)
        a[10, 10] = val
        save_image(d / f"{name}.nii.gz", a)
    Image.fromarray(np.zeros((96, 96), np.uint8)).save(d / "black.png")
    nib.save(nib.Nifti1Image(np.stack([mi.T] * 3, -1).astype(np.float32), np.eye(4)), str(d / "volume.nii.gz"))
    Image.fromarray(np.full((1, 1), 100, np.uint8)).save(d / "one.png")
    Image.fromarray(np.zeros((8000, 8000), np.uint8)).save(d / "huge.png")  # 64 Mpixel, compresses to ~60 kB
    Image.fromarray(np.asarray(Image.fromarray(fi).resize((60, 90)))).save(d / "fixed_60x90.png")
    Image.fromarray(np.asarray(Image.fromarray(mi).resize((256, 256)))).save(d / "moving_256.png")
    torch.save({"model": Evil(d / "PWNED"), "settings": {}}, d / "evil.pt")
    (d / "notackpt.pt").write_text("just some text")
    (d / "afile").write_text("x")
    return d


def _register(capsys, models, *args):
    rc = main(["register", *args, "--model", str(models / "reg.pt"), "--seg-model", str(models / "seg.pt"),
               "--quiet", "--device", "cpu"])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# (case id, moving, fixed, extra args, message expected in the one-line error)
REFUSED = [
    ("missing", "nope.png", "fixed.png", [], "nope.png: file not found"),
    ("empty", "empty.png", "fixed.png", [], "empty.png: file is empty"),
    ("text_as_png", "text.png", "fixed.png", [], "text.png: not a PNG file"),
    ("truncated_png", "truncated.png", "fixed.png", [], "truncated.png: cannot be read as an image, the file is corrupt or truncated"),
    ("corrupt_nifti", "corrupt.nii.gz", "fixed.png", [], "corrupt.nii.gz: cannot be read as an image, the file is corrupt or truncated"),
    ("garbage_nifti", "garbage.nii.gz", "fixed.png", [], "garbage.nii.gz: cannot be read as an image"),
    ("nan_nifti", "nan.nii.gz", "fixed.png", [], "nan.nii.gz: image has 1 NaN or infinite pixel value(s)"),
    ("inf_nifti", "inf.nii.gz", "fixed.png", [], "inf.nii.gz: image has 1 NaN or infinite pixel value(s)"),
    ("all_black", "black.png", "fixed.png", [], "black.png: image is constant (every pixel is 0)"),
    ("volume_nifti", "volume.nii.gz", "fixed.png", [], "volume.nii.gz: expected a 2D image (or 3D with one singleton axis), got shape (96, 96, 3)"),
    ("1x1", "one.png", "fixed.png", [], f"one.png: image is 1x1 pixels; the smallest accepted is {MIN_SIDE}x{MIN_SIDE}"),
    ("8000x8000", "huge.png", "fixed.png", [], f"huge.png: image is 8000x8000 pixels; the largest accepted is {MAX_SIDE}x{MAX_SIDE}"),
    ("mask_size", "moving.png", "fixed.png", ["--moving-mask", "small_mask.png", "--fixed-mask", "fixed_mask.png"],
     "small_mask.png: mask size (50, 50) differs from its image (96, 96)"),
    ("empty_mask", "moving.png", "fixed.png", ["--moving-mask", "black.png", "--fixed-mask", "fixed_mask.png"],
     "black.png: mask is empty (every pixel is 0); a lung mask needs lung pixels"),
    ("model_not_checkpoint", "moving.png", "fixed.png", ["--model", "notackpt.pt"], "notackpt.pt: not a PyTorch checkpoint"),
    ("model_missing", "moving.png", "fixed.png", ["--model", "nope.pt"], "nope.pt: weights file not found"),
]


@pytest.mark.parametrize("case,moving,fixed,extra,msg", REFUSED, ids=[c[0] for c in REFUSED])
def test_register_refuses_bad_input_in_one_line(capsys, tmp_path, models, bad, case, moving, fixed, extra, msg):
    out = tmp_path / "out"
    extra = [str(bad / e) if e.endswith((".png", ".pt")) else e for e in extra]
    args = [str(bad / moving), str(bad / fixed), "--out", str(out), *extra]
    if "--model" in extra:  # the model file under test replaces the fixture's
        rc = main(["register", *args, "--seg-model", str(models / "seg.pt"), "--quiet", "--device", "cpu"])
        err = capsys.readouterr().err
    else:
        rc, _, err = _register(capsys, models, *args)
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cxreg register: error: ") and msg in lines[0], err
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))  # nothing half-written


def test_a_failed_write_keeps_the_old_output_folder(capsys, tmp_path, models, bad, monkeypatch):
    """A disk that fills up while the outputs are written: one line, exit 1, the previous results (replaced with
    --overwrite) untouched and no temporary folder left."""
    out = tmp_path / "out"
    args = [str(bad / "moving.png"), str(bad / "fixed.png"), "--out", str(out)]
    assert _register(capsys, models, *args)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("bundle.register.save_image", full)
    rc, _, err = _register(capsys, models, *args, "--overwrite")
    assert rc == 1 and err.strip() == f"cxreg register: error: {out}: cannot be written (No space left on device)"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("cmd", ["register", "evaluate"])
@pytest.mark.parametrize("device,msg", [
    ("cuda", "--device cuda: no CUDA GPU is available on this machine"),
    ("gpu", "--device gpu: not a device (use cpu or cuda)"),
    ("meta", "--device meta: not available on this machine (use cpu or cuda)"),
])
def test_an_unusable_device_is_named_before_anything_loads(capsys, tmp_path, models, bad, cmd, device, msg):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "out"
    args = ([str(bad / "moving.png"), str(bad / "fixed.png")] if cmd == "register" else ["--dataset", "JSRT"])
    assert main([cmd, *args, "--out", str(out), "--device", device]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cxreg {cmd}: error: {msg}") and len(err.splitlines()) == 1, err
    assert not out.exists()
    from bundle.register import Registrar  # the Python API and the bundle's inference check it too

    with pytest.raises(InputError, match="--device gpu: not a device"):
        Registrar(models / "reg.pt", seg_model=models / "seg.pt", device="gpu")


def test_debug_shows_the_traceback(bad, models, tmp_path):
    with pytest.raises(Exception, match="file is empty"):
        main(["--debug", "register", str(bad / "empty.png"), str(bad / "fixed.png"), "--out", str(tmp_path / "o"),
              "--model", str(models / "reg.pt"), "--seg-model", str(models / "seg.pt"), "--quiet"])


def test_register_cli_exits_nonzero_in_a_subprocess(bad, tmp_path):
    r = subprocess.run([sys.executable, "-m", "bundle.cli", "register", str(bad / "text.png"), str(bad / "fixed.png"),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"cxreg register: error: {bad / 'text.png'}: not a PNG file "
                                                 "(it does not start with the PNG signature)")


def _ddf(out):
    import itk

    return itk.array_from_image(itk.imread(str(out / "ddf.nii.gz")))


def test_colour_16bit_float_and_other_sizes_work(capsys, tmp_path, models, bad):
    grey = tmp_path / "grey"
    assert _register(capsys, models, str(bad / "moving.png"), str(bad / "fixed.png"), "--out", str(grey))[0] == 0
    ref = np.asarray(Image.open(grey / "warped.png")).astype(np.float32)
    for name in ("rgb.png", "rgba.png", "float.nii.gz"):  # the same grey values (in [0, 1] for the float NIfTI)
        out = tmp_path / name.split(".")[0]
        assert _register(capsys, models, str(bad / name), str(bad / "fixed.png"), "--out", str(out))[0] == 0
        if name.endswith(".png"):
            np.testing.assert_allclose(_ddf(out), _ddf(grey), atol=1e-3, err_msg=name)
            warped = np.asarray(Image.open(out / "warped.png")).astype(np.float32)
        else:  # a NIfTI moving image: warped.nii.gz keeps its float values
            from bundle.io import load_image

            warped = load_image(out / "warped.nii.gz") * 255
        assert np.abs(warped - ref).max() <= 1.0, name
    out = tmp_path / "u16"
    assert _register(capsys, models, str(bad / "u16.png"), str(bad / "fixed.png"), "--out", str(out))[0] == 0
    w = np.asarray(Image.open(out / "warped.png"))
    assert w.dtype == np.uint16 and w.max() > 255  # 16-bit in, 16-bit warped out
    # moving 256x256 onto a 60x90 (W x H) fixed image: outputs on the fixed grid
    out = tmp_path / "sizes"
    assert _register(capsys, models, str(bad / "moving_256.png"), str(bad / "fixed_60x90.png"), "--out", str(out))[0] == 0
    assert np.asarray(Image.open(out / "warped.png")).shape == (90, 60) and _ddf(out).shape == (90, 60, 2)


def test_non_binary_mask_is_thresholded_at_half_its_maximum(capsys, tmp_path, models, bad):
    res = {}
    for mask in ("moving_mask.png", "grey_mask.png"):
        out = tmp_path / mask.split(".")[0]
        rc, _, _ = _register(capsys, models, str(bad / "moving.png"), str(bad / "fixed.png"), "--out", str(out),
                             "--moving-mask", str(bad / mask), "--fixed-mask", str(bad / "fixed_mask.png"))
        assert rc == 0
        res[mask] = json.loads((out / "metrics.json").read_text())
    assert res["grey_mask.png"]["dsc"] == res["moving_mask.png"]["dsc"]


def test_existing_or_unwritable_output_folder(capsys, tmp_path, models, bad):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc, _, err = _register(capsys, models, str(bad / "moving.png"), str(bad / "fixed.png"), "--out", str(out))
    assert rc == 1 and f"{out}: output folder exists (use --overwrite to replace it)" in err
    assert (out / "keep.txt").read_text() == "mine"
    rc, _, _ = _register(capsys, models, str(bad / "moving.png"), str(bad / "fixed.png"), "--out", str(out),
                         "--overwrite")
    assert rc == 0 and (out / "ddf.nii.gz").is_file() and not (out / "keep.txt").exists()
    # a folder that cannot be created: its parent is a file (root ignores chmod, a file as parent always fails)
    bad_out = bad / "afile" / "out"
    rc, _, err = _register(capsys, models, str(bad / "moving.png"), str(bad / "fixed.png"), "--out", str(bad_out))
    assert rc == 1 and f"{bad_out}: output folder cannot be written ({bad / 'afile'} is not a folder)" in err.strip().splitlines()[-1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_parent(capsys, tmp_path, models, bad):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    rc, _, err = _register(capsys, models, str(bad / "moving.png"), str(bad / "fixed.png"), "--out", str(ro / "o"))
    ro.chmod(0o755)
    assert rc == 1 and "output folder cannot be written" in err


def test_evil_checkpoint_is_refused_and_its_code_never_runs(capsys, tmp_path, models, bad):
    rc = main(["register", str(bad / "moving.png"), str(bad / "fixed.png"), "--out", str(tmp_path / "o"),
               "--model", str(bad / "evil.pt"), "--seg-model", str(models / "seg.pt"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and f"{bad / 'evil.pt'}: refused: the checkpoint holds Python objects other than tensors" in err[0]
    assert not (bad / "PWNED").exists()
    # the same file as a segmentation model, and through the Python API
    from bundle.io import InputError
    from bundle.priors import load_segmentation

    with pytest.raises(InputError, match="evil.pt"):
        load_segmentation(bad / "evil.pt")
    assert not (bad / "PWNED").exists()
    # the control: a plain (unsafe) torch.load of that file does run the payload
    torch.load(bad / "evil.pt", weights_only=False)
    assert (bad / "PWNED").exists()
    (bad / "PWNED").unlink()


def test_batch_csv_blank_duplicate_unicode_and_a_bad_pair(capsys, tmp_path, models, bad):
    sub = bad / "scans ä é"
    sub.mkdir(exist_ok=True)
    shutil.copy(bad / "moving.png", sub / "mövïng 1.png")
    csv = bad / "pairs.csv"
    csv.write_text("moving,fixed\n\n\"scans ä é/mövïng 1.png\",fixed.png\n\ntext.png,fixed.png\n"
                   "\"scans ä é/mövïng 1.png\",fixed.png\n,\nrgb.png , fixed.png\n", encoding="utf-8")
    out = tmp_path / "batch"
    rc, stdout, err = _register(capsys, models, "--pairs", str(csv), "--out", str(out))
    assert rc == 1  # one pair failed
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [(s["pair"], s["ok"]) for s in summary] == [("mövïng 1__fixed", True), ("text__fixed", False),
                                                        ("rgb__fixed", True)]
    assert "text.png: not a PNG file" in summary[1]["error"] and "text.png: not a PNG file" in err
    assert "2 of 3 pairs registered" in stdout and "failed: text__fixed" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["mövïng 1__fixed", "rgb__fixed", "summary.json"]
    assert (out / "mövïng 1__fixed" / "ddf.nii.gz").is_file()
    # the same folder again: refused as a whole (nothing changes) unless --overwrite
    rc, _, err = _register(capsys, models, "--pairs", str(csv), "--out", str(out))
    assert rc == 1 and "output folder exists" in err


def test_same_file_names_in_different_folders_get_their_own_output_folders(capsys, tmp_path, models, bad):
    """Two moving images called x.png (two patients' exports) onto one fixed image: the second pair's folder is
    x__fixed__2 (not a refusal, and with --overwrite not a silent replacement of the first), the same in every
    shard, and summary.json says which input each folder holds; the header may be in any case."""
    for sub in ("p1", "p2"):
        (bad / sub).mkdir(exist_ok=True)
    shutil.copy(bad / "moving.png", bad / "p1" / "x.png")
    shutil.copy(bad / "rgb.png", bad / "p2" / "x.png")
    csv = bad / "same_names.csv"
    csv.write_text("Moving,Fixed\np1/x.png,fixed.png\np2/x.png,fixed.png\n")
    out = tmp_path / "batch"
    rc, stdout, _ = _register(capsys, models, "--pairs", str(csv), "--out", str(out))
    assert rc == 0 and "2 of 2 pairs registered" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["pair"], s["moving"]) for s in summary] == [("x__fixed", str(bad / "p1" / "x.png")),
                                                           ("x__fixed__2", str(bad / "p2" / "x.png"))]
    a, b = (json.loads((out / n / "metrics.json").read_text())["moving"] for n in ("x__fixed", "x__fixed__2"))
    assert (a, b) == (str(bad / "p1" / "x.png"), str(bad / "p2" / "x.png"))
    shards = tmp_path / "shards"
    for i in (0, 1):
        assert _register(capsys, models, "--pairs", str(csv), "--out", str(shards), "--shard", f"{i}/2")[0] == 0
    assert sorted(p.name for p in shards.iterdir() if p.is_dir()) == ["x__fixed", "x__fixed__2"]


@pytest.mark.parametrize("text,msg", [
    ("moving,target\na.png,b.png\n", "needs the columns moving,fixed (found ['moving', 'target'])"),
    ("", "needs the columns moving,fixed (found [])"),
    ("moving,fixed\n\n,\n", "no pairs in this file"),
    ("moving,fixed\nmoving.png,fixed.png\nmoving.png,\n", "line 3: a row lacks its moving or fixed path"),
    (b"moving,fixed\n\xff\xfe.png,b.png\n", "not a UTF-8 CSV file ('utf-8' codec can't decode byte 0xff in "
                                           "position 13: invalid start byte)"),
])
def test_pairs_csv_structure_errors(capsys, tmp_path, models, text, msg):
    csv = tmp_path / "p.csv"
    csv.write_bytes(text if isinstance(text, bytes) else text.encode())
    rc, _, err = _register(capsys, models, "--pairs", str(csv), "--out", str(tmp_path / "o"))
    assert rc == 1 and err.strip() == f"cxreg register: error: {csv}: {msg}"
    assert not (tmp_path / "o").exists()


def test_shard_of_a_single_pair_is_refused(capsys, tmp_path, models, bad):
    """``--shard`` splits a pairs CSV; with MOVING FIXED it was ignored without a word before 0.5.10."""
    rc, _, err = _register(capsys, models, str(bad / "moving.png"), str(bad / "fixed.png"), "--out",
                           str(tmp_path / "o"), "--shard", "0/2")
    assert rc == 1 and err.strip() == ("cxreg register: error: --shard 0/2: splits the pairs of a --pairs CSV; one "
                                       "pair (MOVING FIXED) has nothing to split")
    assert not (tmp_path / "o").exists()


def test_monai_bundle_inference_fails_in_one_last_line(bad, tmp_path):
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file",
                        str(REPO / "configs" / "inference.json"), "--moving", str(bad / "truncated.png"), "--fixed",
                        str(bad / "fixed.png"), "--output_dir", str(out)],
                       capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith(
        f"cxreg inference: error: {bad / 'truncated.png'}: cannot be read as an image, the file is corrupt or truncated")
    assert not out.exists()


def test_monai_bundle_unknown_option_stops_with_one_line_and_a_hint(bad, tmp_path):
    """MONAI adds an option no config key defines as a new, unused key; ``--refine 20`` (cxreg register's
    spelling of the bundle's ``--refine_steps``) ran without refinement and exit 0 before 0.5.10."""
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file",
                        str(REPO / "configs" / "inference.json"), "--moving", str(bad / "moving.png"), "--fixed",
                        str(bad / "fixed.png"), "--output_dir", str(out), "--refine", "20"],
                       capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (
        f"cxreg inference: error: --refine: not an option of {REPO / 'configs' / 'inference.json'} "
        "(did you mean --refine_steps?)")
    assert not out.exists()


def test_bundle_inference_takes_the_refinement_weights_and_checks_them(bad, tmp_path, models):
    """``configs/inference.json``'s ``--refine_mask_weight`` / ``--refine_distance_weight`` reach the registrar
    and the pair's ``metrics.json`` (before 0.5.10 the config had neither: 40 and 0 whatever was asked)."""
    from bundle.refine import DEFAULT_MASK_WEIGHT
    from bundle.register import inference_evaluator, run_inference

    kw = dict(moving=str(bad / "moving.png"), fixed=str(bad / "fixed.png"), model=str(models / "reg.pt"),
              seg_model=str(models / "seg.pt"), refine_steps=1)
    ev = inference_evaluator(output_dir=str(tmp_path / "o"), refine_mask_weight="80", refine_distance_weight=0.5, **kw)
    assert (ev.cxreg.job.reg.refine_mask_weight, ev.cxreg.job.reg.refine_distance_weight) == (80.0, 0.5)
    run_inference(ev)
    opts = json.loads((tmp_path / "o" / "metrics.json").read_text())["options"]
    assert (opts["refine"], opts["refine_mask_weight"], opts["refine_distance_weight"]) == (1, 80.0, 0.5)
    ev = inference_evaluator(output_dir=str(tmp_path / "d"), **kw)  # None: cxreg register's defaults
    assert (ev.cxreg.job.reg.refine_mask_weight, ev.cxreg.job.reg.refine_distance_weight) == (DEFAULT_MASK_WEIGHT, 0)
    for name, val in (("refine_mask_weight", "nan"), ("refine_mask_weight", -1), ("refine_distance_weight", "x"),
                      ("refine_distance_weight", True)):
        with pytest.raises(InputError, match=f"^--{name} must be a finite number >= 0, not {val}$"):
            inference_evaluator(output_dir=str(tmp_path / "bad"), **{name: val}, **kw)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("kind", ["segmentation", "autoencoder"])
def test_prior_bundle_inference_bad_inputs_stop_with_one_line(bad, tmp_path, kind):
    """The segmentation and autoencoder bundles check ``--input_dir``, every image in it and the weights file
    before the first mask is written (before 0.5.10: MONAI's 60-line ``Failed to evaluate`` tracebacks)."""
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(bad / "fixed_mask.png", inp / "a.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    from monai.bundle import ConfigParser

    # the config's datalist, parsed as `monai.bundle run` parses it (in-process: the same expression, no subprocess)
    for over, msg in (({}, "give --input_dir FOLDER (a folder of .png, .nii, .nii.gz or .dcm images)"),
                      ({"input_dir": str(empty)}, f"{empty}: no .png, .nii, .nii.gz or .dcm images in this folder"),
                      ({"input_dir": str(tmp_path / "none")}, f"{tmp_path / 'none'}: input folder not found")):
        parser = ConfigParser()
        parser.read_config(str(REPO / "configs" / kind / "inference.json"))
        parser.update({"output_dir": str(tmp_path / "out"), **over})
        with pytest.raises(SystemExit) as e:
            parser.get_parsed_content("datalist")
        assert str(e.value) == f"cxreg inference: error: {msg}"
    # the whole command: --model_path, and one bad image among good ones (copied in by the loop): nothing written
    cases = [(["--input_dir", str(inp), "--model_path", str(bad / "notackpt.pt")],
              f"{bad / 'notackpt.pt'}: not a PyTorch checkpoint"),
             (["--input_dir", str(inp)], f"{inp / 'b.png'}: cannot be read as an image")]
    for args, msg in cases:
        if msg.startswith(str(inp / "b.png")):
            shutil.copy(bad / "truncated.png", inp / "b.png")
        out = tmp_path / "out"
        r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file",
                            str(REPO / "configs" / kind / "inference.json"), "--output_dir", str(out), *args],
                           capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=300)
        assert r.returncode == 1 and "Traceback" not in r.stderr, (args, r.stderr[-2000:])
        assert r.stderr.strip().splitlines()[-1].startswith(f"cxreg inference: error: {msg}"), (args, r.stderr[-500:])
        assert not out.exists()


def test_bundle_inference_python_api_raises(bad, tmp_path, models):
    from bundle.io import InputError
    from bundle.register import bundle_inference

    with pytest.raises(InputError, match="empty.png: file is empty"):
        bundle_inference(str(bad / "empty.png"), str(bad / "fixed.png"), output_dir=str(tmp_path / "o"),
                         model=str(models / "reg.pt"), seg_model=str(models / "seg.pt"))
    with pytest.raises(SystemExit, match="cxreg inference: error: .*empty.png: file is empty"):
        bundle_inference(str(bad / "empty.png"), str(bad / "fixed.png"), output_dir=str(tmp_path / "o"),
                         model=str(models / "reg.pt"), seg_model=str(models / "seg.pt"), exit_on_error=True)


def test_nothing_connects_to_the_network(capsys, tmp_path, models, bad, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError(f"network access attempted: {a}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    rc, _, err = _register(capsys, models, str(bad / "moving.png"), str(bad / "fixed.png"), "--out", str(tmp_path / "o"))
    assert rc == 0, err


# ------------------------------------------------------------------------------------------- evaluate
def test_evaluate_broken_data_folder_model_and_existing_output(capsys, tmp_path, bad):
    data = tmp_path / "data"
    make_dataset(data, "TOY", n=4, size=64)
    out = tmp_path / "ev"
    assert main(["evaluate", "--dataset", "TOY", "--data-dir", str(data), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    # an existing result folder is refused without --overwrite, and replaced with it
    before = (out / "summary.json").read_text()
    assert main(["evaluate", "--dataset", "TOY", "--data-dir", str(data), "--out", str(out), "--quiet"]) == 1
    assert f"{out}: output folder exists (use --overwrite" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == before
    assert main(["evaluate", "--dataset", "TOY", "--data-dir", str(data), "--out", str(out), "--quiet",
                 "--overwrite"]) == 0
    capsys.readouterr()
    # a model that is not a checkpoint
    rc = main(["evaluate", "--method", "ours", "--model", str(bad / "notackpt.pt"), "--dataset", "TOY", "--data-dir",
               str(data), "--out", str(tmp_path / "m"), "--quiet"])
    assert rc == 1 and f"{bad / 'notackpt.pt'}: not a PyTorch checkpoint" in capsys.readouterr().err
    # a data folder with a text file in place of an image, and one without splits.json (a new folder: loaded
    # splits are cached per folder)
    data = tmp_path / "data2"
    make_dataset(data, "TOY", n=4, size=64)
    (data / "TOY" / "images" / "img002.png").write_text("oops")
    rc = main(["evaluate", "--dataset", "TOY", "--data-dir", str(data), "--out", str(tmp_path / "b"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err == [f"cxreg evaluate: error: {data / 'TOY' / 'images' / 'img002.png'}: not a PNG file "
                               "(it does not start with the PNG signature)"]
    (data / "splits.json").unlink()
    assert main(["evaluate", "--dataset", "TOY", "--data-dir", str(data), "--out", str(tmp_path / "b")]) == 1
    assert f"{data}: no images/ folder and no splits.json" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("train") / "data"
    make_dataset(d, "TOY", n=6, size=64)
    return d


def _train_cmd(toy, out, model, epochs, *extra):
    return [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file",
            str(REPO / "configs" / "segmentation" / "train.json"), "--dataset", "TOY", "--data_dir", str(toy),
            "--output_dir", str(out), "--model_path", str(model), "--max_epochs", str(epochs), "--val_interval", "1",
            "--work_size", "32", "--batch_size", "2", *extra]


def _train(cmd, cwd):
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=ENV, timeout=300)


@pytest.fixture(scope="module")
def seeded_run(toy, tmp_path_factory):
    """A 2-epoch seeded segmentation run (default DataLoader with 1 worker): its folder."""
    d = tmp_path_factory.mktemp("runA")
    r = _train(_train_cmd(toy, d / "run", d / "final.pt", 2), d)
    assert r.returncode == 0, r.stderr[-3000:]
    return d


def test_seeded_cpu_training_is_reproducible(toy, seeded_run, tmp_path):
    r = _train(_train_cmd(toy, tmp_path / "run", tmp_path / "final.pt", 2), tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    a = torch.load(seeded_run / "final.pt", weights_only=True)
    b = torch.load(tmp_path / "final.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_nan_loss_stops_with_the_iteration_and_keeps_the_last_good_checkpoint(seeded_run, toy, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(seeded_run / "run", run)
    ck = run / "checkpoint_epoch=2.pt"
    before = ck.read_bytes()
    it = torch.load(ck, weights_only=True)["trainer"]["iteration"]
    model = tmp_path / "final.pt"
    r = _train(_train_cmd(toy, run, model, 4, "--contour_weight", "$float('nan')"), tmp_path)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert last == (f"cxreg training: error: training stopped: the loss is nan at iteration {it + 1} (epoch 3); "
                    f"nothing was saved after it; last good checkpoint: {ck}")
    assert ck.read_bytes() == before and sorted(p.name for p in run.glob("checkpoint_*.pt")) == [ck.name]
    assert not model.exists()  # no export of the (NaN) weights
    sd = torch.load(ck, weights_only=True)["model"]
    assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())


def test_stop_on_non_finite_handler_with_dict_outputs(tmp_path):
    """The registration trainer returns a dict of loss terms: the handler reads its "loss"."""
    from ignite.engine import Engine

    from bundle.handlers import StopOnNonFinite

    losses = iter([1.0, 0.5, float("inf"), 0.1])
    eng = Engine(lambda e, b: {"loss": torch.tensor(next(losses)), "ncc": torch.tensor(0.0)})
    StopOnNonFinite(tmp_path).attach(eng)
    with pytest.raises(SystemExit, match=r"the loss is inf at iteration 3 \(epoch 2\).*last good checkpoint: none"):
        eng.run([0, 1], max_epochs=2)


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    """A crash while torch.save writes leaves the previous checkpoint and no partial file."""
    from ignite.engine import Engine

    from bundle.handlers import CheckpointSaver

    net = torch.nn.Linear(2, 2)
    eng = Engine(lambda e, b: None)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    CheckpointSaver(str(tmp_path), {"model": net, "optimizer": opt}, save_interval=1, n_saved=1).attach(eng)
    real_save = torch.save

    def crash_on_epoch_2(obj, f, *a, **k):
        if eng.state.epoch == 2:
            f.write(b"half a checkpoint")
            raise KeyboardInterrupt  # as if killed while writing
        real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", crash_on_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        eng.run([0], max_epochs=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_epoch=1.pt"]
    assert torch.equal(torch.load(tmp_path / "checkpoint_epoch=1.pt", weights_only=True)["model"]["weight"], net.weight)
    # without a crash, n_saved=1 still keeps exactly one (the newest) checkpoint, and no temporary files
    monkeypatch.setattr(torch, "save", real_save)
    eng2 = Engine(lambda e, b: None)
    CheckpointSaver(str(tmp_path / "ok"), {"model": net, "optimizer": opt}, save_interval=1, n_saved=1).attach(eng2)
    eng2.run([0], max_epochs=3)
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["checkpoint_epoch=3.pt"]


def test_best_model_score_survives_a_resume(tmp_path):
    """The key-metric saver (``model.pt``) of a resumed run starts from the score of the best model on disk:
    a worse validation after the resume keeps it, a better one replaces it; without ``resume_best`` (MONAI's
    behaviour, and a run that does not resume) the first validation replaces it whatever it scores."""
    from ignite.engine import Engine, Events

    from bundle.handlers import CheckpointSaver

    net = torch.nn.Linear(2, 2)

    def validate(metric, resume_best):
        ev = Engine(lambda e, b: None)

        @ev.on(Events.STARTED)
        def _set(e):
            e.state.metrics = {"dice": metric}

        CheckpointSaver(str(tmp_path), {"model": net}, save_key_metric=True, key_metric_name="dice",
                        key_metric_filename="model.pt", resume_best=resume_best).attach(ev)
        with torch.no_grad():
            net.weight.fill_(metric)  # the weights say which validation wrote model.pt
        ev.run([0], max_epochs=1)
        return float(torch.load(tmp_path / "model.pt", weights_only=True)["weight"][0, 0])  # one object: its state dict

    assert validate(0.9, resume_best=True) == pytest.approx(0.9)  # nothing on disk yet: saved
    assert json.loads((tmp_path / "model.pt.score.json").read_text())["score"] == pytest.approx(0.9)
    assert validate(0.8, resume_best=True) == pytest.approx(0.9)  # resumed, worse: kept
    assert validate(0.95, resume_best=True) == pytest.approx(0.95)  # resumed, better: replaced
    assert validate(0.5, resume_best=False) == pytest.approx(0.5)  # not resumed: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model.pt.score.json"]
    (tmp_path / "model.pt").unlink()  # the score without its model is not used
    assert validate(0.1, resume_best=True) == pytest.approx(0.1)


def test_sigkill_mid_training_then_resume_finishes(toy, tmp_path):
    """SIGKILL in the middle of epoch 3 (the process kills itself after its 5th iteration, 2 per epoch: no race
    with the clock), then the same command again: it resumes from the last whole checkpoint and finishes."""
    run, model, epochs = tmp_path / "run", tmp_path / "final.pt", 4
    cmd = _train_cmd(toy, run, model, epochs, "--num_workers", "0")
    cfg = json.loads((REPO / "configs" / "segmentation" / "train.json").read_text())
    kill = ("$@train#trainer.add_event_handler(monai.engines.workflow.Events.ITERATION_COMPLETED(once=5), "
            "lambda engine: os.kill(os.getpid(), 9))")
    (tmp_path / "kill.json").write_text(json.dumps({"run": [kill, *cfg["run"]]}))
    i = cmd.index("--config_file") + 1
    killing = [*cmd[:i], f"['{cmd[i]}','{tmp_path / 'kill.json'}']", *cmd[i + 1:]]
    r = _train(killing, tmp_path)
    assert r.returncode == -signal.SIGKILL, (r.stdout + r.stderr)[-3000:]  # killed, not finished
    assert "Epoch[2] Complete" in r.stdout + r.stderr and "Epoch[3] Complete" not in r.stdout + r.stderr
    assert sorted(q.name for q in run.glob("checkpoint_*.pt")) == ["checkpoint_epoch=2.pt"] and not model.exists()
    assert torch.load(run / "checkpoint_epoch=2.pt", weights_only=True)["trainer"]["iteration"] == 4  # whole
    r = _train(cmd, tmp_path)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert "Restored all variables" in log and "Epoch[3] Complete" in log and "Epoch[2] Complete" not in log
    ck = torch.load(run / f"checkpoint_epoch={epochs}.pt", weights_only=True)
    assert ck["trainer"]["iteration"] == epochs * 2 and ck["trainer"]["epoch_length"] == 2
    sd = torch.load(model, weights_only=True)
    assert sd and all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())


@pytest.mark.parametrize("cfg", ["configs/train.json", "configs/segmentation/train.json",
                                 "configs/autoencoder/train.json"])
def test_lowercase_false_flags_are_false_in_training_configs(cfg, tmp_path):
    """``--amp false --resume false`` on the command line reaches the config as the strings "false" (Fire parses
    only ``False``); they must act as False, not as truthy strings."""
    from monai.bundle import ConfigParser

    (tmp_path / "checkpoint_epoch=1.pt").write_bytes(b"")  # something resume would pick up
    p = ConfigParser()
    p.read_config(str(REPO / cfg))
    p.update({"amp": "false", "resume": "false", "debug": "false", "output_dir": str(tmp_path)})
    assert p.get_parsed_content("train#trainer#amp") is False
    assert p.get_parsed_content("validate#evaluator#amp") is False
    assert p.get_parsed_content("train#resume_handlers#0#load_path") is None
    p.update({"resume": "true"})
    assert p.get_parsed_content("train#resume_handlers#0#load_path").endswith("checkpoint_epoch=1.pt")
    p.update({"amp": "maybe"})
    with pytest.raises(RuntimeError) as e:
        p.get_parsed_content("train#trainer#amp")
    assert "--amp must be true or false" in str(e.value.__cause__ or e.value)


def test_lowercase_false_keeps_raw_segmentation_masks():
    from monai.bundle import ConfigParser

    p = ConfigParser()
    p.read_config(str(REPO / "configs" / "segmentation" / "inference.json"))
    steps = p["postprocessing"]["transforms"]
    cleaning = [i for i, t in enumerate(steps) if "_disabled_" in t]
    assert len(cleaning) == 2
    for value, disabled in (("false", True), ("False", True), (False, True), ("true", False), (True, False)):
        p.update({"keep_two_components": value})
        assert [p.get_parsed_content(f"postprocessing#transforms#{i}#_disabled_") for i in cleaning] == [disabled] * 2
    p.update({"amp": "off"})
    assert p.get_parsed_content("evaluator#amp") is False


def test_flag_helper():
    from bundle.workflow import flag

    assert [flag(v) for v in (True, "True", "true", "ON", "yes", 1, "1")] == [True] * 7
    assert [flag(v) for v in (False, "False", "false", "off", "No", 0, "0")] == [False] * 7
    with pytest.raises(ValueError, match="--augment must be true or false, not 'flase'"):
        flag("flase", "augment")
