# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Users' own data: a folder (``images/`` + optional ``masks/``) or a CSV (``image,mask``) as a training set.

Layout accepted by every bundle's ``train.json`` through ``--data_dir``::

    DIR/images/<stem>.png|.nii|.nii.gz|.dcm   grey images: 8- or 16-bit PNG (grey, RGB or RGBA), NIfTI, DICOM
    DIR/masks/<stem>.<any of these>           optional; lung = any value > 0, background 0 (binary only)

or ``FILE.csv`` with a header ``image,mask`` (``mask`` may be empty or absent; relative paths are relative to
the CSV's folder). Images and masks are matched by file stem (``a.nii.gz`` and ``a.png`` share stem ``a``).

Preprocessing (the same as our three datasets and as ``cxreg register``): grey values to [0, 1] (8-bit
ranges / 255, else / the image maximum); zero-padded to a centred square keeping the aspect ratio
(:func:`bundle.prepare.pad_to_square`); resampled to 256 x 256 with :func:`bundle.spatial.resize_image` (area
averaging when shrinking, bilinear when growing; masks: the same, then > 0.5).

No splits file is needed: training draws a seeded train/validation split of the images
(:func:`bundle.data.train_val_ids`) and writes it to ``<output_dir>/split.json``.
Bad layouts raise :class:`bundle.io.InputError` naming the file, before anything is written.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .io import IMAGE_SUFFIXES, MAX_SIDE, MIN_SIDE, InputError, load_image, stem

__all__ = ["SIZE", "is_own_data", "own_name", "scan_own_data", "load_own_data"]

SIZE = 256


def is_own_data(data_dir) -> bool:
    """A CSV file, or a folder with ``images/`` and no ``splits.json`` (the layout of our shared data)."""
    if data_dir is None:
        return False
    p = Path(data_dir)
    if p.suffix.lower() == ".csv":
        return True
    return p.is_dir() and (p / "images").is_dir() and not (p / "splits.json").is_file()


def own_name(data_dir) -> str:
    """Name of a user's data set (folder or CSV stem); shipped names get an ``own_`` prefix so that training
    on a folder called e.g. ``JSRT`` never overwrites shipped weights."""
    p = Path(data_dir).resolve()
    name = p.stem if p.suffix.lower() == ".csv" else p.name
    from .priors import shipped_name

    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "own"
    return f"own_{name}" if shipped_name(name) else name


def _files(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not (p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)):
            continue  # hidden files (e.g. macOS "._x.png") are not images
        s = stem(p)
        if s in out:
            raise InputError(f"{p}: same stem {s!r} as {out[s]} (each stem must name one image)")
        out[s] = p
    return out


def _from_csv(path: Path) -> list[tuple[str, Path, Path | None]]:
    if not path.is_file():
        raise InputError(f"{path}: CSV file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Excel) is not part of the header
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a UTF-8 CSV file ({e})") from None
    reader = csv.DictReader(text.splitlines())
    cols = [(c or "").strip().lower() for c in (reader.fieldnames or [])]
    reader.fieldnames = cols
    rows = list(reader)
    if "image" not in cols:
        raise InputError(f"{path}: needs the columns image,mask (found {cols})")
    items, seen = [], {}
    for n, row in enumerate(rows, start=2):
        extra = row.pop(None, None)
        if extra and any(str(v).strip() for v in extra):
            raise InputError(f"{path}: line {n}: more fields than the header's columns {cols}")
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if not row.get("image"):
            if any(row.values()):
                raise InputError(f"{path}: line {n}: a row without an image path")
            continue
        img = (path.parent / row["image"]).resolve()
        msk = (path.parent / row["mask"]).resolve() if row.get("mask") else None
        for f in (img, msk):
            if f is not None and not f.is_file():
                raise InputError(f"{path}: line {n}: {f}: file not found")
        s = stem(img)
        if s in seen:
            raise InputError(f"{img}: same stem {s!r} as {seen[s]} (each stem must name one image)")
        seen[s] = img
        items.append((s, img, msk))
    return items


def scan_own_data(data_dir, needs_masks: bool = False) -> list[tuple[str, Path, Path | None]]:
    """``[(stem, image path, mask path or None)]`` sorted by stem; checks the layout (not the pixels)."""
    d = Path(data_dir)
    if d.suffix.lower() == ".csv":
        items = _from_csv(d)
        where = str(d)
    else:
        if not (d / "images").is_dir():
            raise InputError(f"{d}: no images/ folder (expected {d}/images/ and optionally {d}/masks/, "
                             f"or a CSV with the columns image,mask)")
        imgs = _files(d / "images")
        masks = _files(d / "masks") if (d / "masks").is_dir() else {}
        for s, m in masks.items():
            if s not in imgs:
                raise InputError(f"{m}: mask has no image with stem {s!r} in {d / 'images'}")
        if masks:
            missing = [s for s in imgs if s not in masks]
            if missing:
                raise InputError(f"{imgs[missing[0]]}: image has no mask with stem {missing[0]!r} in {d / 'masks'} "
                                 f"({len(missing)} image(s) without a mask)")
        items = [(s, imgs[s], masks.get(s)) for s in sorted(imgs)]
        where = str(d / "images")
    if not items:
        raise InputError(f"{where}: no images ({', '.join(IMAGE_SUFFIXES)})")
    if len(items) < 2:
        raise InputError(f"{where}: only one image; training needs at least 2 (one for validation)")
    if needs_masks:
        no = [it for it in items if it[2] is None]
        if no:
            raise InputError(f"{no[0][1]}: no lung mask for this image; this bundle trains on masks "
                             f"(put them in masks/ with the same stems, or give a mask column in the CSV)")
    if any(it[2] is not None for it in items) and any(it[2] is None for it in items):
        no = next(it for it in items if it[2] is None)
        raise InputError(f"{no[1]}: no mask for this image while others have one (give all or none)")
    return items


def _binary_mask(path: Path) -> np.ndarray:
    arr = load_image(path)
    vals = np.unique(arr)
    if len(vals) > 2 or (len(vals) == 2 and vals[0] != 0):
        shown = ", ".join(f"{v:g}" for v in vals[:5]) + (", ..." if len(vals) > 5 else "")
        raise InputError(f"{path}: not a binary mask ({len(vals)} distinct values: {shown}; "
                         f"expected 0 for background and one value for lung)")
    return (arr > 0).astype(np.float32)


@lru_cache(maxsize=4)
def _load(key: str, size: int):
    from .register import _to_square, _unit

    items = scan_own_data(key)
    ids, imgs, masks = [], [], []
    for s, ip, mp in items:
        img = load_image(ip, min_side=MIN_SIDE, max_side=MAX_SIDE)
        t = _to_square(_unit(img, ip), size)[0][0]  # the same preprocessing as cxreg register
        if mp is not None:
            m = _binary_mask(mp)
            if m.shape != img.shape:
                raise InputError(f"{mp}: mask is {m.shape[0]}x{m.shape[1]} pixels but its image {ip.name} is "
                                 f"{img.shape[0]}x{img.shape[1]}")
            masks.append(_to_square(m, size, mask=True)[0][0])
        ids.append(s)
        imgs.append(t)
    return ids, torch.stack(imgs), (torch.stack(masks) if masks else None)


def load_own_data(data_dir, needs_masks: bool = False, size: int = SIZE):
    """``(ids, images (N, 1, S, S) in [0, 1], masks (N, 1, S, S) 0/1 or None)``, cached per process."""
    scan_own_data(data_dir, needs_masks)  # the layout errors first (cheap)
    return _load(str(Path(data_dir).resolve()), int(size))
