import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from bundle.cli import main
from bundle.data import load_split
from bundle.evaluate import evaluate
from bundle.metrics import dice

from .conftest import REPO, lung_mask, needs_shared


def test_identity_outputs(toy_data, tmp_path):
    out = tmp_path / "ev"
    s = evaluate("identity", "TOY", out, data_dir=toy_data, size=64, progress=False)
    assert s["n_pairs"] == 20 and s["all_pairs"]
    rows = list(csv.DictReader(open(out / "pairs.csv")))
    assert len(rows) == 20 and list(rows[0]) == ["moving", "fixed", "dsc", "hd", "assd", "hd95", "jac", "jac_pct",
                                                   "sdlogj", "seconds"]
    d = load_split("TOY", "test", toy_data)
    for r in rows:  # identity: the DSC of the two masks as they are, counted by hand
        a = d.masks[d.ids.index(r["moving"])].numpy() > 0.5
        b = d.masks[d.ids.index(r["fixed"])].numpy() > 0.5
        assert float(r["dsc"]) == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()), abs=1e-6)
    r = rows[7]
    m, f = d.ids.index(r["moving"]), d.ids.index(r["fixed"])
    assert float(r["dsc"]) == pytest.approx(dice(d.masks[m], d.masks[f]).item(), abs=1e-6)
    assert all(int(r["jac"]) == 0 for r in rows)
    assert json.loads((out / "summary.json").read_text())["metrics"]["dsc"]["mean"] == pytest.approx(s["metrics"]["dsc"]["mean"])
    assert (out / "table.md").read_text().count("| TOY | identity |") == 1


