# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Convert the official JSRT / Montgomery / Shenzhen downloads into cxreg's data layout.

Input layouts (searched recursively under ``source``):

* JSRT: ``<id>.IMG`` (2048 x 2048, 12-bit, big-endian, headerless; larger values are darker) and the
  SCR masks ``.../left lung/<id>.gif`` and ``.../right lung/<id>.gif`` (1024 x 1024). The heart is not used.
* MONT: ``CXR_png/<id>.png`` and ``ManualMask/leftMask/<id>.png``, ``ManualMask/rightMask/<id>.png``.
* SHEN: ``CXR_png/<id>.png`` and ``<id>_mask.png`` (anywhere); images without a mask are skipped.

Processing (the same as the source repository of our data, see ../shared/data/README.md):
grey values to 8 bits (JSRT: ``255 * (1 - raw / 4095)``; 16-bit PNG: divided by 257, or by 4095/255 when
the maximum is <= 4095); RGB to grey; left + right lung merged; zero-padding to a square with the image
centred (keeps the aspect ratio); area (box) down-sampling to ``size``; masks down-sampled the same
way and thresholded at 0.5 to 0/255. Writes ``<out>/<DATASET>/{images,masks}/<id>.png`` and adds a seeded
80/20 ``train``/``test`` split to ``<out>/splits.json`` unless the dataset already has one there.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from .io import InputError, atomic_dir

__all__ = ["prepare", "read_jsrt_img", "pad_to_square", "downsample"]

JSRT_SHAPE = (2048, 2048)


def read_jsrt_img(path: Path) -> np.ndarray:
    """JSRT ``.IMG``: 2048 x 2048 big-endian uint16 with 12-bit values, returned as float 0..255 (lungs dark)."""
    raw = np.fromfile(path, dtype=">u2")
    if raw.size != JSRT_SHAPE[0] * JSRT_SHAPE[1]:
        raise InputError(f"{path}: expected {JSRT_SHAPE[0]}x{JSRT_SHAPE[1]} 16-bit values, found {raw.size}")
    raw = np.clip(raw.reshape(JSRT_SHAPE).astype(np.float32), 0, 4095)
    return 255.0 * (1.0 - raw / 4095.0)


def _read_png_grey(path: Path) -> np.ndarray:
    try:
        im = Image.open(path)
        im.load()
    except Exception as e:
        raise InputError(f"{path}: cannot be read as an image ({e})") from None
    arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    arr = arr.astype(np.float32)
    if np.asarray(im).dtype == np.uint16 or im.mode.startswith("I"):
        arr = arr / (4095.0 / 255.0) if arr.max() <= 4095 else arr / 257.0
    return arr


def _read_mask(path: Path) -> np.ndarray:
    arr = np.asarray(Image.open(path).convert("L"))
    return arr > 0


def pad_to_square(arr: np.ndarray, return_offsets: bool = False):
    """Zero-pad an (H, W) array to max(H, W) square, image centred (extra pixel after).

    With ``return_offsets`` also returns the (top, left) position of the image in the square.
    """
    h, w = arr.shape
    s = max(h, w)
    top, left = (s - h) // 2, (s - w) // 2
    out = np.zeros((s, s), dtype=arr.dtype)
    out[top : top + h, left : left + w] = arr
    return (out, (top, left)) if return_offsets else out


def downsample(arr: np.ndarray, size: int) -> np.ndarray:
    """Box (area) resampling of a square float array to (size, size)."""
    if arr.shape == (size, size):
        return arr.astype(np.float32)
    return np.asarray(Image.fromarray(arr.astype(np.float32), mode="F").resize((size, size), Image.BOX))


def _find(source: Path, pattern: str) -> list[Path]:
    return sorted(p for p in source.rglob(pattern) if p.is_file())


