"""scripts/prepare_data.py on small synthetic files written in the official distributions' formats."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from bundle.io import InputError
from bundle.prepare import prepare

from .conftest import REPO


def _ellipse(h, w, r0, c0, rr, rc):
    r, c = np.mgrid[0:h, 0:w]
    return ((r - r0) / rr) ** 2 + ((c - c0) / rc) ** 2 <= 1


def _jsrt(src, i, seed):
    # 2048x2048 12-bit big-endian raw; lungs have HIGH raw values (they are dark once displayed)
    rng = np.random.default_rng(seed)
    left = _ellipse(1024, 1024, 500, 300, 300, 130)
    right = _ellipse(1024, 1024, 500, 720, 300, 130)
    heart = _ellipse(1024, 1024, 700, 520, 150, 150) & ~left & ~right
    lung2048 = np.kron(left | right, np.ones((2, 2), bool))
    raw = np.where(lung2048, 3500, 800).astype(np.uint16) + rng.integers(0, 50, (2048, 2048)).astype(np.uint16)
    raw.astype(">u2").tofile(src / f"{i}.IMG")
    for name, m in (("left lung", left), ("right lung", right), ("heart", heart)):
        d = src / "scr" / "fold1" / "masks" / name
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((m * 255).astype(np.uint8)).convert("P").save(d / f"{i}.gif")


def test_jsrt(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _jsrt(src, "JPCLN001", 0)
    _jsrt(src, "JPCNN002", 1)
    (src / "JPCNN003.IMG").write_bytes(b"\0" * 100)  # no masks: skipped, not read
    out = tmp_path / "data"
    r = subprocess.run([sys.executable, "scripts/prepare_data.py", "--dataset", "JSRT", "--source", str(src),
                        "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    img = np.asarray(Image.open(out / "JSRT" / "images" / "JPCLN001.png"))
    m = np.asarray(Image.open(out / "JSRT" / "masks" / "JPCLN001.png"))
    assert img.shape == m.shape == (256, 256) and img.dtype == np.uint8
    assert set(np.unique(m)) == {0, 255}
    expect = _ellipse(256, 256, 500 / 4, 300 / 4, 300 / 4, 130 / 4)  # one lung at 256x256
    assert m[125, 75] == 255 and m[125, 180] == 255  # both lungs merged
    assert m[175, 130] == 0  # the heart is not lung
    assert abs(int((m > 0).sum()) - 2 * int(expect.sum())) < 0.03 * 2 * expect.sum()
    assert img[m > 0].mean() < 80 and img[m == 0].mean() > 170  # inverted: lungs dark
    splits = json.loads((out / "splits.json").read_text())
    assert sorted(splits["JSRT"]["train"] + splits["JSRT"]["test"]) == ["JPCLN001", "JPCNN002"]


def test_montgomery_pads_to_square(tmp_path):
    src = tmp_path / "MontgomerySet"
    for d in ("CXR_png", "ManualMask/leftMask", "ManualMask/rightMask"):
        (src / d).mkdir(parents=True)
    h, w = 400, 320  # portrait, like 4892 x 4020
    left = _ellipse(h, w, 200, 90, 120, 50)
    right = _ellipse(h, w, 200, 230, 120, 50)
    img = np.where(left | right, 500, 3000).astype(np.uint16)  # 12-bit values in a 16-bit PNG
    Image.fromarray(img).save(src / "CXR_png" / "MCUCXR_0001_0.png")
    Image.fromarray((left * 255).astype(np.uint8)).save(src / "ManualMask/leftMask/MCUCXR_0001_0.png")
    Image.fromarray((right * 255).astype(np.uint8)).save(src / "ManualMask/rightMask/MCUCXR_0001_0.png")
    prepare("MONT", src, tmp_path / "data")
    a = np.asarray(Image.open(tmp_path / "data/MONT/images/MCUCXR_0001_0.png"))
    m = np.asarray(Image.open(tmp_path / "data/MONT/masks/MCUCXR_0001_0.png"))
    assert a.shape == (256, 256)
    band = (400 - 320) // 2 * 256 // 400  # black padding columns on each side
    assert a[:, : band - 1].max() == 0 and a[:, -band + 1 :].max() == 0
    assert a[128, 128] == round(3000 / (4095 / 255))  # 12-bit scaled to 8-bit
    assert m[128, band + 90 * 256 // 400] == 255 and m[128, 128] == 0


def test_shenzhen_and_missing_masks(tmp_path):
    src = tmp_path / "ChinaSet"
    (src / "CXR_png").mkdir(parents=True)
    (src / "mask").mkdir()
    for k in (1, 2):
        i = f"CHNCXR_000{k}_0"
        lung = _ellipse(300, 300, 150, 90, 90, 40) | _ellipse(300, 300, 150, 210, 90, 40)
        rgb = np.stack([np.where(lung, 40, 200).astype(np.uint8)] * 3, -1)
        Image.fromarray(rgb).save(src / "CXR_png" / f"{i}.png")
        if k == 1:
            Image.fromarray((lung * 255).astype(np.uint8)).save(src / "mask" / f"{i}_mask.png")
    assert prepare("SHEN", src, tmp_path / "data")["images"] == 1
    assert not (tmp_path / "data/SHEN/images/CHNCXR_0002_0.png").exists()
    with pytest.raises(InputError, match="already exists"):
        prepare("SHEN", src, tmp_path / "data")
    assert prepare("SHEN", src, tmp_path / "data", overwrite=True)["images"] == 1


def test_empty_source_is_refused_without_output(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(InputError, match="no JSRT image"):
        prepare("JSRT", tmp_path / "src", tmp_path / "data")
    assert [p.name for p in (tmp_path / "data").iterdir()] == []
