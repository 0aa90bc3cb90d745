# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Datasets: the on-disk layout, splits, cached tensors and pair datasets.

Layout of a data directory::

    <data_dir>/<DATASET>/images/<id>.png     grey image
    <data_dir>/<DATASET>/masks/<id>.png      0 background, 255 lung (both lungs, no heart)
    <data_dir>/splits.json                   {"JSRT": {"train": [...], "test": [...]}, ...}

The default ``data_dir`` is ``../shared/data`` relative to the repository root; set ``CXREG_DATA_DIR``
or pass ``data_dir`` to override it.

``dataset="universal"`` is the union of the three datasets (ids prefixed ``<DATASET>_``). A ``data_dir``
that is a user's own folder (``images/`` + optional ``masks/``) or CSV (:mod:`bundle.owndata`) has one split,
``train``, holding all its images; the dataset name is then ignored by :func:`load_split`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .io import InputError, load_image, load_mask, write_text_atomic
from .spatial import resize_image, resize_mask

__all__ = [
    "DATASETS",
    "check_split",
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
    "UNIVERSAL",
    "dataset_name",
    "write_split",
    "check_training_data",
]

DATASETS = ("JSRT", "MONT", "SHEN")
UNIVERSAL = "universal"  # the union of DATASETS
REPO_ROOT = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    """``$CXREG_DATA_DIR`` if set, else ``<repo root>/../shared/data``."""
    env = os.environ.get("CXREG_DATA_DIR")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    d = Path(data_dir) if data_dir else default_data_dir()
    if not d.is_dir():
        raise InputError(f"{d}: data directory not found (pass --data-dir, --data_dir in a bundle, or set "
                         f"CXREG_DATA_DIR)")
    return d


def load_splits(data_dir=None) -> dict:
    d = resolve_data_dir(data_dir)
    p = d / "splits.json"
    if not p.is_file():
        raise InputError(f"{d}: no images/ folder and no splits.json (give your own data as {d}/images/ with "
                         f"optional {d}/masks/, or a CSV with the columns image,mask; or our data layout with "
                         f"splits.json)")
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


def check_split(dataset: str, split: str = "test", data_dir=None) -> None:
    """:class:`InputError` naming the problem when ``split`` of ``dataset`` cannot be read from ``data_dir``
    (default :func:`default_data_dir`): a dataset or split that ``splits.json`` does not have (``universal``:
    each of :data:`DATASETS`), or another split than ``train`` of a user's own folder or CSV."""
    from .owndata import is_own_data

    data_dir = data_dir or default_data_dir()
    if is_own_data(data_dir):
        if split != "train":
            raise InputError(f"{data_dir}: a folder of your own data has no {split!r} split (all images train; "
                             f"validation is a seeded part of them)")
        return
    for ds in DATASETS if str(dataset).lower() == UNIVERSAL else [dataset]:
        split_ids(ds, split, data_dir)


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


def _load_any(data_dir, dataset: str, split: str, needs_masks: bool) -> CachedSplit:
    from .owndata import is_own_data, load_own_data, own_name

    if is_own_data(data_dir):
        check_split(dataset, split, data_dir)
        ids, images, masks = load_own_data(data_dir, needs_masks)
        return CachedSplit(own_name(data_dir), split, ids, images, masks)
    d = str(resolve_data_dir(data_dir))
    if str(dataset).lower() == UNIVERSAL:
        parts = [_load_full(d, ds, split) for ds in DATASETS]
        ids = [f"{p.dataset}_{i}" for p in parts for i in p.ids]
        return CachedSplit(UNIVERSAL, split, ids, torch.cat([p.images for p in parts]),
                           torch.cat([p.masks for p in parts]))
    return _load_full(d, dataset, split)


def load_split(dataset: str, split: str = "test", data_dir=None, size: int | None = None,
               needs_masks: bool = False) -> CachedSplit:
    """Load (and cache in memory) one split; ``size`` resizes (area for images, area+0.5 threshold for masks).

    ``dataset``: JSRT / MONT / SHEN, ``universal`` (their union), or ignored when ``data_dir`` is a user's own
    folder or CSV (then ``masks`` is None if it has none, unless ``needs_masks`` makes that an error).
    """
    full = _load_any(data_dir, dataset, split, needs_masks)
    if full.masks is None:
        return full if size is None else CachedSplit(full.dataset, split, full.ids, resize_image(full.images, size), None)
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


