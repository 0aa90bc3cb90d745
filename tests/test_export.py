# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""cxreg export: standalone MONAI bundles that are downloaded and run where cxreg is not installed."""

import functools
import http.server
import json
import os
import subprocess
import sys
import sysconfig
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bundle.export import (assd_torch, bundle_name, check_weights, clean_masks_torch, export_bundle, hausdorff_torch,
                           sha256)
from bundle.io import InputError, load_image

from .conftest import REPO, lung_mask

needs_weights = pytest.mark.skipif(
    not all((REPO / "models" / f"{k}_JSRT.pt").is_file() for k in ("registration", "segmentation", "autoencoder")),
    reason="no shipped JSRT weights")
# what an exported registration bundle must run without (besides cxreg itself)
BLOCKED = ("bundle", "cxreg", "tqdm", "skimage", "scipy", "ignite", "ants", "itk_elastix", "pandas", "matplotlib")


def _env():
    return dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")


def _chest(size=(96, 96), shift=(0, 0), scale=1.0, seed=0) -> np.ndarray:
    """A synthetic chest-like 8-bit image: two dark ellipses (lungs) on a bright body."""
    rng = np.random.default_rng(seed)
    m = lung_mask(max(size), shift, scale)[: size[0], : size[1]]
    return np.clip(200 - 120 * m + rng.normal(0, 4, m.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The JSRT registration bundle, exported (and verified) once for this module."""
    out = tmp_path_factory.mktemp("dist")
    log: list = []
    z = export_bundle("registration", "JSRT", out, log=log)
    return out, z, log[0]


@pytest.fixture(scope="module")
def unpacked(dist, tmp_path_factory):
    d = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(dist[1]) as z:
        z.extractall(d)
    return d / bundle_name("registration", "JSRT")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    Image.fromarray(_chest((96, 80), shift=(3, -2), scale=0.9, seed=1)).save(d / "moving.png")
    Image.fromarray(_chest((96, 96), seed=2)).save(d / "fixed.png")
    Image.fromarray(lung_mask(96, (3, -2), 0.9)[:, :80] * 255).save(d / "moving_mask.png")
    Image.fromarray(lung_mask(96) * 255).save(d / "fixed_mask.png")
    return d / "moving.png", d / "fixed.png"


@needs_weights
def test_layout_metadata_and_checks(dist, unpacked):
    _, z, log = dist
    version = json.loads((REPO / "configs" / "metadata.json").read_text())["version"]
    assert z.name == f"cxreg_registration_jsrt_v{version}.zip"
    names = zipfile.ZipFile(z).namelist()
    assert all(n.startswith("cxreg_registration_jsrt/") for n in names)  # one top-level folder (monai download)
    for f in ("LICENSE", "configs/metadata.json", "configs/inference.json", "configs/train.json",
              "configs/evaluate.json", "configs/logging.conf", "models/model.pt", "models/segmentation.pt",
              "models/model.ts", "docs/README.md", "scripts/__init__.py", "scripts/cxreg/register.py",
              "scripts/cxreg/networks/registration.py"):
        assert f"cxreg_registration_jsrt/{f}" in names, f
    assert not any("__pycache__" in n for n in names)
    models = sorted(n.split("/", 1)[1] for n in names if "/models/" in n)
    assert models == ["models/model.pt", "models/model.ts", "models/segmentation.pt"]  # no autoencoder
    # the checks ran on the bundle before it was zipped
    assert "metadata is verified" in log and "verified with no error" in log and "exported models/model.ts" in log

    meta = json.loads((unpacked / "configs" / "metadata.json").read_text())
    for k in ("version", "changelog", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
              "task", "description", "authors", "copyright", "data_source", "data_type", "image_classes",
              "label_classes", "pred_classes", "intended_use", "references", "network_data_format"):
        assert meta[k], k
    assert meta["version"] in meta["changelog"] and "Applied Intelligence" in meta["references"][0]
    assert set(meta["required_packages_version"]) == {"itk", "nibabel", "pillow", "fire"}
    # weights: plain state dicts whose SHA-256 is recorded; numbers read from docs/results at export time
    hashes = meta["cxreg_weights_sha256"]
    assert set(hashes) == {"models/model.pt", "models/segmentation.pt"}
    assert all(sha256(unpacked / k) == v for k, v in hashes.items())
    sd = torch.load(unpacked / "models" / "model.pt", weights_only=True)
    ref = torch.load(REPO / "models" / "registration_JSRT.pt", weights_only=True)["model"]
    assert sd.keys() == ref.keys() and all(torch.equal(sd[k], ref[k]) for k in sd)
    summary = json.loads((REPO / "docs/results/registration/JSRT_shipped_ff/summary.json").read_text())
    assert meta["eval_metrics"]["dsc_mean"] == round(summary["metrics"]["dsc"]["mean"], 4)
    assert meta["eval_metrics"]["test_pairs"] == summary["n_pairs"]
    readme = (unpacked / "docs" / "README.md").read_text()
    assert f"| dsc_mean | {meta['eval_metrics']['dsc_mean']} |" in readme and "--moving" in readme
    # configs point at the copy inside the bundle, never at the repository's package
    for f in ("inference.json", "train.json", "evaluate.json"):
        text = (unpacked / "configs" / f).read_text()
        assert "scripts.cxreg" in text and '"$import bundle' not in text and "bundle.data" not in text.replace(
            "cxreg.data", "")


@needs_weights
def test_torchscript_gives_the_eager_field(unpacked):
    from bundle.registration import load_registration

    eager, _ = load_registration("JSRT")
    ts = torch.jit.load(str(unpacked / "models" / "model.ts"))
    torch.manual_seed(0)
    for size in (64, 128):  # traced at 64x64; the field is the same at another size divisible by 16
        x = torch.rand(2, 2, size, size)
        with torch.no_grad():
            a, b = eager(x), ts(x)
        assert a.shape == (2, 2, size, size) and a.abs().max() > 1e-3  # a real, non-zero field
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def _venv_without_cxreg(root: Path) -> Path:
    """A virtualenv that sees /work/venv's packages but not cxreg, tqdm, scikit-image, scipy, ignite ..."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    py = root / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "base_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (site / "_block_imports.py").write_text(
        "import sys\nBLOCKED = %r\n" % (BLOCKED,)
        + "class Block:\n"
          "    def find_spec(self, name, path=None, target=None):\n"
          "        if name.split('.')[0] in BLOCKED:\n"
          "            raise ModuleNotFoundError(f'No module named {name!r} (blocked by the test)', name=name)\n"
          "        return None\n"
          "sys.meta_path.insert(0, Block())\n")
    (site / "zz_block.pth").write_text("import _block_imports\n")
    return py


@needs_weights
def test_download_and_register_without_cxreg(dist, pair, tmp_path):
    out, z, _ = dist
    name = bundle_name("registration", "JSRT")
    py = _venv_without_cxreg(tmp_path / "venv")
    for mod in ("bundle", "tqdm", "skimage", "scipy"):
        r = subprocess.run([str(py), "-c", f"import {mod}"], cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, mod
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{z.name}"
        r = subprocess.run([str(py), "-m", "monai.bundle", "download", "--name", name, "--url", url, "--bundle_dir",
                            str(tmp_path / "dl")], capture_output=True, text=True, env=_env(), timeout=300)
    finally:
        server.shutdown()
    assert r.returncode == 0, r.stderr[-2000:]
    bdir = tmp_path / "dl" / name
    assert (bdir / "configs" / "inference.json").is_file()

    # two pairs from a CSV: one with both masks given (DSC/HD/ASSD), one with predicted masks
    moving, fixed = pair
    csv = tmp_path / "pairs.csv"
    csv.write_text("moving,fixed,moving_mask,fixed_mask\n"
                   f"{moving},{fixed},{moving.parent / 'moving_mask.png'},{fixed.parent / 'fixed_mask.png'}\n"
                   f"{fixed},{moving},,\n")
    res = tmp_path / "res"
    r = subprocess.run([str(py), "-m", "monai.bundle", "run", "inference", "--config_file", "configs/inference.json",
                        "--pairs_csv", str(csv), "--output_dir", str(res), "--device", "cpu"],
                       cwd=bdir, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    with_masks, predicted = res / "moving__fixed", res / "fixed__moving"
    for f in ("warped.png", "ddf.nii.gz", "jacobian.nii.gz", "warped_mask.png", "overlay.png", "metrics.json"):
        assert (with_masks / f).is_file() and (predicted / f).is_file(), f
    assert load_image(with_masks / "warped.png").shape == (96, 96)  # the fixed image's grid
    assert load_image(predicted / "warped.png").shape == (96, 80)
    m = json.loads((with_masks / "metrics.json").read_text())
    assert m["jac"] >= 0 and 0.8 < m["dsc"] <= 1 and m["hd"] > 0 and m["assd"] > 0
    assert "dsc" not in json.loads((predicted / "metrics.json").read_text())  # no masks given: JAC only
    assert all(s["ok"] for s in json.loads((res / "summary.json").read_text()))

    # the same files as `cxreg register --pairs` with the repository's package (scikit-image, scipy)
    from bundle.cli import main

    ref = tmp_path / "ref"
    assert main(["register", "--pairs", str(csv), "--out", str(ref), "--model", "JSRT", "--device", "cpu",
                 "--quiet"]) == 0
    import itk

    for name in ("moving__fixed", "fixed__moving"):
        a = itk.array_from_image(itk.imread(str(res / name / "ddf.nii.gz")))
        b = itk.array_from_image(itk.imread(str(ref / name / "ddf.nii.gz")))
        assert np.abs(b).max() > 0.1
        np.testing.assert_allclose(a, b, atol=1e-4)
        assert np.array_equal(load_image(res / name / "warped_mask.png"), load_image(ref / name / "warped_mask.png"))
        got, want = (json.loads((d / name / "metrics.json").read_text()) for d in (res, ref))
        assert got.keys() == want.keys()
        for k in set(got) - {"fixed", "moving", "options"}:
            assert got[k] == pytest.approx(want[k], abs=1e-5), k
        # the same settings; the bundle names its own weight files where `cxreg register` names the model
        assert {k: v for k, v in got["options"].items() if k not in ("model", "seg_model")} == \
            {k: v for k, v in want["options"].items() if k not in ("model", "seg_model")}
        assert want["options"]["model"] == "JSRT"
        assert got["options"]["model"].startswith("bundle ") and got["options"]["model"].endswith("models/model.pt")
        assert got["options"]["seg_model"].endswith("models/segmentation.pt")


@needs_weights
@pytest.mark.parametrize("ignite", [True, False])
def test_exported_registration_inference_is_a_monai_inference_workflow(unpacked, pair, tmp_path, ignite):
    """The exported registration bundle's inference.json passes MONAI's ``check_properties()`` for an inference
    workflow (model-zoo CI; before 0.5.6 it lacked dataset_dir, evaluator and inferer): with pytorch-ignite the
    evaluator is a ``SupervisedEvaluator``, without it (the bundle needs only MONAI's core packages) a plain loop
    with the same ``network``/``inferer``/``run``. Its network is ``network_def`` with models/model.pt loaded, and
    its Inferer gives the field that running the workflow writes."""
    _, fixed = pair
    moving = tmp_path / "moving96.png"  # the Inferer takes one (B, 2, H, W) tensor: both images 96 x 96
    Image.fromarray(_chest((96, 96), shift=(3, -2), scale=0.9, seed=1)).save(moving)
    out = tmp_path / "o"
    code = f"""
import json, sys, numpy as np, torch, itk
from monai.bundle import ConfigWorkflow
w = ConfigWorkflow(config_file="configs/inference.json", workflow_type="infer", meta_file="configs/metadata.json",
                   logging_file=None, moving={str(moving)!r}, fixed={str(fixed)!r}, output_dir={str(out)!r},
                   device="cpu")
w.initialize()
missing = w.check_properties()
sd = torch.load("models/model.pt", map_location="cpu", weights_only=True)
loaded = all(torch.equal(w.network_def.state_dict()[k], v) for k, v in sd.items())
w.run()
from scripts.cxreg.io import load_image
x = torch.from_numpy(np.stack([load_image({str(moving)!r}), load_image({str(fixed)!r})]))[None]
ddf = w.inferer(x, w.network_def)[0].numpy()
written = itk.array_from_image(itk.imread({str(out / "ddf.nii.gz")!r}))
print(json.dumps({{"missing": missing, "evaluator": type(w.evaluator).__name__, "same_net": w.evaluator.network is
                  w.network_def, "loaded": loaded, "dataset_dir": w.dataset_dir, "ddf_max": float(np.abs(ddf).max()),
                  "diff": float(max(np.abs(written[..., 1] - ddf[0]).max(), np.abs(written[..., 0] - ddf[1]).max()))}}))
"""
    py = sys.executable if ignite else str(_venv_without_cxreg(tmp_path / "venv"))
    r = subprocess.run([py, "-c", code], cwd=unpacked, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["missing"] == [] and got["same_net"] and got["loaded"]
    assert got["evaluator"] == ("SupervisedEvaluator" if ignite else "_PairLoop")
    assert got["dataset_dir"] == str(fixed.parent.resolve())
    # the fixed image is 96 x 96 and square: the written field is the Inferer's (physical = pixels here)
    assert got["ddf_max"] > 0.1 and got["diff"] < 1e-4


@needs_weights
def test_damaged_weights_stop_with_one_line(unpacked, pair, tmp_path):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(unpacked, b)
    assert check_weights(b)["version"]
    w = b / "models" / "segmentation.pt"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte
    w.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"segmentation\.pt: SHA-256 .* does not match"):
        check_weights(b)
    moving, fixed = pair
    r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file",
                        "configs/inference.json", "--moving", str(moving), "--fixed", str(fixed), "--output_dir",
                        str(tmp_path / "out")], cwd=b, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("cxreg bundle: error:") and "segmentation.pt: SHA-256" in last
    assert not (tmp_path / "out").exists()


@needs_weights
def test_a_bad_refinement_weight_stops_the_bundle_with_one_line(unpacked, pair, tmp_path):
    """``--refine_mask_weight nan`` (or -1) reaches the bundle through Fire unchecked by any parser: the bundle's
    evaluator refuses it before any weight loads (before 0.5.8 a NaN weight ran and gave a NaN-driven field)."""
    moving, fixed = pair
    for bad in ("nan", "-1"):
        r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file",
                            "configs/inference.json", "--moving", str(moving), "--fixed", str(fixed), "--output_dir",
                            str(tmp_path / "out"), "--refine_steps", "2", "--refine_mask_weight", bad], cwd=unpacked,
                           capture_output=True, text=True, env=_env(), timeout=300)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
        last = r.stderr.strip().splitlines()[-1]
        assert last == f"cxreg bundle: error: --refine_mask_weight must be a finite number >= 0, not {bad}"
        assert not (tmp_path / "out").exists()


