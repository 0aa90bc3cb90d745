"""The segmentation and autoencoder bundles, run as users run them: python -m monai.bundle ..."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from bundle.io import load_image, save_image

from .conftest import REPO, make_dataset, needs_shared

SCHEMA = REPO / "configs" / "schema" / "meta_schema.json"


def monai_bundle(*args, cwd=None):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-m", "monai.bundle", *args], capture_output=True, text=True,
                       cwd=cwd or REPO, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundle") / "data"
    make_dataset(d, "TOY", n=6, size=64)
    return d


@pytest.mark.parametrize("name,extra", [
    ("segmentation", ["--work_size", "32", "--batch_size", "2"]),
    ("autoencoder", ["--batch_size", "2"]),
])
def test_train_infer_evaluate(toy, tmp_path, name, extra):
    cfg = REPO / "configs" / name
    out, model = tmp_path / "run", tmp_path / f"{name}.pt"
    common = ["--dataset", "TOY", "--data_dir", str(toy), "--output_dir", str(out), "--model_path", str(model)]
    # 2 epochs with val_interval 3: validated (and exported) once, after the last epoch
    log = monai_bundle("run", "training", "--config_file", str(cfg / "train.json"), *common, "--max_epochs", "2",
                       "--val_interval", "3", "--num_workers", "0", *extra, cwd=tmp_path)
    assert "val_mean_dice" in log and model.is_file()
    import json

    assert [h["epoch"] for h in json.loads((out / "summary.json").read_text())["history"]] == [2]
    sd = torch.load(model, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in sd.values())
    assert list(out.glob("checkpoint_epoch=2.pt")) and list(out.glob("events.out.tfevents.*"))
    best2 = (out / "model.pt").read_bytes()
    # resume: a third epoch starts from the saved checkpoint
    log = monai_bundle("run", "training", "--config_file", str(cfg / "train.json"), *common, "--max_epochs", "3",
                       "--val_interval", "1", "--num_workers", "0", *extra, cwd=tmp_path)
    assert "Restored all variables" in log and "Epoch[3] Complete" in log and "Epoch[1] Complete" not in log
    summary = json.loads((out / "summary.json").read_text())  # the validation history survives the resume
    assert summary["epochs"] == 3 and [h["epoch"] for h in summary["history"]] == [2, 3]
    assert all(0 <= h["metric"] <= 1 for h in summary["history"])
    # the best model across the resume: replaced by epoch 3's only if epoch 3 scored higher than epoch 2 (before
    # 0.5.8 the first validation after a resume always replaced model.pt)
    m2, m3 = (h["metric"] for h in summary["history"])
    assert ((out / "model.pt").read_bytes() == best2) == (m3 <= m2)
    ep3 = torch.load(out / "checkpoint_epoch=3.pt", weights_only=True)["model"]
    # the finished run started again (3 % 2 != 0): nothing to train, so no extra validation, the best model of
    # the run is not rewritten (only exported again, the same bytes)
    stamp = (out / "model.pt").stat().st_mtime_ns, model.read_bytes()
    monai_bundle("run", "training", "--config_file", str(cfg / "train.json"), *common, "--max_epochs", "3",
                 "--val_interval", "2", "--num_workers", "0", *extra, cwd=tmp_path)
    assert [h["epoch"] for h in json.loads((out / "summary.json").read_text())["history"]] == [2, 3]
    assert ((out / "model.pt").stat().st_mtime_ns, model.read_bytes()) == stamp
    # killed during its final validation: the checkpoint is there, the best model is not; the rerun validates
    # the last checkpoint's weights and exports them (before 0.5.8 it failed at the export)
    (out / "model.pt").unlink()
    model.unlink()
    log = monai_bundle("run", "training", "--config_file", str(cfg / "train.json"), *common, "--max_epochs", "3",
                       "--val_interval", "2", "--num_workers", "0", *extra, cwd=tmp_path)
    assert "not found: validating the last checkpoint" in log and (out / "model.pt").is_file()
    exported = torch.load(model, weights_only=True)  # epoch 3's weights: the only validation of this process
    assert all(torch.equal(exported[k], ep3[k]) for k in ep3)

    # inference on a PNG and a NIfTI of another size: masks come back on the input grid
    inp = tmp_path / "in"
    inp.mkdir()
    src = toy / "TOY" / ("images" if name == "segmentation" else "masks") / "img000.png"
    img = load_image(src)
    Image.fromarray(img.astype(np.uint8)).resize((48, 80)).save(inp / "a.png")
    save_image(inp / "b.nii.gz", img)
    size = ["--work_size", "32"] if name == "segmentation" else []
    monai_bundle("run", "inference", "--config_file", str(cfg / "inference.json"), "--dataset", "TOY",
                 "--model_path", str(model), "--input_dir", str(inp), "--output_dir", str(tmp_path / "pred"), *size,
                 cwd=tmp_path)
    a = np.asarray(Image.open(tmp_path / "pred" / "a.png"))
    b = np.asarray(Image.open(tmp_path / "pred" / "b.png"))
    assert a.shape == (80, 48) and b.shape == (64, 64) and set(np.unique(b)) <= {0, 255}
    if name == "segmentation":  # the bundle's masks are the package's masks of the trained model
        from bundle.priors import load_segmentation, predict_lung_masks

        want = predict_lung_masks(load_segmentation(model, work_size=32), torch.from_numpy(img / 255.0).float()[None, None])
        np.testing.assert_array_equal(b // 255, want[0, 0].numpy().astype(np.uint8))

    monai_bundle("run", "--config_file", f"['{cfg / 'train.json'}','{cfg / 'evaluate.json'}']", *common, *extra,
                 cwd=tmp_path)
    assert (out / "eval_TOY" / "metrics.csv").is_file()
    assert len((out / "eval_TOY" / "val_mean_dice_raw.csv").read_text().splitlines()) == 7  # header + 6 images


@pytest.mark.parametrize("cfg,kind", [
    ("train.json", "train"), ("segmentation/train.json", "train"), ("autoencoder/train.json", "train"),
    ("segmentation/inference.json", "infer"), ("autoencoder/inference.json", "infer"),
])
def test_configs_have_the_model_zoo_workflow_properties(toy, tmp_path, cfg, kind):
    """MONAI's ``check_properties()`` (what model-zoo CI calls; ``run`` does not) finds every required id and
    every optional id that a handler refers to: before 0.5.5 the registration train.json had no
    ``train#inferer`` and the other two trainers held their key metric inline, which made the check raise.
    The registration bundle's inference.json needs a pair of images to build its evaluator; it is checked in
    tests/test_register.py::test_inference_json_is_a_monai_inference_workflow (and the exported bundle's in
    tests/test_export.py)."""
    from monai.bundle import ConfigWorkflow

    path = REPO / "configs" / cfg
    over = {"dataset": "TOY", "data_dir": str(toy), "output_dir": str(tmp_path / "out")}
    if kind == "infer":
        (tmp_path / "in").mkdir()
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "in" / "a.png")
        over["input_dir"] = str(tmp_path / "in")
        torch.save({"w": torch.zeros(1)}, tmp_path / "m.pt")  # the datalist checks that the weights file loads
        over["model_path"] = str(tmp_path / "m.pt")
    w = ConfigWorkflow(config_file=str(path), workflow_type=kind, meta_file=str(path.parent / "metadata.json"),
                       logging_file=None, **over)
    w.initialize()
    assert w.check_properties() == []


@pytest.mark.parametrize("cfg,prefix,default", [("segmentation/inference.json", "segmentation_", "universal"),
                                                ("autoencoder/inference.json", "autoencoder_", "JSRT"),
                                                ("inference.json", "", "universal")])
def test_inference_configs_pick_the_model_by_model_or_by_dataset(cfg, prefix, default):
    """``--model JSRT256`` names the shipped model (since 0.5.8); ``--dataset`` still does when ``--model`` is not
    given (the id it used to be), and ``--model`` wins over it."""
    from monai.bundle import ConfigParser

    def path(**over):
        p = ConfigParser()
        p.read_config(str(REPO / "configs" / cfg))
        p.update(over)
        return str(p.get_parsed_content("model_path"))

    ext = ".pt" if prefix else ""
    assert path().endswith(f"{prefix}{default}{ext}")
    assert path(dataset="MONT").endswith(f"{prefix}MONT{ext}")
    assert path(dataset="MONT", model="SHEN").endswith(f"{prefix}SHEN{ext}")
    if prefix == "segmentation_":  # a 256 model loaded through the config runs at 256 (the size is in its weights)
        p = ConfigParser()
        p.read_config(str(REPO / "configs" / cfg))
        p.update({"model": "JSRT256", "device": "$torch.device('cpu')"})
        net = p.get_parsed_content("network")
        net.load_state_dict(torch.load(p.get_parsed_content("model_path"), weights_only=True))
        assert net.work_size == 256


@pytest.mark.parametrize("name", ["segmentation", "autoencoder", "registration"])
def test_metadata_and_network_io(name):
    cfg = REPO / "configs" / (name if name != "registration" else "")
    assert "metadata is verified" in monai_bundle("verify_metadata", "--meta_file", str(cfg / "metadata.json"),
                                                  "--filepath", str(SCHEMA))
    net_cfg = cfg / ("inference.json" if name == "segmentation" else "train.json")
    if name == "registration":
        # one tensor in (moving, fixed) and one displacement field out, as verify_net_in_out requires
        assert "verified with no error" in monai_bundle("verify_net_in_out", "network_def", "--meta_file",
                                                        str(cfg / "metadata.json"), "--config_file", str(net_cfg),
                                                        "--ae_model", "None", "--lambda_ae", "0")
        return
    assert "verified with no error" in monai_bundle("verify_net_in_out", "network_def", "--meta_file",
                                                    str(cfg / "metadata.json"), "--config_file", str(net_cfg))


@needs_shared
@pytest.mark.skipif(not (REPO / "models" / "segmentation_JSRT.pt").is_file(), reason="no shipped JSRT weights")
def test_shipped_segmentation_weights_reach_095_on_jsrt():
    from bundle.data import load_split
    from bundle.metrics import dice
    from bundle.priors import load_segmentation, predict_lung_masks

    d = load_split("JSRT", "test")
    net = load_segmentation("JSRT")
    pred = predict_lung_masks(net, d.images[:10])
    assert dice(pred, d.masks[:10]).mean().item() >= 0.95


# measured test DSC (cleaned) of the 256 x 256 models and of the 128 x 128 model each is compared with
# (docs/segmentation.md, python scripts/seg_score.py DS NAME)
SEG256 = [("universal256", "JSRT", 0.9784, "universal"), ("JSRT256", "JSRT", 0.9797, "JSRT"),
          ("MONT256", "MONT", 0.9782, "MONT"), ("SHEN256", "SHEN", 0.9614, "SHEN")]


@needs_shared
@pytest.mark.parametrize("name,dataset,measured,coarse", SEG256)
def test_256_segmentation_models_run_at_256_and_beat_the_128_models(name, dataset, measured, coarse):
    """The names load the 256 x 256 fine-tunes (the working size comes from the weights); each reaches its measured
    test DSC (to 0.001) and beats the 128 x 128 model it is compared with."""
    from bundle.data import load_split
    from bundle.metrics import dice
    from bundle.priors import load_segmentation, predict_lung_masks, weights_path

    if not weights_path("segmentation", name).is_file():
        pytest.skip(f"no {name} weights")
    net = load_segmentation(name)
    assert net.work_size == 256 and net.intensity == "equalize"
    d = load_split(dataset, "test")
    # the cleaned masks of evaluate_segmentation (its HD/ASSD would double the time and are not checked here)
    fine = dice(predict_lung_masks(net, d.images), d.masks).mean().item()
    base = dice(predict_lung_masks(load_segmentation(coarse), d.images), d.masks).mean().item()
    assert fine >= measured - 0.001 and fine > base + 0.001


@needs_shared
@pytest.mark.skipif(not (REPO / "models" / "autoencoder_JSRT.pt").is_file(), reason="no shipped JSRT weights")
def test_shipped_autoencoder_denoises_jsrt_masks():
    # a denoising autoencoder must return masks closer to the truth than the corrupted masks it is given
    from bundle.data import load_split
    from bundle.metrics import dice
    from bundle.priors import load_autoencoder
    from bundle.spatial import resize_mask
    from bundle.transforms import corrupt_mask

    ae = load_autoencoder("JSRT")
    clean = resize_mask(load_split("JSRT", "test").masks[:10], 64)
    rng = np.random.RandomState(0)
    noisy = torch.stack([corrupt_mask(m, rng) for m in clean])
    with torch.no_grad():
        recon = (torch.softmax(ae(noisy), 1)[:, 1:2] > 0.5).float()
    assert dice(recon, clean).mean() > dice(noisy, clean).mean()


def test_registration_bundle_train_resume_and_evaluate(toy, tmp_path):
    import json

    from bundle.cli import main

    cfg = REPO / "configs" / "train.json"
    out, model = tmp_path / "run", tmp_path / "reg.pt"
    args = ["run", "training", "--config_file", str(cfg), "--dataset", "TOY", "--data_dir", str(toy),
            "--output_dir", str(out), "--model_path", str(model), "--seg_model", "truth", "--lambda_ae", "0",
            "--attention", "False", "--work_size", "32", "--batches_per_epoch", "3", "--batch_size", "4",
            "--val_pairs", "4", "--val_fraction", "0.34", "--val_interval", "2", "--num_workers", "0"]
    log = monai_bundle(*args, "--max_epochs", "1", cwd=tmp_path)  # fewer epochs than val_interval: validated at the end
    assert "val_mean_dice" in log and "val_folds" in log and model.is_file()
    ck = torch.load(model, weights_only=True)
    assert ck["settings"]["work_size"] == 32 and ck["settings"]["attention"] is False
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1
    log = monai_bundle(*args, "--max_epochs", "2", cwd=tmp_path)
    assert "Restored all variables" in log and "Epoch[2] Complete" in log and "Epoch[1] Complete" not in log

    # the MONAI-native evaluation of the saved model on all ordered pairs (6 images -> 30 pairs)
    monai_bundle("run", "--config_file", f"['{cfg}','{REPO / 'configs' / 'evaluate.json'}']", "--dataset", "TOY",
                 "--data_dir", str(toy), "--output_dir", str(out), "--model_path", str(model), "--seg_model", "truth",
                 "--lambda_ae", "0", cwd=tmp_path)
    assert len((out / "eval_TOY" / "val_mean_dice_raw.csv").read_text().splitlines()) == 31

    res = tmp_path / "ev"
    assert main(["evaluate", "--method", "ours", "--model", str(model), "--dataset", "TOY", "--data-dir", str(toy),
                 "--out", str(res), "--quiet", "--device", "cpu"]) == 0
    s = json.loads((res / "summary.json").read_text())
    assert s["n_pairs"] == 30 and 0 < s["metrics"]["dsc"]["mean"] <= 1
    import csv

    rows = list(csv.DictReader((res / "pairs.csv").open()))
    assert len(rows) == 30 and s["metrics"]["dsc"]["mean"] == pytest.approx(np.mean([float(r["dsc"]) for r in rows]))
    from bundle import __version__

    assert s["options"] == {"method": "ours", "model": str(model), "seg_model": "(the model's own)", "refine": 0,
                            "refine_size": 128, "refine_mask_weight": 40.0, "refine_distance_weight": 0.0,
                            "fix_folds": "(the model's setting)",
                            "version": __version__}
