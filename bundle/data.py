# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Datasets: the on-disk layout, splits, cached tensors and pair datasets.

Layout of a data directory::

    <data_dir>/<DATASET>/images/<id>.png     grey image
    <data_dir>/<DATASET>/masks/<id>.png      0 background, 255 lung (both lungs, no heart)
    <data_dir>/splits.json                   {"JSRT": {"train": [...], "test": [...]}, ...}

The default ``data_dir`` is ``../shared/data`` relative to the repository root; set ``CXREG_DATA_DIR``
or pass ``data_dir`` to override it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .io import InputError, load_image, load_mask
from .spatial import resize_image, resize_mask

__all__ = [
    "DATASETS",
    "REPO_ROOT",
    "default_data_dir",
    "resolve_data_dir",
    "load_splits",
    "split_ids",
    "CachedSplit",
    "load_split",
    "all_ordered_pairs",
    "random_pairs",
    "sample_pairs",
    "PairDataset",
    "train_val_ids",
    "seg_datalist",
    "RandomPairDataset",
]

DATASETS = ("JSRT", "MONT", "SHEN")
REPO_ROOT = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    """``$CXREG_DATA_DIR`` if set, else ``<repo root>/../shared/data``."""
    env = os.environ.get("CXREG_DATA_DIR")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    d = Path(data_dir) if data_dir else default_data_dir()
    if not d.is_dir():
        raise InputError(f"{d}: data directory not found (pass --data-dir or set CXREG_DATA_DIR)")
    return d


def load_splits(data_dir=None) -> dict:
    d = resolve_data_dir(data_dir)
    p = d / "splits.json"
    if not p.is_file():
        raise InputError(f"{p}: splits file not found")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: not valid JSON ({e})") from None


def split_ids(dataset: str, split: str = "test", data_dir=None) -> list[str]:
    """Sorted ids of one split of one dataset."""
    splits = load_splits(data_dir)
    if dataset not in splits:
        raise InputError(f"{resolve_data_dir(data_dir) / 'splits.json'}: no dataset {dataset!r} (has {sorted(splits)})")
    if split not in splits[dataset]:
        raise InputError(f"{resolve_data_dir(data_dir) / 'splits.json'}: {dataset} has no split {split!r}")
    return sorted(splits[dataset][split])


@dataclass
class CachedSplit:
    """All images and masks of one split, in memory.

    Attributes:
        ids: image ids, sorted.
        images: (N, 1, S, S) float32 in [0, 1] (grey value / 255).
        masks: (N, 1, S, S) float32 of 0/1.
    """

    dataset: str
    split: str
    ids: list[str]
    images: torch.Tensor
    masks: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)


@lru_cache(maxsize=16)
def _load_full(data_dir: str, dataset: str, split: str) -> CachedSplit:
    ids = split_ids(dataset, split, data_dir)
    root = Path(data_dir) / dataset
    imgs, masks = [], []
    for i in ids:
        img = load_image(root / "images" / f"{i}.png")
        msk = load_mask(root / "masks" / f"{i}.png")
        if img.shape != msk.shape:
            raise InputError(f"{root / 'masks' / (i + '.png')}: mask shape {msk.shape} != image shape {img.shape}")
        imgs.append(torch.from_numpy(img / 255.0))
        masks.append(torch.from_numpy(msk.astype(np.float32)))
    shapes = {tuple(t.shape) for t in imgs}
    if len(shapes) != 1:
        raise InputError(f"{root}: images have different sizes {sorted(shapes)}; prepare them with scripts/prepare_data.py")
    return CachedSplit(dataset, split, ids, torch.stack(imgs)[:, None].float(), torch.stack(masks)[:, None])


def load_split(dataset: str, split: str = "test", data_dir=None, size: int | None = None) -> CachedSplit:
    """Load (and cache in memory) one split; ``size`` resizes (area for images, area+0.5 threshold for masks)."""
    full = _load_full(str(resolve_data_dir(data_dir)), dataset, split)
    if size is None or size == full.images.shape[-1]:
        return full
    return CachedSplit(dataset, split, full.ids, resize_image(full.images, size), resize_mask(full.masks, size))


def all_ordered_pairs(n: int) -> list[tuple[int, int]]:
    """All (moving, fixed) index pairs with moving != fixed: n * (n - 1) pairs."""
    return [(m, f) for m in range(n) for f in range(n) if m != f]


def random_pairs(n: int, count: int, seed: int = 0) -> list[tuple[int, int]]:
    """``count`` seeded random ordered pairs with moving != fixed (with replacement across pairs)."""
    rng = np.random.default_rng(seed)
    m = rng.integers(0, n, size=count)
    f = (m + rng.integers(1, n, size=count)) % n  # uniform over the n - 1 others
    return list(zip(m.tolist(), f.tolist()))


def sample_pairs(n: int, max_pairs: int | None = None, seed: int = 0) -> list[tuple[int, int]]:
    """All ordered pairs, or a seeded sample of ``max_pairs`` of them without replacement (in order)."""
    pairs = all_ordered_pairs(n)
    if max_pairs is None or max_pairs >= len(pairs):
        return pairs
    idx = np.sort(np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False))
    return [pairs[i] for i in idx]


class PairDataset(torch.utils.data.Dataset):
    """Fixed list of (moving, fixed) pairs over a :class:`CachedSplit`.

    Items are dicts with ``moving``, ``fixed`` (1, S, S) images, ``moving_mask``, ``fixed_mask``
    (1, S, S) 0/1 masks, ``image`` = cat(moving, fixed) (2, S, S), and ``moving_id``, ``fixed_id``.
    """

    def __init__(self, data: CachedSplit, pairs: list[tuple[int, int]]):
        self.data, self.pairs = data, list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        m, f = self.pairs[i]
        d = self.data
        return {
            "moving": d.images[m],
            "fixed": d.images[f],
            "moving_mask": d.masks[m],
            "fixed_mask": d.masks[f],
            "image": torch.cat([d.images[m], d.images[f]], 0),
            "moving_id": d.ids[m],
            "fixed_id": d.ids[f],
        }


class RandomPairDataset(PairDataset):
    """``length`` seeded random ordered pairs, redrawn each epoch by :meth:`set_epoch` (seed + epoch)."""

    def __init__(self, data: CachedSplit, length: int, seed: int = 0):
        self.length, self.seed = int(length), int(seed)
        super().__init__(data, random_pairs(len(data), self.length, self.seed))

    def set_epoch(self, epoch: int) -> None:
        self.pairs = random_pairs(len(self.data), self.length, self.seed + int(epoch))


def train_val_ids(n: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """Seeded split of ``range(n)`` into (train, validation) index lists; validation is never empty."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(val_fraction * n))) if val_fraction > 0 else 0
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def seg_datalist(dataset: str, split: str = "train", data_dir=None, size: int | None = None, part: str = "all",
                 val_fraction: float = 0.1, seed: int = 0) -> list[dict]:
    """List of ``{"image": (1, S, S), "label": (1, S, S), "id": str}`` dicts for MONAI datasets.

    ``part``: ``"all"``, or ``"train"`` / ``"val"`` for a seeded split of ``split`` (validation is taken
    from the training images, never from the test split).
    """
    d = load_split(dataset, split, data_dir, size=size)
    idx = list(range(len(d)))
    if part in ("train", "val"):
        tr, va = train_val_ids(len(d), val_fraction, seed)
        idx = tr if part == "train" else va
    elif part != "all":
        raise ValueError(f"part must be all, train or val, not {part!r}")
    return [{"image": d.images[i], "label": d.masks[i], "id": d.ids[i]} for i in idx]