def test_an_unknown_option_or_a_bad_distance_weight_stops_the_bundle_with_one_line(unpacked, pair, tmp_path):
    """An option no key of the bundle's config defines (``--refine``, cxreg register's spelling) is refused, not
    ignored (before 0.5.10 it ran without refinement, exit 0); ``--refine_distance_weight`` is checked."""
    moving, fixed = pair
    for args, msg in ((["--refine", "20"], "--refine: not an option of configs/inference.json (did you mean "
                                           "--refine_steps?)"),
                      (["--refine_steps", "2", "--refine_distance_weight", "-1"],
                       "--refine_distance_weight must be a finite number >= 0, not -1")):
        r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file",
                            "configs/inference.json", "--moving", str(moving), "--fixed", str(fixed), "--output_dir",
                            str(tmp_path / "out"), *args], cwd=unpacked, capture_output=True, text=True, env=_env(),
                           timeout=300)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert r.stderr.strip().splitlines()[-1] == f"cxreg bundle: error: {msg}"
        assert not (tmp_path / "out").exists()


@needs_weights
def test_bad_refinement_options_stop_the_bundle_evaluation_with_one_line(unpacked, tmp_path):
    """``evaluate.json`` checks ``--refine_mask_weight``, ``--refine_distance_weight`` (since 0.5.11) and
    ``--refine_steps`` as ``inference`` does: one line,
    exit status 1, no evaluation folder (before 0.5.9 a NaN weight stopped it with a ValueError traceback)."""
    import shutil

    from .conftest import make_dataset

    b = tmp_path / "b"
    shutil.copytree(unpacked, b)
    make_dataset(tmp_path / "data", "TOY", n=3, size=64)
    for opt, bad, want in (("--refine_mask_weight", "nan", "a finite number >= 0, not nan"),
                           ("--refine_distance_weight", "-1", "a finite number >= 0, not -1"),
                           ("--refine_steps", "-2", "a whole number >= 0, not -2"),
                           ("--refine_steps", "two", "a whole number >= 0, not 'two'")):
        r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                            "['configs/train.json','configs/evaluate.json']", "--dataset", "TOY", "--data_dir",
                            str(tmp_path / "data"), "--seg_model", "truth", opt, bad], cwd=b, capture_output=True,
                           text=True, env=_env(), timeout=300)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert r.stderr.strip().splitlines()[-1] == f"cxreg bundle: error: {opt} must be {want}"
        assert not (b / "runs" / "registration_TOY" / "eval_TOY").exists()


