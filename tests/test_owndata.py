"""Users' own data (bundle.owndata): layouts, preprocessing, errors, and training every bundle on a folder."""

import json
import os
import re
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from bundle.data import check_training_data, dataset_name, load_split, train_val_ids
from bundle.io import InputError
from bundle.owndata import is_own_data, load_own_data, own_name, scan_own_data

from .conftest import REPO, lung_mask, needs_shared

SIZES = [(70, 90), (100, 80), (64, 64), (96, 72), (81, 101), (90, 66)]  # (H, W): odd sizes and aspect ratios


def make_own(root, n=6, masks=True, rgb_one=True, nifti_one=True):
    """A user's folder: 16-bit grey PNGs (one RGB PNG, one NIfTI) and 0/255 masks, matched by stem."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    if masks:
        (root / "masks").mkdir()
    for k in range(n):
        h, w = SIZES[k % len(SIZES)]
        side = max(h, w)
        m = lung_mask(side, (int(rng.integers(-3, 4)), 0))[(side - h) // 2:(side - h) // 2 + h,
                                                          (side - w) // 2:(side - w) // 2 + w].astype(np.int64)
        img16 = np.clip(40000 - 25000 * m + rng.normal(0, 800, m.shape), 0, 65535).astype(np.uint16)
        s = f"case {k}"  # a space in the stem
        if nifti_one and k == 1:
            nib.save(nib.Nifti1Image(img16.T.astype(np.float32), np.eye(4)), str(root / "images" / f"{s}.nii.gz"))
        elif rgb_one and k == 2:
            g = (img16 // 257).astype(np.uint8)
            Image.fromarray(np.stack([g, g, g], -1)).save(root / "images" / f"{s}.png")
        else:
            Image.fromarray(img16).save(root / "images" / f"{s}.png")
        if masks:
            Image.fromarray((m * 255).astype(np.uint8)).save(root / "masks" / f"{s}.png")
    return root


def test_folder_is_loaded_padded_and_resampled(tmp_path):
    d = make_own(tmp_path / "mine")
    assert is_own_data(d) and not is_own_data(REPO.parent / "shared" / "data") and dataset_name(d) == "mine"
    ids, imgs, masks = load_own_data(d, needs_masks=True)
    assert ids == [f"case {k}" for k in range(6)]
    assert imgs.shape == (6, 1, 256, 256) and masks.shape == (6, 1, 256, 256)
    assert float(imgs.min()) >= 0 and float(imgs.max()) <= 1
    assert set(torch.unique(masks).tolist()) <= {0.0, 1.0}
    # case 0 is 70 x 90 (H x W): padded to 90 x 90 with 10 zero rows above and below (image rows 10..79), then
    # grown bilinearly to 256: output row i samples input row (i + 0.5) * 90 / 256 - 0.5, which lies in 9..80
    # (touching an image row) exactly for i = 27..228
    rows = imgs[0, 0].amax(1)
    assert float(rows[:27].max()) == 0 and float(rows[27:229].min()) > 0 and float(rows[229:].max()) == 0
    # 16-bit values are scaled by the image maximum: the brightest pixel of the grey 16-bit image maps to ~1
    assert float(imgs[0].max()) > 0.9
    # the mask covers the same lung pixels as the image's dark ellipses
    lung = imgs[0, 0][masks[0, 0] > 0].mean()
    body = imgs[0, 0][(masks[0, 0] == 0) & (imgs[0, 0] > 0)].mean()
    assert float(lung) < 0.5 < float(body)


def test_csv_layout_and_shipped_names_are_protected(tmp_path):
    d = make_own(tmp_path / "JSRT", masks=True)
    assert own_name(d) == "own_JSRT"  # never models/*_JSRT.pt
    rows = ["image,mask"] + [f"JSRT/images/{p.name},JSRT/masks/{p.name.split('.')[0]}.png"
                             for p in sorted((d / "images").iterdir())]
    csv = tmp_path / "list.csv"
    csv.write_text("\n".join(rows) + "\n")
    assert is_own_data(csv) and dataset_name(csv) == "list"
    items = scan_own_data(csv, needs_masks=True)
    assert [s for s, _, _ in items] == [f"case {k}" for k in range(6)]


def _bad_layouts(tmp_path):
    cases = {}
    d = tmp_path / "noimages"
    d.mkdir()
    (d / "masks").mkdir()
    cases["no images/ folder"] = (d, str(d), "no images/ folder and no splits.json")
    d = tmp_path / "empty"
    (d / "images").mkdir(parents=True)
    cases["no images"] = (d, str(d / "images"), "no images")
    d = make_own(tmp_path / "orphan")
    Image.fromarray(lung_mask(64) * 255).save(d / "masks" / "extra.png")
    cases["mask without image"] = (d, str(d / "masks" / "extra.png"), "mask has no image")
    d = make_own(tmp_path / "grey")
    Image.fromarray((lung_mask(90) * 200 + 20).astype(np.uint8)[:70]).save(d / "masks" / "case 0.png")
    cases["non-binary mask"] = (d, str(d / "masks" / "case 0.png"), "not a binary mask")
    d = make_own(tmp_path / "twice")
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(d / "images" / "case 1.png")  # beside case 1.nii.gz
    cases["two files with the same stem"] = (d, "case 1", "same stem")
    d = make_own(tmp_path / "nomask")
    os.remove(d / "masks" / "case 3.png")
    cases["image without its mask"] = (d, str(d / "images" / "case 3.png"), "no mask")
    d = make_own(tmp_path / "unmasked", masks=False)
    cases["masks needed"] = (d, str(d / "images" / "case 0.png"), "no lung mask")
    csv = tmp_path / "cols.csv"
    csv.write_text("img,mask\na.png,b.png\n")
    cases["CSV without image column"] = (csv, str(csv), "needs the columns image,mask")
    return cases


def test_bad_layouts_stop_before_anything_is_written(tmp_path):
    for name, (data, where, what) in _bad_layouts(tmp_path).items():
        out = tmp_path / "out" / name.replace(" ", "_")
        with pytest.raises(SystemExit) as e:
            check_training_data(data, "JSRT", out, needs_masks=True, exit_on_error=True)
        msg = str(e.value)
        assert msg.startswith("cxreg training: error: ") and where in msg and what in msg, (name, msg)
        assert "\n" not in msg and not out.exists(), name
        with pytest.raises(InputError):  # from Python, the same problem is an exception
            check_training_data(data, "JSRT", out, needs_masks=True)


def _bundle(*args, cwd):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "monai.bundle", "run", "training", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


def test_bundle_command_gives_one_line_error(tmp_path):
    cases = _bad_layouts(tmp_path)
    data, where, _ = cases["non-binary mask"]
    out = tmp_path / "run"
    r = _bundle("--config_file", str(REPO / "configs" / "segmentation" / "train.json"), "--data_dir", str(data),
                "--output_dir", str(out), cwd=tmp_path)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("cxreg training: error: " + where) and "binary" in last
    assert "Traceback" not in r.stderr and not out.exists()


def test_own_folder_trains_all_three_bundles(tmp_path):
    d = make_own(tmp_path / "mine")
    for name, extra in [("segmentation", ["--work_size", "32", "--batch_size", "2"]),
                        ("autoencoder", ["--batch_size", "2"])]:
        out, model = tmp_path / f"run_{name}", tmp_path / f"{name}.pt"
        r = _bundle("--config_file", str(REPO / "configs" / name / "train.json"), "--data_dir", str(d),
                    "--output_dir", str(out), "--model_path", str(model), "--max_epochs", "1", "--val_interval", "1",
                    "--num_workers", "0", *extra, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        assert model.is_file() and "val_mean_dice" in r.stdout + r.stderr
        split = json.loads((out / "split.json").read_text())
        assert split["own_data"] and split["dataset"] == "mine"
        assert sorted(split["train"] + split["val"]) == [f"case {k}" for k in range(6)] and len(split["val"]) == 1
        summary = json.loads((out / "summary.json").read_text())
        assert summary["dataset"] == "mine"
    # registration on the same images without masks, as written in docs/own-data.md: the shipped universal
    # segmentation model predicts the lung masks (attention and loss), the universal autoencoder is the prior
    nomask = tmp_path / "nomask"
    nomask.mkdir()
    os.symlink(d / "images", nomask / "images")
    out, model = tmp_path / "run_reg", tmp_path / "reg.pt"
    r = _bundle("--config_file", f"['{REPO / 'configs' / 'train.json'}','{REPO / 'configs' / 'presets' / 'diffeo.json'}']",
                "--data_dir", str(nomask), "--output_dir", str(out), "--model_path", str(model),
                "--work_size", "32", "--batches_per_epoch", "2",
                "--batch_size", "4", "--val_pairs", "2", "--max_epochs", "1", "--val_interval", "1",
                "--num_workers", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert model.is_file() and "val_mean_dice" in r.stdout + r.stderr
    assert json.loads((out / "split.json").read_text())["dataset"] == "nomask"


def test_split_is_seeded_and_repeatable(tmp_path):
    d = make_own(tmp_path / "mine", n=12, rgb_one=False, nifti_one=False)
    a = json.loads(check_training_data(d, "x", tmp_path / "a", seed=3).read_text())
    b = json.loads(check_training_data(d, "x", tmp_path / "b", seed=3).read_text())
    c = json.loads(check_training_data(d, "x", tmp_path / "c", seed=4).read_text())
    assert a["val"] == b["val"] and a["val"] != c["val"] and len(a["val"]) == 1
    tr, va = train_val_ids(12, 0.1, 3)
    ids = load_split("x", "train", d).ids
    assert a["val"] == [ids[i] for i in va] and a["train"] == [ids[i] for i in tr]


def test_own_data_has_no_test_split(tmp_path):
    d = make_own(tmp_path / "mine")
    with pytest.raises(InputError, match="no 'test' split"):
        load_split("x", "test", d)


# ------------------------------------------------------------------------------------------- --init
def _parsed(cfg, **over):
    from monai.bundle import ConfigParser

    p = ConfigParser()
    p.read_config([str(c) for c in cfg])
    for k, v in over.items():
        p[k] = v
    return p


@needs_shared
@pytest.mark.parametrize("kind", ["segmentation", "autoencoder", "registration"])
def test_init_starts_from_shipped_weights_with_a_lower_first_loss(kind):
    """``--init JSRT`` loads the shipped weights: the first-iteration loss on a fixed real pair (JSRT test images
    0 -> 1) is lower than from the same network with random weights."""
    from bundle.registration import predict_field
    from bundle.spatial import warp

    torch.manual_seed(0)
    d = load_split("JSRT", "test")
    losses = {}
    for init in (None, "JSRT"):
        if kind == "registration":
            cfg = [REPO / "configs" / "train.json", REPO / "configs" / "presets" / "diffeo.json"]
        else:
            cfg = [REPO / "configs" / kind / "train.json"]
        p = _parsed(cfg, init=init, device="$torch.device('cpu')")
        net, loss = p.get_parsed_content("network"), p.get_parsed_content("loss")
        net.train()
        with torch.no_grad():
            if kind == "segmentation":
                img, lab = d.images[:2], d.masks[:2]
                val = loss(net(img), lab)
            elif kind == "autoencoder":
                from bundle.spatial import resize_mask

                lab = resize_mask(d.masks[:2], 64)
                val = loss(net(lab), lab)
            else:
                settings = p.get_parsed_content("settings")
                m, f = d.images[0:1], d.images[1:2]
                mm, fm = d.masks[0:1], d.masks[1:2]
                from bundle.spatial import resize_image, resize_mask
                s = settings.work_size
                m64, f64, mm64, fm64 = resize_image(m, s), resize_image(f, s), resize_mask(mm, s), resize_mask(fm, s)
                out = predict_field(net, settings, m64, f64, mm64, fm64)
                u = out["ddf_work"]
                terms = loss(out["fixed_in"], warp(out["moving_in"], u), fm64,
                             warp(mm64, u, mode="bilinear", padding_mode="zeros"), out["velocity"])
                val = terms["loss"]
        losses[init] = float(val)
    assert losses["JSRT"] < losses[None], losses


def test_init_with_a_missing_or_wrong_file_is_one_line(tmp_path):
    from bundle.networks import LungSegNet, MaskAutoEncoder
    from bundle.workflow import init_weights, save_atomic

    with pytest.raises(InputError, match="--init weights not found"):
        init_weights(LungSegNet(), tmp_path / "nope.pt", "segmentation")
    p = tmp_path / "ae.pt"
    save_atomic(MaskAutoEncoder().state_dict(), p)
    with pytest.raises(InputError, match="does not fit this network"):
        init_weights(LungSegNet(), p, "segmentation")


def test_priors_default_to_the_dataset_then_the_init_then_universal():
    from bundle.priors import REPO_ROOT, default_prior, weights_path

    assert default_prior("MONT", None) == "MONT"
    assert default_prior("mine", "SHEN") == "SHEN"  # own data fine-tuned from SHEN uses SHEN's priors
    assert default_prior("mine", None) == "universal" and default_prior("mine", "/x/reg.pt") == "universal"
    assert weights_path("segmentation", "Universal") == REPO_ROOT / "models" / "segmentation_universal.pt"
    assert weights_path("autoencoder", "jsrt") == REPO_ROOT / "models" / "autoencoder_JSRT.pt"


@needs_shared
def test_universal_split_is_the_union_of_the_three():
    u = load_split("universal", "train")
    parts = [load_split(ds, "train") for ds in ("JSRT", "MONT", "SHEN")]
    assert len(u) == sum(len(p) for p in parts) and u.ids[0] == "JSRT_" + parts[0].ids[0]
    assert torch.equal(u.images[len(parts[0])], parts[1].images[0])


@pytest.mark.parametrize("init,mode", [(None, "unit"), ("JSRT", "unit"), ("universal", "equalize")])
def test_registration_fine_tuning_keeps_the_intensity_mode_of_its_start(init, mode):
    p = _parsed([REPO / "configs" / "train.json"], init=init)
    assert p.get_parsed_content("settings").intensity == mode


SWITCHES = ("attention", "affine", "integrate", "fix_folds", "intensity")


@pytest.mark.parametrize("init", ["JSRT", "universal"])
def test_registration_fine_tuning_keeps_the_settings_of_its_start(init, tmp_path):
    """``--init`` without a preset trains with the start's own switches (before 0.5.10 only its intensity: the
    shipped diffeomorphic weights were fine-tuned as a plain displacement field, affine off); a value on the
    command line (or a preset) still wins; without ``--init`` the paper's defaults hold."""
    from bundle.registration import RegSettings, load_registration

    saved = load_registration(init)[1]
    assert saved.affine and saved.integrate  # the shipped models: the diffeo preset
    got = _parsed([REPO / "configs" / "train.json"], init=init).get_parsed_content("settings")
    assert {k: getattr(got, k) for k in SWITCHES} == {k: getattr(saved, k) for k in SWITCHES}
    got = _parsed([REPO / "configs" / "train.json"], init=init, affine=False).get_parsed_content("settings")
    assert got.affine is False and got.integrate == saved.integrate
    paper = _parsed([REPO / "configs" / "train.json"], init=None).get_parsed_content("settings")
    assert {k: getattr(paper, k) for k in SWITCHES} == {k: getattr(RegSettings(), k) for k in SWITCHES}
    # a weights file without settings (a plain state dict): the defaults, not an error here
    from bundle.networks import MultiScaleRegNet

    torch.save(MultiScaleRegNet().state_dict(), tmp_path / "plain.pt")
    got = _parsed([REPO / "configs" / "train.json"], init=str(tmp_path / "plain.pt")).get_parsed_content("settings")
    assert (got.affine, got.integrate, got.attention) == (False, False, True)


