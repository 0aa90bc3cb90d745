"""Shared fixtures: small synthetic chest-like data sets that the tests make themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def lung_mask(size: int, shift: tuple[int, int] = (0, 0), scale: float = 1.0) -> np.ndarray:
    """Two ellipses ("lungs") on a size x size grid, 0/1 uint8."""
    r, c = np.mgrid[0:size, 0:size].astype(np.float32)
    m = np.zeros((size, size), bool)
    for cc in (0.32, 0.68):
        r0, c0 = size * 0.5 + shift[0], size * cc + shift[1]
        m |= ((r - r0) / (0.3 * size * scale)) ** 2 + ((c - c0) / (0.13 * size * scale)) ** 2 <= 1
    return m.astype(np.uint8)


def make_dataset(root: Path, name: str = "TOY", n: int = 5, size: int = 64, seed: int = 0) -> list[str]:
    """Write <root>/<name>/{images,masks}/<id>.png and add a split (all ids in train and test)."""
    rng = np.random.default_rng(seed)
    (root / name / "images").mkdir(parents=True, exist_ok=True)
    (root / name / "masks").mkdir(parents=True, exist_ok=True)
    ids = []
    for k in range(n):
        sh = (int(rng.integers(-4, 5)), int(rng.integers(-4, 5)))
        m = lung_mask(size, sh, float(rng.uniform(0.85, 1.1)))
        img = np.clip(200 - 120 * m + rng.normal(0, 5, m.shape), 0, 255).astype(np.uint8)
        i = f"img{k:03d}"
        Image.fromarray(img).save(root / name / "images" / f"{i}.png")
        Image.fromarray(m * 255).save(root / name / "masks" / f"{i}.png")
        ids.append(i)
    sp = root / "splits.json"
    splits = json.loads(sp.read_text()) if sp.exists() else {}
    splits[name] = {"train": ids, "test": ids}
    sp.write_text(json.dumps(splits))
    return ids


@pytest.fixture
def toy_data(tmp_path) -> Path:
    d = tmp_path / "data"
    make_dataset(d, "TOY", n=5, size=64)
    return d


needs_shared = pytest.mark.skipif(not (SHARED_DATA / "splits.json").exists(), reason="../shared/data not present")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Untrained but valid registration and segmentation model files (shapes and files, not accuracy)."""
    import torch

    from bundle.networks import LungSegNet, MultiScaleRegNet
    from bundle.registration import RegSettings

    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    st = RegSettings(work_size=32, attention=True, affine=True, integrate=True)
    torch.save({"model": MultiScaleRegNet().state_dict(), "settings": st.__dict__}, d / "reg.pt")
    torch.save(LungSegNet(work_size=128).state_dict(), d / "seg.pt")
    return d


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global random state (torch, numpy, random), so a test's random inputs do
    not depend on which tests ran before it."""
    import random

    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