def test_torch_mask_cleaning_equals_monai():
    from bundle.priors import clean_masks

    rng = np.random.default_rng(0)
    masks = []
    for k in range(6):
        m = lung_mask(64, (int(rng.integers(-3, 4)), 0)).astype(bool)
        m[rng.random(m.shape) < 0.02] = True  # specks (small components)
        m[rng.random(m.shape) < 0.02] = False  # holes
        m[30:34, 18:22] = False  # a bigger hole inside the left lung
        if k % 2:
            m[:3, 10:50] = True  # a blob touching the border
            m[0:2, :] = True  # a band, as large as a lung
        masks.append(m)
    x = torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))
    ref = clean_masks(x.clone())  # (MONAI's FillHoles writes into its input)
    got = clean_masks_torch(x)
    assert got.shape == ref.shape and ref.sum() > 0 and not torch.equal(ref, x)
    assert torch.equal(got, ref)
    assert type(ref) is torch.Tensor  # not a MONAI MetaTensor, whose metadata would follow every later op


def test_torch_boundary_distances_equal_monai():
    from bundle.metrics import assd, hausdorff

    rng = np.random.default_rng(1)
    a = np.stack([lung_mask(64, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), float(rng.uniform(0.8, 1.1)))
                  for _ in range(5)])
    b = np.stack([lung_mask(64, (int(rng.integers(-4, 5)), 0), float(rng.uniform(0.8, 1.1))) for _ in range(5)])
    a[0, 5, 5] = 1  # a far outlier pixel sets HD
    a[1, :, :] = 0  # empty: NaN, as MONAI through bundle.metrics
    b[2, :2, :] = 1  # touches the image border
    x, y = torch.from_numpy(a[:, None]).float(), torch.from_numpy(b[:, None]).float()
    for fast, ref in ((hausdorff_torch, hausdorff), (assd_torch, assd)):
        for spacing in (None, (0.5, 0.7)):
            want, got = ref(x, y, spacing), fast(x, y, spacing)
            assert torch.isnan(want[1]) and torch.isnan(got[1])
            torch.testing.assert_close(got, want.float(), atol=1e-4, rtol=1e-5, equal_nan=True)
    from bundle.export import surface_metrics_torch
    from bundle.metrics import surface_metrics

    for spacing in (None, (0.5, 0.7)):  # the one-pass pair used by the harness and register's metrics.json
        for got, want in zip(surface_metrics_torch(x, y, spacing), surface_metrics(x, y, spacing)):
            torch.testing.assert_close(got, want.float(), atol=1e-4, rtol=1e-5, equal_nan=True)
        got, want = surface_metrics_torch(x, y, spacing, hd95=True)[2], surface_metrics(x, y, spacing, hd95=True)[2]
        torch.testing.assert_close(got, want.float(), atol=1e-4, rtol=1e-5, equal_nan=True)


