"""cxreg pairs: pairs CSVs from a folder (all ordered pairs, or every image onto one fixed image)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bundle.cli import main, read_pairs_csv
from bundle.io import InputError
from bundle.pairs import make_pairs, write_pairs_csv

from .conftest import lung_mask


def _folder(root: Path, n: int = 3, masks: bool = True) -> Path:
    (root / "images").mkdir(parents=True)
    if masks:
        (root / "masks").mkdir()
    for k in range(n):
        m = lung_mask(64, shift=(k, -k))
        Image.fromarray((200 - 120 * m).astype(np.uint8)).save(root / "images" / f"p{k}.png")
        if masks:
            Image.fromarray(m * 255).save(root / "masks" / f"p{k}.png")
    (root / "images" / ".p0.png").write_bytes(b"macOS resource fork")  # hidden: not an image
    return root


def test_all_ordered_pairs_with_masks_round_trip(tmp_path, capsys):
    d = _folder(tmp_path / "data")
    out = tmp_path / "lists" / "pairs.csv"
    out.parent.mkdir()
    assert main(["pairs", str(d), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == (f"wrote 6 ordered pairs with masks to {out} "
                                               f"(cxreg register --pairs {out} --out OUT)")
    lines = out.read_text().splitlines()
    assert lines[0] == "moving,fixed,moving_mask,fixed_mask"
    assert lines[1] == "../data/images/p0.png,../data/images/p1.png,../data/masks/p0.png,../data/masks/p1.png"
    got = read_pairs_csv(out)  # what cxreg register --pairs reads: the same files, absolute
    want = make_pairs(d)
    assert len(got) == 6 and [Path(g[k]).resolve() for g, w in zip(got, want) for k in w] == [Path(w[k]) for w in want for k in w]
    assert [g["name"] for g in got] == [f"{Path(w['moving']).stem}__{Path(w['fixed']).stem}" for w in want]
    assert {(Path(g["moving"]).stem, Path(g["fixed"]).stem) for g in got} == \
        {(f"p{a}", f"p{b}") for a in range(3) for b in range(3) if a != b}
    assert all(Path(g["moving_mask"]).stem == Path(g["moving"]).stem for g in got)


def test_every_image_onto_one_fixed_image_then_register(tmp_path, models):
    d = _folder(tmp_path / "data")
    atlas = d / "images" / "p1.png"
    out = tmp_path / "atlas.csv"
    assert main(["pairs", str(d / "images"), "--to", str(atlas), "--masks", str(d / "masks"), "--out", str(out),
                 "--quiet"]) == 0
    pairs = read_pairs_csv(out)
    assert [(Path(p["moving"]).name, Path(p["fixed"]).name) for p in pairs] == [("p0.png", "p1.png"),
                                                                              ("p2.png", "p1.png")]
    assert all(Path(p["fixed_mask"]) == (d / "masks" / "p1.png") for p in pairs)
    res = tmp_path / "res"
    assert main(["register", "--pairs", str(out), "--out", str(res), "--model", str(models / "reg.pt"),
                 "--seg-model", str(models / "seg.pt"), "--quiet"]) == 0
    assert sorted(p.name for p in res.iterdir()) == ["p0__p1", "p2__p1", "summary.json"]
    m = json.loads((res / "p0__p1" / "metrics.json").read_text())
    assert 0.5 < m["dsc"] <= 1  # both masks came through the CSV
    # an atlas outside the folder, without masks: every image of the folder is moving
    Image.open(atlas).save(tmp_path / "atlas.png")
    pairs = make_pairs(d / "images", to=tmp_path / "atlas.png")
    assert len(pairs) == 3 and "moving_mask" not in pairs[0]
    # ... in the own-data layout its mask is not guessed from the mask folder (its stem could be another's)
    Image.open(atlas).save(tmp_path / "p2.png")  # an outside atlas whose stem names an image of the folder
    with pytest.raises(InputError, match=r"p2.png: not in .*images, so its mask is not taken from .*masks: give "
                                         r"--fixed-mask FILE \(or --no-masks\)"):
        make_pairs(d, to=tmp_path / "p2.png")
    pairs = make_pairs(d, to=tmp_path / "p2.png", fixed_mask=d / "masks" / "p1.png")
    assert len(pairs) == 3 and all(Path(p["fixed_mask"]).name == "p1.png" for p in pairs)
    assert [Path(p["moving_mask"]).name for p in pairs] == ["p0.png", "p1.png", "p2.png"]
    assert "moving_mask" not in make_pairs(d, to=tmp_path / "p2.png", use_masks=False)[0]
    # a fixed mask alone (no mask folder): the moving columns stay empty, read back as "no mask"
    out2 = tmp_path / "atlas2.csv"
    write_pairs_csv(make_pairs(d / "images", to=tmp_path / "atlas.png", fixed_mask=d / "masks" / "p1.png"), out2)
    back = read_pairs_csv(out2)
    assert len(back) == 3 and all("moving_mask" not in p and Path(p["fixed_mask"]).name == "p1.png" for p in back)


@pytest.mark.parametrize("case,msg", [
    ("no_dir", "{d}/nope: image folder not found"),
    ("one_image", "{d}/one/images: needs two images to pair (found 1; PNG, NIfTI or DICOM)"),
    ("missing_mask", "{d}/data/images/p2.png: no mask with stem 'p2' in {d}/data/masks (1 image(s) without one)"),
    ("no_atlas", "{d}/atlas.png: fixed image not found"),
    ("exists", "{d}/out.csv: file exists (use --overwrite to replace it)"),
    ("mask_without_to", "{d}/m.png: --fixed-mask is the mask of the --to image; give --to too"),
    ("no_mask_dir", "{d}/nomasks: mask folder not found"),
    ("empty_mask_dir", "{d}/emptymasks: no mask files (PNG, NIfTI, DICOM) in this folder"),
    ("masks_and_no_masks", "{d}/data/masks: --masks and --no-masks contradict each other; give one of them"),
])
def test_bad_inputs_give_one_line_and_no_csv(tmp_path, capsys, case, msg):
    d = _folder(tmp_path / "data")
    _folder(tmp_path / "one", n=1, masks=False)
    args = {"no_dir": [str(tmp_path / "nope")], "one_image": [str(tmp_path / "one")],
            "missing_mask": [str(d)], "no_atlas": [str(d), "--to", str(tmp_path / "atlas.png")],
            "exists": [str(d)], "mask_without_to": [str(d), "--fixed-mask", str(tmp_path / "m.png")],
            "no_mask_dir": [str(d), "--masks", str(tmp_path / "nomasks")],
            "empty_mask_dir": [str(d), "--masks", str(tmp_path / "emptymasks")],
            "masks_and_no_masks": [str(d), "--masks", str(d / "masks"), "--no-masks"]}[case]
    (tmp_path / "emptymasks").mkdir()
    out = tmp_path / "out.csv"
    if case == "missing_mask":
        (d / "masks" / "p2.png").unlink()
    if case == "exists":
        out.write_text("mine")
    capsys.readouterr()
    assert main(["pairs", *args, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "cxreg pairs: error: " + msg.format(d=tmp_path)
    assert (out.read_text() == "mine") if case == "exists" else not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_failed_write_keeps_the_old_csv_and_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    d = _folder(tmp_path / "data")
    out = tmp_path / "out.csv"
    out.write_text("mine")

    def full(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pathlib.Path.write_text", full)
    capsys.readouterr()
    assert main(["pairs", str(d), "--out", str(out), "--overwrite"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"cxreg pairs: error: {out}: cannot be written (No space left on device)"
    monkeypatch.undo()
    assert out.read_text() == "mine" and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_overwrite_replaces_and_a_folder_is_refused(tmp_path):
    d = _folder(tmp_path / "data", n=2, masks=False)
    out = tmp_path / "p.csv"
    out.write_text("old")
    write_pairs_csv(make_pairs(d), out, overwrite=True)
    assert out.read_text().splitlines() == ["moving,fixed", "data/images/p0.png,data/images/p1.png",
                                            "data/images/p1.png,data/images/p0.png"]
    with pytest.raises(InputError, match="is a folder"):
        write_pairs_csv(make_pairs(d), tmp_path)