def _jsrt_items(source: Path):
    imgs = {p.stem: p for p in _find(source, "*.IMG")} | {p.stem: p for p in _find(source, "*.img")}
    gifs = _find(source, "*.gif")
    left = {p.stem: p for p in gifs if p.parent.name.lower() == "left lung"}
    right = {p.stem: p for p in gifs if p.parent.name.lower() == "right lung"}
    for i in sorted(imgs):
        if i not in left or i not in right:
            continue  # no SCR masks for this image
        yield i, read_jsrt_img(imgs[i]), [left[i], right[i]]


def _mont_items(source: Path):
    masks = _find(source, "*.png")
    left = {p.stem: p for p in masks if p.parent.name == "leftMask"}
    right = {p.stem: p for p in masks if p.parent.name == "rightMask"}
    for p in _find(source, "*.png"):
        if p.parent.name != "CXR_png" or p.stem not in left or p.stem not in right:
            continue
        yield p.stem, _read_png_grey(p), [left[p.stem], right[p.stem]]


def _shen_items(source: Path):
    masks = {p.name[: -len("_mask.png")]: p for p in _find(source, "*_mask.png")}
    for p in _find(source, "*.png"):
        if p.parent.name != "CXR_png" or p.stem not in masks:
            continue
        yield p.stem, _read_png_grey(p), [masks[p.stem]]


READERS = {"JSRT": _jsrt_items, "MONT": _mont_items, "SHEN": _shen_items}


def prepare(dataset: str, source, out, size: int = 256, overwrite: bool = False, test_fraction: float = 0.2,
            seed: int = 0) -> dict:
    """Convert one dataset; returns ``{"images": n}``. Writes atomically (temporary folder, then rename)."""
    if dataset not in READERS:
        raise InputError(f"unknown dataset {dataset!r}: choose from {sorted(READERS)}")
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise InputError(f"{source}: source folder not found")
    dest = out / dataset
    if dest.exists() and not overwrite:
        raise InputError(f"{dest}: already exists (use --overwrite to replace it)")
    ids = []
    with atomic_dir(dest) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        for i, img, mask_paths in READERS[dataset](source):
            mask = np.zeros(img.shape if dataset != "JSRT" else mask_shape(mask_paths[0]), dtype=bool)
            for mp in mask_paths:
                m = _read_mask(mp)
                if m.shape != mask.shape:
                    raise InputError(f"{mp}: mask size {m.shape[::-1]} differs from {mask.shape[::-1]}")
                mask |= m
            if dataset != "JSRT" and mask.shape != img.shape:
                raise InputError(f"{mask_paths[0]}: mask size {mask.shape} differs from its image {img.shape}")
            img8 = np.clip(np.rint(downsample(pad_to_square(img), size)), 0, 255).astype(np.uint8)
            m8 = (downsample(pad_to_square(mask.astype(np.float32)), size) > 0.5).astype(np.uint8) * 255
            Image.fromarray(img8).save(tmp / "images" / f"{i}.png")
            Image.fromarray(m8).save(tmp / "masks" / f"{i}.png")
            ids.append(i)
        if not ids:
            raise InputError(f"{source}: no {dataset} image with its mask(s) found (see `cxreg prepare-data --help`)")
    _add_split(out / "splits.json", dataset, ids, test_fraction, seed)
    return {"images": len(ids)}


def mask_shape(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size[::-1]


def _add_split(path: Path, dataset: str, ids: list[str], test_fraction: float, seed: int) -> None:
    splits = json.loads(path.read_text()) if path.is_file() else {}
    have = set(ids)
    if dataset in splits and set(splits[dataset].get("train", []) + splits[dataset].get("test", [])) <= have:
        return
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    n_test = max(1, int(round(test_fraction * len(ids))))
    test = sorted(ids[j] for j in order[:n_test])
    train = sorted(ids[j] for j in order[n_test:])
    splits[dataset] = {"train": train, "test": test}
    path.write_text(json.dumps(splits, indent=1))