def test_cli_errors_are_one_line(tmp_path, capsys):
    from bundle.cli import main

    assert main(["export", "--bundle", "registration", "--dataset", str(tmp_path / "none.pt"), "--out",
                 str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.pt: weights file not found" in err[0]
    assert not list(tmp_path.glob("*.zip"))


@needs_weights
@pytest.mark.parametrize("kind", ["segmentation", "autoencoder"])
def test_prior_bundles_verify_and_run(kind, tmp_path):
    log: list = []
    z = export_bundle(kind, "JSRT", tmp_path / "dist", log=log)
    assert "metadata is verified" in log[0] and "verified with no error" in log[0]
    with zipfile.ZipFile(z) as f:
        f.extractall(tmp_path)
    b = tmp_path / bundle_name(kind, "JSRT")
    meta = json.loads((b / "configs" / "metadata.json").read_text())
    assert set(meta["cxreg_weights_sha256"]) == {"models/model.pt"} and (b / "models" / "model.ts").is_file()
    key = "test_dsc_mean" if kind == "segmentation" else "test_clean_dsc_mean"
    assert 0.9 < meta["eval_metrics"][key] <= 1
    if kind == "autoencoder":
        return
    inp = tmp_path / "in"
    inp.mkdir()
    r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file",
                        "configs/inference.json", "--input_dir", str(inp), "--output_dir", str(tmp_path / "pred")],
                       cwd=b, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]  # an empty folder: one line
    assert r.stderr.strip().splitlines()[-1] == (f"cxreg inference: error: {inp}: no .png, .nii, .nii.gz or .dcm "
                                                 "images in this folder")
    assert not (tmp_path / "pred").exists()
    Image.fromarray(_chest((96, 80), seed=3)).save(inp / "a.png")
    r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file",
                        "configs/inference.json", "--input_dir", str(inp), "--output_dir", str(tmp_path / "pred")],
                       cwd=b, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    pred = load_image(tmp_path / "pred" / "a.png")
    truth = lung_mask(96)[:96, :80]
    assert pred.shape == (96, 80)
    inter = ((pred > 0) & (truth > 0)).sum()
    assert 2 * inter / ((pred > 0).sum() + truth.sum()) > 0.8  # the two synthetic lungs are found