def test_fine_tuning_a_model_of_another_shape_builds_that_shape(tmp_path):
    """``--init FILE`` of a registration model with other channels, scales, fusion or attention margin builds the
    network of that file and loads its weights (before 0.5.11 train.json's default shape was built and
    ``init_weights`` refused the file: "does not fit this network"); the command line still wins."""
    from dataclasses import asdict

    from bundle.networks import MultiScaleRegNet
    from bundle.registration import RegSettings

    shape = {"channels": [8, 16, 16, 32, 32], "num_scales": 3, "fusion": "add", "integrate_scales": 0}
    net = MultiScaleRegNet(spatial_dims=2, **shape)
    settings = RegSettings(attention_margin=4.0, net=shape)
    torch.save({"model": net.state_dict(), "settings": asdict(settings)}, tmp_path / "small.pt")
    p = _parsed([REPO / "configs" / "train.json"], init=str(tmp_path / "small.pt"))
    built = p.get_parsed_content("network")  # init_weights loads the file: it fits
    for k, v in net.state_dict().items():
        assert torch.equal(built.state_dict()[k], v), k
    got = p.get_parsed_content("settings")
    assert (got.net["channels"], got.net["num_scales"], got.net["fusion"], got.attention_margin) == (
        [8, 16, 16, 32, 32], 3, "add", 4.0)
    p = _parsed([REPO / "configs" / "train.json"], init=str(tmp_path / "small.pt"), attention_margin=0.0)
    assert p.get_parsed_content("settings").attention_margin == 0.0
    # a setting stored as None (a hand-written file) falls back to the default instead of failing in the config
    torch.save({"model": net.state_dict(), "settings": dict(asdict(settings), attention_margin=None)},
               tmp_path / "none.pt")
    assert _parsed([REPO / "configs" / "train.json"], init=str(tmp_path / "none.pt")).get_parsed_content(
        "settings").attention_margin == 0.0
    default = _parsed([REPO / "configs" / "train.json"], init=None).get_parsed_content("settings")
    assert (default.net["channels"], default.net["num_scales"], default.net["fusion"]) == (
        [16, 32, 32, 64, 64], 4, "dfsa")