def test_exact_translation_method_scores_perfectly(tmp_path):
    # images are integer translations of one lung pair; a method that returns u = c_moving - c_fixed
    # (mask centroids) is exact under the pull-back convention, so DSC must be 1 and HD 0 on every pair
    import numpy as np
    from PIL import Image

    from .conftest import lung_mask

    root = tmp_path / "data" / "SHIFT"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k, sh in enumerate([(0, 0), (2, 3), (-3, 1), (4, -2)]):
        m = lung_mask(64, sh)
        Image.fromarray((200 - 120 * m).astype(np.uint8)).save(root / "images" / f"s{k}.png")
        Image.fromarray(m * 255).save(root / "masks" / f"s{k}.png")
    ids = [f"s{k}" for k in range(4)]
    (tmp_path / "data" / "splits.json").write_text(json.dumps({"SHIFT": {"train": ids, "test": ids}}))

    def centroid(m):
        g = torch.stack(torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij"))
        return (g[None] * m).flatten(2).sum(2) / m.flatten(2).sum(2)  # (B, 2)

    def oracle(fixed, moving, fixed_mask, moving_mask, **_):
        u = torch.round(centroid(moving_mask) - centroid(fixed_mask))
        return u[:, :, None, None].expand(-1, -1, 64, 64).contiguous()

    s = evaluate("oracle", "SHIFT", tmp_path / "o", data_dir=tmp_path / "data", size=64, progress=False, method_fn=oracle)
    ident = evaluate("identity", "SHIFT", tmp_path / "i", data_dir=tmp_path / "data", size=64, progress=False)
    assert s["n_pairs"] == 12
    assert s["metrics"]["dsc"]["mean"] == 1.0 and s["metrics"]["hd"]["mean"] == 0.0
    assert ident["metrics"]["dsc"]["mean"] < 0.95


def test_max_pairs_is_a_seeded_sample(toy_data, tmp_path):
    a = evaluate("identity", "TOY", tmp_path / "a", data_dir=toy_data, size=64, max_pairs=6, seed=1, progress=False)
    b = evaluate("identity", "TOY", tmp_path / "b", data_dir=toy_data, size=64, max_pairs=6, seed=1, progress=False)
    assert a["n_pairs"] == b["n_pairs"] == 6 and not a["all_pairs"]
    pa = [r.split(",")[:2] for r in (tmp_path / "a" / "pairs.csv").read_text().splitlines()]
    pb = [r.split(",")[:2] for r in (tmp_path / "b" / "pairs.csv").read_text().splitlines()]
    assert len(pa) == 7 and pa == pb


def test_failure_leaves_no_output(toy_data, tmp_path):
    def boom(*a, **_):
        raise RuntimeError("method failed")

    with pytest.raises(RuntimeError):
        evaluate("boom", "TOY", tmp_path / "res" / "x", data_dir=toy_data, size=64, progress=False, method_fn=boom)
    assert list((tmp_path / "res").iterdir()) == []


def test_cli_help_lists_subcommands_and_version():
    r = subprocess.run([sys.executable, "-m", "bundle.cli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0
    body = r.stdout.split("  COMMAND\n", 1)[1].split("\noptions:", 1)[0]
    listed = [ln.split()[0] for ln in body.splitlines() if ln.startswith("    ") and not ln.startswith("      ")]
    assert sorted(listed) == sorted(["evaluate", "register", "pairs", "warp", "points", "export", "benchmark", "prepare-data",
                                     "info"])
    from bundle import __version__

    r = subprocess.run([sys.executable, "-m", "bundle.cli", "--version"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and r.stdout.strip() == f"cxreg {__version__}"


def test_info_lists_the_datasets_and_their_splits(tmp_path, capsys):
    from bundle import __version__

    from .conftest import make_dataset

    make_dataset(tmp_path, "JSRT", n=3, size=32)
    make_dataset(tmp_path, "SHEN", n=4, size=32)
    capsys.readouterr()
    assert main(["info", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"cxreg {__version__}; data: {tmp_path}", "  JSRT: train 3, test 3",
                                                   "  SHEN: train 4, test 4"]
    own = tmp_path / "mine"  # the own-data layout: images/ + masks/, no splits.json
    (own / "images").mkdir(parents=True)
    (own / "masks").mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 40), 50 * i + 10, np.uint8)).save(own / "images" / f"p{i}.png")
        Image.fromarray((lung_mask(40) * 255).astype(np.uint8)).save(own / "masks" / f"p{i}.png")
    assert main(["info", "--data-dir", str(own)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (f"  own data 'mine': 3 images, 3 with a lung mask "
                                                       f"(docs/own-data.md: train with --data_dir {own})")
    assert main(["evaluate", "--dataset", "mine", "--data-dir", str(own), "--out", str(tmp_path / "e")]) == 1
    assert f"{own}: a folder of your own data has no 'test' split" in capsys.readouterr().err


def test_spacing_turns_the_distances_into_millimetres(toy_data, tmp_path):
    """``--spacing 0.5``: HD and ASSD are half the pixel values, DSC and JAC unchanged, units say mm."""
    px = evaluate("identity", "TOY", tmp_path / "px", data_dir=toy_data, size=64, progress=False)
    mm = evaluate("identity", "TOY", tmp_path / "mm", data_dir=toy_data, size=64, progress=False, spacing=(0.5, 0.5))
    assert px["units"] == "pixels" and mm["units"] == "mm"
    assert px["metrics"]["hd"]["mean"] > 1  # the toy pairs do differ
    for k, f in (("hd", 0.5), ("assd", 0.5), ("dsc", 1.0), ("jac", 1.0)):
        assert mm["metrics"][k]["mean"] == pytest.approx(f * px["metrics"][k]["mean"], rel=1e-6), k


def test_cli_evaluate_and_errors(toy_data, tmp_path, capsys):
    assert main(["evaluate", "--dataset", "TOY", "--data-dir", str(toy_data), "--out", str(tmp_path / "e"), "--quiet",
                 "--max-pairs", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    m = json.loads((tmp_path / "e" / "summary.json").read_text())["metrics"]
    assert out[1] == (f"DSC {m['dsc']['mean']:.4f}  HD {m['hd']['mean']:.3f}  HD95 {m['hd95']['mean']:.3f}  "
                      f"ASSD {m['assd']['mean']:.3f}  JAC {m['jac']['mean']:.2f} (pixels)")
    assert main(["evaluate", "--dataset", "NOPE", "--data-dir", str(toy_data), "--out", str(tmp_path / "f")]) == 1
    err = capsys.readouterr().err.strip()
    assert "NOPE" in err and "splits.json" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "f").exists()
    # with --method ours the model defaults to the dataset's name: the missing dataset (or split) is named, not a
    # missing weights file "NOPE" (before 0.5.12: "cxreg evaluate: error: NOPE: weights file not found")
    splits = toy_data / "splits.json"
    for extra, want in ((["--dataset", "NOPE"], f"cxreg evaluate: error: {splits}: no dataset 'NOPE' (has ['TOY'])"),
                        (["--dataset", "TOY", "--split", "val"], f"cxreg evaluate: error: {splits}: TOY has no split 'val'")):
        assert main(["evaluate", "--method", "ours", "--data-dir", str(toy_data), "--out", str(tmp_path / "g")]
                    + extra) == 1
        assert capsys.readouterr().err.strip() == want
        assert not (tmp_path / "g").exists()



def test_evaluate_checks_the_split_of_own_data_and_of_universal_first(toy_data, tmp_path, capsys, monkeypatch):
    """A user's own folder (given by --data-dir or by $CXREG_DATA_DIR) has only a train split; universal needs
    the split in each dataset; both are named before any model is loaded (a missing model would be reported
    otherwise: --model none_such)."""
    own = tmp_path / "own"
    (own / "images").mkdir(parents=True)
    (own / "masks").mkdir()
    for k in range(3):
        m = lung_mask(64, (k - 1, 0))
        Image.fromarray((200 - 150 * m).astype(np.uint8)).save(own / "images" / f"c{k}.png")
        Image.fromarray((m * 255).astype(np.uint8)).save(own / "masks" / f"c{k}.png")
    monkeypatch.setenv("CXREG_DATA_DIR", str(own))
    assert main(["evaluate", "--split", "train", "--out", str(tmp_path / "e"), "--quiet"]) == 0
    assert json.loads((tmp_path / "e" / "summary.json").read_text())["n_pairs"] == 6
    for args, want in ((["--data-dir", str(own)], f"{own}: a folder of your own data has no 'test' split"),
                       ([], f"{own}: a folder of your own data has no 'test' split"),
                       (["--data-dir", str(toy_data), "--dataset", "universal"],
                        f"{toy_data / 'splits.json'}: no dataset 'JSRT' (has ['TOY'])")):
        assert main(["evaluate", "--method", "ours", "--model", "none_such", "--out", str(tmp_path / "f")] + args) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"cxreg evaluate: error: {want}") and len(err.splitlines()) == 1, err
        assert not (tmp_path / "f").exists()


@needs_shared
def test_identity_on_real_jsrt_sample(tmp_path):
    s = evaluate("identity", "JSRT", tmp_path / "j", max_pairs=50, progress=False)
    assert s["n_pairs"] == 50 and 0.6 < s["metrics"]["dsc"]["mean"] < 0.9 and s["metrics"]["jac"]["mean"] == 0


@pytest.mark.parametrize("args,msg", [
    (["register", "m.png", "f.png", "--out", "o", "--refine", "-3"], "argument --refine: expected a whole number >= 0, not -3"),
    (["register", "m.png", "f.png", "--out", "o", "--refine", "2.5"], "argument --refine: expected a whole number >= 0, not '2.5'"),
    (["evaluate", "--out", "o", "--max-pairs", "0"], "argument --max-pairs: expected a whole number >= 1, not 0"),
    (["evaluate", "--out", "o", "--spacing", "-1"], "argument --spacing: expected a finite number > 0, not -1"),
    (["evaluate", "--out", "o", "--spacing", "0"], "argument --spacing: expected a finite number > 0, not 0"),
    (["evaluate", "--out", "o", "--method", "foo"], "argument --method: invalid choice: 'foo' (choose from 'identity', "
                                                    "'elastix', 'syn', 'ours')"),
    (["benchmark", "--pairs", "0"], "argument --pairs: expected a whole number >= 1, not 0"),
])
def test_bad_option_values_are_one_line_usage_errors(tmp_path, capsys, args, msg):
    """argparse's own errors (a value of the wrong kind) are one line too, exit status 2, nothing written."""
    with pytest.raises(SystemExit) as e:
        main([a if a != "o" else str(tmp_path / "o") for a in args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == f"cxreg {args[0]}: error: {msg} (see cxreg {args[0]} --help)\n"
    assert not (tmp_path / "o").exists()


def test_method_names_are_case_blind_and_the_api_checks_its_numbers(toy_data, tmp_path, capsys):
    assert main(["evaluate", "--method", "Identity", "--dataset", "TOY", "--data-dir", str(toy_data),
                 "--out", str(tmp_path / "e"), "--quiet", "--max-pairs", "2"]) == 0
    assert json.loads((tmp_path / "e" / "summary.json").read_text())["method"] == "identity"
    for kw, msg in (({"max_pairs": 0}, "max_pairs must be a whole number >= 1"),
                    ({"spacing": (0.5, -1.0)}, "spacing must be two numbers > 0"),
                    ({"method": "ours"}, "choose from ['elastix', 'identity', 'ours', 'syn']")):
        with pytest.raises(ValueError, match=re.escape(msg)):
            evaluate(kw.pop("method", "identity"), "TOY", tmp_path / "x", data_dir=toy_data, size=64, progress=False, **kw)
    assert not (tmp_path / "x").exists()