@needs_weights
def test_exported_registration_bundle_trains_and_evaluates(unpacked, tmp_path):
    import shutil

    from .conftest import make_dataset

    b = tmp_path / "b"
    shutil.copytree(unpacked, b)
    make_dataset(tmp_path / "data", "TOY", n=6, size=64)
    common = ["--dataset", "TOY", "--data_dir", str(tmp_path / "data"), "--seg_model", "truth", "--lambda_ae", "0"]
    r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", "configs/train.json",
                        *common, "--work_size", "32", "--batches_per_epoch", "2", "--batch_size", "4", "--val_pairs",
                        "4", "--val_fraction", "0.34", "--val_interval", "1", "--num_workers", "0", "--max_epochs", "1"],
                       cwd=b, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    trained = torch.load(b / "runs" / "registration_TOY" / "registration.pt", weights_only=True)
    assert trained["settings"]["work_size"] == 32
    assert sha256(b / "models" / "model.pt") == sha256(unpacked / "models" / "model.pt")  # shipped weights kept
    # evaluate.json scores the shipped model.pt on all 30 ordered pairs of the 6 images
    r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                        "['configs/train.json','configs/evaluate.json']", *common], cwd=b, capture_output=True,
                       text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = (b / "runs" / "registration_TOY" / "eval_TOY" / "val_mean_dice_raw.csv").read_text().splitlines()
    assert len(rows) == 31
    assert 0.5 < float(rows[1].split(",")[-1]) <= 1


def test_universal_metrics_are_read_per_dataset_from_the_results_of_the_shipped_universal_model():
    from bundle.export import measured_metrics

    m, src = measured_metrics("registration", "universal")
    s = json.loads((REPO / "docs" / "results" / "registration" / "MONT_universal_df1" / "summary.json").read_text())
    assert src == "docs/results/registration/<DS>_universal_df1"
    assert m["MONT_dsc_mean"] == round(s["metrics"]["dsc"]["mean"], 4)
    assert {f"{d}_hd_mean" for d in ("JSRT", "MONT", "SHEN")} <= set(m)
    seg, _ = measured_metrics("segmentation", "universal")
    assert 0.9 < seg["JSRT_test_dsc_mean"] <= 1


needs_universal = pytest.mark.skipif(
    not all((REPO / "models" / f).is_file() for f in ("registration_universal.pt", "segmentation_universal.pt",
                                                       "segmentation_JSRT.pt", "segmentation_JSRT256.pt")),
    reason="no shipped universal / JSRT weights")