def test_integration_steps_are_training_options_that_follow_init(tmp_path):
    """``int_steps`` and ``integrate_at_output`` are ``train.json`` options since 0.5.12 (before, every run kept
    7 / off) and, like the other settings, follow ``--init``; ``int_steps`` below 1 is refused by name."""
    from dataclasses import asdict

    from bundle.networks import MultiScaleRegNet
    from bundle.registration import RegSettings

    net = MultiScaleRegNet(spatial_dims=2)
    torch.save({"model": net.state_dict(), "settings": asdict(RegSettings(integrate=True, int_steps=5,
                                                                          integrate_at_output=True))},
               tmp_path / "five.pt")
    got = _parsed([REPO / "configs" / "train.json"], init=str(tmp_path / "five.pt")).get_parsed_content("settings")
    assert (got.integrate, got.int_steps, got.integrate_at_output) == (True, 5, True)
    got = _parsed([REPO / "configs" / "train.json"], init=None, int_steps=4).get_parsed_content("settings")
    assert (got.int_steps, got.integrate_at_output) == (4, False)
    with pytest.raises(ValueError, match=r"int_steps must be a whole number >= 1 .*not 0"):
        RegSettings(int_steps=0)


def test_own_data_never_writes_over_shipped_weights_and_checks_batch_and_init(tmp_path):
    from bundle.priors import weights_path

    d = make_own(tmp_path / "mine")
    for kw, msg in (({"dataset": "JSRT"}, "--dataset JSRT: names a shipped model"),
                    ({"dataset": "Universal"}, "--dataset Universal: names a shipped model"),
                    ({"dataset": "mine", "model_path": weights_path("segmentation", "MONT")},
                     f"--model_path {weights_path('segmentation', 'MONT')}: is a shipped model's weights file")):
        kw = {"model_path": None, **kw}
        with pytest.raises(InputError, match=re.escape(msg)):
            check_training_data(d, kw["dataset"], tmp_path / "o", model_path=kw["model_path"])
    with pytest.raises(InputError, match=r"5 training images are fewer than one batch of 16; .* --batch_size 5"):
        check_training_data(d, "mine", tmp_path / "o", batch_size=16)
    with pytest.raises(InputError, match="--init weights not found"):
        check_training_data(d, "mine", tmp_path / "o", init=tmp_path / "nope.pt", kind="segmentation")
    assert not (tmp_path / "o").exists()
    assert check_training_data(d, "mine", tmp_path / "o", batch_size=4, init="universal", kind="segmentation").is_file()