def train_val_ids(n: int, val_fraction: float = 0.1, seed: int = 0, min_val: int = 1) -> tuple[list[int], list[int]]:
    """Seeded split of ``range(n)`` into (train, validation) index lists; validation has at least ``min_val``
    images (registration uses 2: one validation pair needs two images)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(min_val, int(round(val_fraction * n))) if val_fraction > 0 else 0
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def seg_datalist(dataset: str, split: str = "train", data_dir=None, size: int | None = None, part: str = "all",
                 val_fraction: float = 0.1, seed: int = 0) -> list[dict]:
    """List of ``{"image": (1, S, S), "label": (1, S, S), "id": str}`` dicts for MONAI datasets.

    ``part``: ``"all"``, or ``"train"`` / ``"val"`` for a seeded split of ``split`` (validation is taken
    from the training images, never from the test split).
    """
    d = load_split(dataset, split, data_dir, size=size, needs_masks=True)
    idx = list(range(len(d)))
    if part in ("train", "val"):
        tr, va = train_val_ids(len(d), val_fraction, seed)
        idx = tr if part == "train" else va
    elif part != "all":
        raise ValueError(f"part must be all, train or val, not {part!r}")
    return [{"image": d.images[i], "label": d.masks[i], "id": d.ids[i]} for i in idx]


def dataset_name(data_dir=None, default: str = "JSRT") -> str:
    """The run's dataset name: ``default`` for our shared data, the folder/CSV name for a user's own data."""
    from .owndata import is_own_data, own_name

    return own_name(data_dir) if is_own_data(data_dir) else default


def write_split(output_dir, dataset: str, data_dir=None, val_fraction: float = 0.1, seed: int = 0,
                min_val: int = 1) -> Path:
    """Write the seeded train/validation ids of a run to ``<output_dir>/split.json`` (to repeat the run)."""
    from .owndata import is_own_data

    d = load_split(dataset, "train", data_dir)
    tr, va = train_val_ids(len(d), val_fraction, seed, min_val)
    if len(tr) < 1 or (min_val > 1 and len(tr) < 2):
        raise InputError(f"{data_dir or default_data_dir()}: {len(d)} images are too few to train on after "
                         f"{len(va)} for validation")
    own = is_own_data(data_dir)
    info = {"dataset": d.dataset, "data_dir": str(Path(data_dir).resolve()) if data_dir else str(default_data_dir()),
            "own_data": own, "seed": seed, "val_fraction": val_fraction,
            "preprocessing": ("grey / 255 (8-bit) or / max, zero-pad to a centred square, resample to 256 (area when "
                              "shrinking, bilinear when growing)"
                              if own else "as prepared by scripts/prepare_data.py (256 x 256 PNG)"),
            "train": [d.ids[i] for i in tr], "val": [d.ids[i] for i in va]}
    out = Path(output_dir)
    path = out / "split.json"
    if path.is_file() and any(out.glob("checkpoint_epoch=*.pt")):  # the run would resume: same data only
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        if (old.get("data_dir"), sorted(old.get("train", []) + old.get("val", []))) != (
                info["data_dir"], sorted(info["train"] + info["val"])):
            raise InputError(f"{out}: holds a run on other data ({old.get('data_dir')}, "
                             f"{len(old.get('train', [])) + len(old.get('val', []))} images) that training would "
                             f"resume; give another --output_dir or delete it")
    write_text_atomic(path, json.dumps(info, indent=1))
    return path


def check_training_data(data_dir, dataset: str, output_dir, needs_masks: bool = True, val_fraction: float = 0.1,
                        seed: int = 0, exit_on_error: bool = False, min_val: int = 1, model_path=None,
                        batch_size: int | None = None, init=None, kind: str | None = None) -> Path:
    """First step of every ``train.json``: read and check all training images and masks, then write the split.

    A bad layout or file stops here, before any output exists: with ``exit_on_error`` (the configs' default
    unless ``--debug True``) the process ends with status 1 and ``cxreg training: error: <file>: <problem>`` as
    the last line of stderr, instead of MONAI's long ``Failed to evaluate`` traceback.
    """
    try:
        from .owndata import is_own_data
        from .priors import SHIPPED, shipped_name, weights_path
        from .workflow import init_path, load_weights

        d = load_split(dataset, "train", data_dir, needs_masks=needs_masks)
        if is_own_data(data_dir):
            shipped = {weights_path(k, n).resolve() for k in ("segmentation", "autoencoder", "registration")
                       for n in SHIPPED}
            if shipped_name(dataset):  # its runs/ and models/ names are the shipped model's
                raise InputError(f"--dataset {dataset}: names a shipped model; with your own data give another "
                                 f"--dataset name (or leave it out)")
            if model_path and Path(model_path).resolve() in shipped:
                raise InputError(f"--model_path {model_path}: is a shipped model's weights file; with your own data "
                                 f"give another --model_path (or leave it out)")
            n_train = len(train_val_ids(len(d), val_fraction, seed, min_val)[0])
            if batch_size and n_train < int(batch_size):
                raise InputError(f"{data_dir}: {n_train} training images are fewer than one batch of "
                                 f"{batch_size}; add images or pass --batch_size {max(1, n_train)}")
        p = init_path(init, kind) if kind else None
        if p is not None:
            load_weights(p)  # readable, safe, a state dict
        return write_split(output_dir, dataset, data_dir, val_fraction, seed, min_val)
    except (InputError, OSError) as e:
        if not exit_on_error:
            raise
        raise SystemExit(f"cxreg training: error: {e}") from None