@needs_universal
def test_bundle_with_an_ensemble_tta_and_refinement_gives_cxreg_registers_fields(pair, tmp_path):
    """``cxreg export --seg-model A+B@tta --refine N --refine-mask-weight W``: the bundle ships both lung-mask
    models, runs them averaged with shift TTA and refines each field, as ``cxreg register`` with the same options."""
    z = export_bundle("registration", "JSRT", tmp_path / "dist", model="universal", seg_model="JSRT+universal@tta",
                      refine_steps=3, refine_mask_weight=80, check=False, name="cxreg_registration_jsrt_tta")
    assert z.name == f"cxreg_registration_jsrt_tta_v{json.loads((REPO / 'configs' / 'metadata.json').read_text())['version']}.zip"
    with zipfile.ZipFile(z) as f:
        f.extractall(tmp_path / "u")
    b = tmp_path / "u" / "cxreg_registration_jsrt_tta"
    meta = json.loads((b / "configs" / "metadata.json").read_text())
    assert sorted(meta["cxreg_weights_sha256"]) == ["models/model.pt", "models/segmentation.pt",
                                                    "models/segmentation_2.pt"]
    assert meta["cxreg_inference"] == {"model": "universal", "seg_model": "JSRT+universal@tta", "refine_steps": 3,
                                       "refine_mask_weight": 80.0}
    assert meta["name"].endswith(", universal model, for JSRT; lung masks JSRT+universal@tta, 3 refinement steps")
    inf = json.loads((b / "configs" / "inference.json").read_text())
    assert (inf["seg_models"], inf["seg_tta"], inf["refine_steps"], inf["refine_mask_weight"]) == \
        (["segmentation.pt", "segmentation_2.pt"], True, 3, 80.0)
    for f, src in (("segmentation.pt", "segmentation_JSRT.pt"), ("segmentation_2.pt", "segmentation_universal.pt")):
        got, want = torch.load(b / "models" / f), torch.load(REPO / "models" / src)
        assert all(torch.equal(got[k], want[k]) for k in want)
    readme = (b / "docs" / "README.md").read_text()
    assert "five shifted passes averaged (TTA)" in readme and "3 steps per pair, mask weight 80" in readme

    moving, fixed = pair
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"moving,fixed\n{moving},{fixed}\n")
    res, ref = tmp_path / "res", tmp_path / "ref"
    r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file",
                        "configs/inference.json", "--pairs_csv", str(csv), "--output_dir", str(res), "--device", "cpu"],
                       cwd=b, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "bundle.cli", "register", "--pairs", str(csv), "--out", str(ref),
                        "--model", "universal", "--seg-model", "JSRT+universal@tta", "--refine", "3",
                        "--refine-mask-weight", "80", "--device", "cpu", "--quiet"],
                       cwd=REPO, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    import itk

    a = itk.array_from_image(itk.imread(str(res / "moving__fixed" / "ddf.nii.gz")))
    want = itk.array_from_image(itk.imread(str(ref / "moving__fixed" / "ddf.nii.gz")))
    assert np.abs(want).max() > 0.1
    np.testing.assert_allclose(a, want, atol=1e-4)
    got, exp = (json.loads((d / "moving__fixed" / "metrics.json").read_text())["options"] for d in (res, ref))
    assert {k: v for k, v in got.items() if k not in ("model", "seg_model")} == \
        {k: v for k, v in exp.items() if k not in ("model", "seg_model")}
    assert exp["refine"] == 3 and exp["refine_mask_weight"] == 80.0
    assert got["seg_model"].endswith(": models/segmentation.pt+models/segmentation_2.pt@tta")

    # only the bundle's own, hashed weights are loaded as lung-mask models
    from bundle.export import run_registration
    from bundle.networks import LungSegNet

    (b / "models" / "extra.pt").write_bytes((b / "models" / "segmentation.pt").read_bytes())
    net, settings = __import__("bundle.export", fromlist=["x"]).load_any_registration(b / "models" / "model.pt",
                                                                                       inf["settings"])
    with pytest.raises(SystemExit, match=r"metadata.json: seg_models \['extra.pt'\] have no SHA-256"):
        run_registration(b, net, LungSegNet(), inf["settings"], moving=str(moving), fixed=str(fixed),
                         output_dir=str(tmp_path / "never"), seg_models=["extra.pt"])
    assert not (tmp_path / "never").exists()