def test_a_run_folder_of_other_data_is_not_resumed(tmp_path):
    a, b = make_own(tmp_path / "a" / "data"), make_own(tmp_path / "b" / "data", n=5)
    out = tmp_path / "run"
    check_training_data(a, "data", out)
    (out / "checkpoint_epoch=3.pt").write_bytes(b"x")
    check_training_data(a, "data", out)  # the same data: resuming is fine
    with pytest.raises(InputError, match="holds a run on other data"):
        check_training_data(b, "data", out)


def test_csv_with_bom_capitalised_header_trailing_commas_and_hidden_files(tmp_path):
    d = make_own(tmp_path / "mine", rgb_one=False, nifti_one=False)
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(d / "images" / "._case 0.png")  # macOS metadata file
    assert [s for s, _, _ in scan_own_data(d)] == [f"case {k}" for k in range(6)]
    rows = ["Image,Mask"] + [f"mine/images/case {k}.png,mine/masks/case {k}.png," for k in range(6)]
    csv = tmp_path / "excel.csv"
    csv.write_bytes("\ufeff".encode() + ("\n".join(rows) + "\n").encode())
    assert len(scan_own_data(csv, needs_masks=True)) == 6
    csv.write_text("image,mask\nmine/images/case 0.png,mine/masks/case 0.png,extra\n")
    with pytest.raises(InputError, match="line 2: more fields than the header"):
        scan_own_data(csv)