@needs_universal
def test_bundle_evaluate_json_scores_what_cxreg_evaluate_scores_with_the_same_settings(tmp_path):
    """An exported bundle's ``train.json + evaluate.json`` uses the lung masks (ensemble, TTA), refinement and fold
    removal of its inference, so its per-pair Dice and Hausdorff distances are ``cxreg evaluate``'s with the
    options the bundle was exported with (before 0.5.5 it used models/segmentation.pt alone and no refinement)."""
    import csv as csv_mod

    from .conftest import make_dataset

    z = export_bundle("registration", "JSRT", tmp_path / "dist", model="universal", seg_model="JSRT+universal@tta",
                      refine_steps=3, refine_mask_weight=80, check=False, name="cxreg_registration_jsrt_ev")
    with zipfile.ZipFile(z) as f:
        f.extractall(tmp_path / "u")
    b = tmp_path / "u" / "cxreg_registration_jsrt_ev"
    ev = json.loads((b / "configs" / "evaluate.json").read_text())
    assert (ev["seg_models"], ev["seg_tta"], ev["refine_steps"], ev["refine_mask_weight"]) == \
        (["segmentation.pt", "segmentation_2.pt"], True, 3, 80.0)
    data = tmp_path / "data"
    make_dataset(data, "TOY", n=5, size=256)
    r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                        "['configs/train.json','configs/evaluate.json']", "--dataset", "TOY", "--data_dir", str(data)],
                       cwd=b, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = b / "runs" / "registration_TOY" / "eval_TOY"
    got = {}  # per metric: {"<moving>__<fixed>": value}, the rows of evaluate.json's per-pair CSVs
    for m, name in (("dsc", "val_mean_dice"), ("hd", "val_hausdorff"), ("assd", "val_assd")):
        with open(out / f"{name}_raw.csv") as f:
            got[m] = {row["filename"]: float(row["mean"]) for row in csv_mod.DictReader(f)}
    ref = tmp_path / "ref"
    r = subprocess.run([sys.executable, "-m", "bundle.cli", "evaluate", "--method", "ours", "--model", "universal",
                        "--seg-model", "JSRT+universal@tta", "--refine", "3", "--refine-mask-weight", "80",
                        "--dataset", "TOY", "--data-dir", str(data), "--out", str(ref), "--quiet"],
                       cwd=REPO, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(ref / "pairs.csv") as f:
        rows = list(csv_mod.DictReader(f))
    assert len(rows) == len(got["dsc"]) == 20  # one row per ordered pair, each named once
    keys = [f"{r['moving']}__{r['fixed']}" for r in rows]
    assert sorted(keys) == sorted(got["dsc"])
    want = {m: [float(r[m]) for r in rows] for m in ("dsc", "hd", "assd")}
    assert 0.5 < min(want["dsc"]) < 1  # the synthetic lungs are found and the pairs differ
    for m, atol in (("dsc", 1e-4), ("hd", 1e-3), ("assd", 1e-3)):  # pair by pair
        np.testing.assert_allclose([got[m][k] for k in keys], want[m], atol=atol, err_msg=m)


def test_bundle_true_false_options_read_fires_strings(tmp_path):
    """Fire passes ``--seg_tta false`` and ``--eval_fix_folds off`` as strings; ``bool("false")`` is True, so before
    0.5.5 both switched the option on. Now they parse as cxreg register's --fix_folds does."""
    from bundle.export import bundle_attention, eval_fix_folds_option
    from bundle.register import bool_arg
    from bundle.networks import LungSegNet
    from bundle.networks.segmentation import SegShiftTTA

    assert [bool_arg(v, "--seg_tta") for v in ("false", "False", "off", False, "true", "on", True)] == \
        [False, False, False, False, True, True, True]
    with pytest.raises(InputError, match="--seg_tta must be true or false, not 'maybe'"):
        bool_arg("maybe", "--seg_tta")
    assert [eval_fix_folds_option(v) for v in ("false", "off", False, "true", True, "null", None)] == \
        [False, False, False, True, True, None, None]
    with pytest.raises(SystemExit, match="--eval_fix_folds must be true or false"):
        eval_fix_folds_option("maybe")
    from bundle.export import run_registration

    with pytest.raises(SystemExit, match="--debug must be true or false, not 'maybe'"):
        run_registration(tmp_path, None, None, {}, debug="maybe")
    z = export_bundle("registration", "JSRT", tmp_path / "dist", check=False)
    with zipfile.ZipFile(z) as f:
        f.extractall(tmp_path / "u")
    b = next((tmp_path / "u").iterdir())
    seg = str(b / "models" / "segmentation.pt")
    assert not isinstance(bundle_attention(b, seg, LungSegNet(spatial_dims=2), ["segmentation.pt"], "false"), SegShiftTTA)
    assert isinstance(bundle_attention(b, seg, LungSegNet(spatial_dims=2), ["segmentation.pt"], "true"), SegShiftTTA)
    ev = json.loads((b / "configs" / "evaluate.json").read_text())
    assert "eval_fix_folds_option(@eval_fix_folds)" in ev["validate#evaluator#iteration_update"]
    # --refine_distance_weight (since 0.5.11; before, only the bundle's inference took it) reaches EvalStep
    assert ev["refine_distance_weight"] == 0.0
    assert "@refine_steps, @refine_mask_weight, @refine_distance_weight)" in ev["validate#evaluator#iteration_update"]
    from bundle.export import eval_refine_options

    assert eval_refine_options("3", "80", "0.5") == {"refine_steps": 3, "refine_weights": {"w_mask": 80.0, "w_dist": 0.5}}
    assert eval_refine_options(0, None)["refine_weights"]["w_dist"] == 0.0
    with pytest.raises(SystemExit, match="--refine_distance_weight must be a finite number >= 0, not x$"):
        eval_refine_options(1, 40, "x")


@needs_universal
def test_metrics_row_is_checked_against_the_bundle_settings(tmp_path):
    row = "universal_df1_segDS256tta_refine20_mw80"
    summary = json.loads((REPO / "docs" / "results" / "registration" / f"JSRT_{row}" / "summary.json").read_text())
    z = export_bundle("registration", "JSRT", tmp_path, model="universal", seg_model="JSRT256@tta", refine_steps=20,
                      refine_mask_weight=80, metrics_row=row, check=False)
    with zipfile.ZipFile(z) as f:
        meta = json.loads(f.read("cxreg_registration_jsrt/configs/metadata.json"))
    assert meta["eval_metrics"]["dsc_mean"] == round(summary["metrics"]["dsc"]["mean"], 4)
    assert meta["eval_metrics"]["hd_mean"] == round(summary["metrics"]["hd"]["mean"], 4)
    assert meta["eval_metrics_source"] == f"docs/results/registration/JSRT_{row}/summary.json"
    for kw, what in ((dict(seg_model="JSRT+universal@tta", refine_steps=20, refine_mask_weight=80), "seg_model"),
                     (dict(seg_model="JSRT256@tta", refine_steps=10, refine_mask_weight=80), "refine"),
                     (dict(seg_model="JSRT256@tta", refine_steps=20), "refine_mask_weight")):
        with pytest.raises(InputError, match=rf"JSRT_{row}/summary.json: measured with {what}"):
            export_bundle("registration", "JSRT", tmp_path / "x", model="universal", metrics_row=row, check=False,
                          overwrite=True, **kw)
    with pytest.raises(InputError, match="no such results row"):
        export_bundle("registration", "JSRT", tmp_path / "x", metrics_row="nothing_here", check=False)
    with pytest.raises(InputError, match="for the registration bundle, not segmentation"):
        export_bundle("segmentation", "JSRT", tmp_path / "x", refine_steps=3, check=False)
    assert not list((tmp_path / "x").glob("*.zip")) if (tmp_path / "x").exists() else True


def test_the_publishing_commands_name_the_package_version():
    """README's and sharing.md's export / download / publish commands name the zips and tags of this version:
    ``monai.bundle download --version V`` looks for ``<name>_vV.zip``, which only the same version's export
    writes (before 0.5.10 the docs mixed 0.5.0, 0.5.5 and 0.5.6)."""
    import re

    from bundle import __version__

    sharing = (REPO / "docs" / "sharing.md").read_text()
    pub = sharing[sharing.index("## Publishing"):]
    pub = pub[: pub.find("\n## ", 5)] if "\n## " in pub[5:] else pub
    readme = (REPO / "README.md").read_text()
    texts = [pub, sharing[sharing.index("## Export"):].split("```")[1],
             readme[readme.index("python -m monai.bundle download"):][:400]]
    found = [v for t in texts for v in re.findall(r'(?:_v|/v|--version |version="|revision=")(\d+\.\d+\.\d+)', t)]
    assert len(found) >= 12 and set(found) == {__version__}, sorted(set(found))


def test_an_exported_registration_bundle_trains_with_its_model_s_switches_and_intensity():
    """The exported ``train.json`` reproduces its model's settings; the universal model's histogram
    equalisation was lost before 0.5.10 (its ``intensity`` followed ``--init``, which a bundle leaves empty)."""
    from dataclasses import asdict

    from bundle.export import _configs
    from bundle.registration import load_registration

    for name in ("universal", "JSRT"):
        s = asdict(load_registration(name)[1])
        tr = _configs("registration", name, s)["train.json"]
        assert {k: tr[k] for k in ("attention", "affine", "integrate", "fix_folds", "intensity")} == {
            k: s[k] for k in ("attention", "affine", "integrate", "fix_folds", "intensity")}
        # and the network's shape and attention margin, as literals (since 0.5.11)
        assert (tr["channels"], tr["num_scales"], tr["fusion"], tr["integrate_scales"], tr["attention_margin"]) == (
            list(s["net"]["channels"]), s["net"]["num_scales"], s["net"]["fusion"], s["net"].get("integrate_scales", 0),
            s["attention_margin"])
        assert (tr["int_steps"], tr["integrate_at_output"]) == (s["int_steps"], s["integrate_at_output"])  # 0.5.12
    odd = dict(s, attention_margin=4.0, net={"channels": [8, 8, 8, 8, 8], "num_scales": 2, "integrate_scales": 3},
               int_steps=5, integrate_at_output=True)
    tr = _configs("registration", "JSRT", odd)["train.json"]
    assert (tr["channels"], tr["num_scales"], tr["fusion"], tr["integrate_scales"], tr["attention_margin"]) == (
        [8, 8, 8, 8, 8], 2, "dfsa", 3, 4.0)
    assert (tr["int_steps"], tr["integrate_at_output"]) == (5, True)
    assert asdict(load_registration("universal")[1])["intensity"] == "equalize"
    for kind, settings in (("registration", s), ("segmentation", None)):  # a misspelt option before the hashing
        init = _configs(kind, "JSRT", settings)["evaluate.json"]["initialize"]
        assert "check_overrides(" in init[0] and "check_weights_or_exit(" in init[1]


def test_bundle_lung_mask_members_keep_their_own_working_size(tmp_path):
    """Members of an exported bundle's lung-mask ensemble are loaded into copies of one network; a member whose
    weights carry no working size (the 128 x 128 models saved before 0.5.1: ``segmentation_SHEN.pt``,
    ``segmentation_universal.pt``) must run at the network's default 128, not at the 256 of a member loaded before
    it (before 0.5.11 the ``SHEN256+universal256+SHEN+universal@tta`` bundle ran all four at 256)."""
    from bundle.export import _bundle_segmentation
    from bundle.networks import LungSegNet
    from bundle.networks.segmentation import SegEnsemble

    torch.manual_seed(0)
    (tmp_path / "models").mkdir()
    torch.save(LungSegNet(work_size=64).state_dict(), tmp_path / "models" / "a.pt")  # carries work_size_code 64
    old = {k: v for k, v in LungSegNet().state_dict().items() if not k.endswith("_code")}  # as saved before 0.5.1
    torch.save(old, tmp_path / "models" / "b.pt")
    ens = _bundle_segmentation(tmp_path, LungSegNet(spatial_dims=2), ["a.pt", "b.pt", "a.pt"], False)
    assert isinstance(ens, SegEnsemble)
    assert [m.work_size for m in ens.members] == [64, 128, 64]
    assert [m.intensity for m in ens.members] == ["zscore"] * 3
