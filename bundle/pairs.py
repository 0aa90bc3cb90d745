# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""``cxreg pairs``: write the pairs CSV that ``cxreg register --pairs`` and the bundle's ``--pairs_csv`` read,
from a folder of images (and, optionally, their lung masks).

Two designs, both with the direction stated as ``cxreg register`` has it (``moving`` is warped onto ``fixed``):

* ``cxreg pairs DIR --out pairs.csv``: every ordered pair of the folder's images (n (n - 1) rows; each pair both
  ways, as our test splits are scored);
* ``cxreg pairs DIR --to ATLAS --out pairs.csv``: every image onto one fixed image (an atlas or a reference
  patient; ``ATLAS`` may lie outside ``DIR``), n rows.

``DIR`` is a folder of images (PNG, NIfTI, DICOM), or the own-data layout ``DIR/images/`` + ``DIR/masks/``
(docs/own-data.md); masks (``--masks MASKDIR``, else ``DIR/masks/`` when it exists) are matched to images by
file stem and written to the ``moving_mask`` / ``fixed_mask`` columns (``--no-masks``: none). An atlas from outside
``DIR`` needs ``--fixed-mask FILE`` when masks are used (its mask is not guessed by stem). Paths are written relative to the CSV's
folder (as :func:`bundle.io.read_pairs_csv` resolves them), so the CSV and the images can move together.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from .io import InputError, stem, write_text_atomic

__all__ = ["make_pairs", "write_pairs_csv", "add_parser"]


def _images(folder: Path, what: str) -> dict[str, Path]:
    from .owndata import _files

    if not folder.is_dir():
        raise InputError(f"{folder}: {what} folder not found")
    return _files(folder)


def make_pairs(data_dir, to=None, masks=None, fixed_mask=None, use_masks: bool = True) -> list[dict]:
    """The pairs (dicts moving, fixed[, moving_mask, fixed_mask]; absolute paths) of the folder ``data_dir``:
    all ordered pairs, or each image onto ``to``. ``masks``: a folder of masks matched by stem (default
    ``data_dir/masks`` when ``data_dir/images`` exists and it does too; none if not ``use_masks``). A mask
    folder must have a mask for every image it is used for. The ``to`` image's mask is ``fixed_mask`` if
    given, else its stem's in the mask folder when it is one of the folder's images; an ``to`` image from
    elsewhere needs ``fixed_mask`` when masks are used (its stem could name another image's mask). An
    :class:`InputError` naming the file otherwise."""
    d = Path(data_dir)
    img_dir = d / "images" if (d / "images").is_dir() else d
    imgs = _images(img_dir, "image")
    if masks is None and use_masks and img_dir != d and (d / "masks").is_dir():
        masks = d / "masks"
    if masks is not None and not use_masks:
        raise InputError(f"{masks}: --masks and --no-masks contradict each other; give one of them")
    msk = _images(Path(masks), "mask") if masks is not None else {}
    if masks is not None and not msk:
        raise InputError(f"{masks}: no mask files (PNG, NIfTI, DICOM) in this folder")
    fixed = fmask = None
    if fixed_mask is not None and to is None:
        raise InputError(f"{fixed_mask}: --fixed-mask is the mask of the --to image; give --to too")
    if to is not None:
        fixed = Path(to)
        if not fixed.is_file():
            raise InputError(f"{fixed}: fixed image not found")
        inside = any(p.resolve() == fixed.resolve() for p in imgs.values())
        imgs = {s: p for s, p in imgs.items() if p.resolve() != fixed.resolve()}
        if fixed_mask is not None:
            fmask = Path(fixed_mask)
            if not fmask.is_file():
                raise InputError(f"{fmask}: mask of the fixed image not found")
        elif msk and inside and stem(fixed) in msk:
            fmask = msk[stem(fixed)]
        elif msk:
            raise InputError(f"{fixed}: no mask for the fixed image (give --fixed-mask FILE, or --no-masks)"
                             if inside else f"{fixed}: not in {img_dir}, so its mask is not taken from {masks}: give "
                             "--fixed-mask FILE (or --no-masks)")
    if not imgs or (fixed is None and len(imgs) < 2):
        raise InputError(f"{img_dir}: needs {'an image' if fixed is not None else 'two images'} to pair "
                         f"(found {len(imgs)}; PNG, NIfTI or DICOM)")
    if msk:
        missing = [s for s in imgs if s not in msk]
        if missing:
            raise InputError(f"{imgs[missing[0]]}: no mask with stem {missing[0]!r} in {masks} ({len(missing)} "
                             "image(s) without one)")

    ab = os.path.abspath  # absolute, symbolic links kept as the user laid them out

    def row(mp: Path, fp: Path, mm: Path | None, fm: Path | None) -> dict:
        r = {"moving": ab(mp), "fixed": ab(fp)}
        if mm is not None or fm is not None:
            r.update(moving_mask=ab(mm) if mm else "", fixed_mask=ab(fm) if fm else "")
        return r

    if fixed is not None:
        return [row(p, fixed, msk.get(s), fmask) for s, p in imgs.items()]
    return [row(mp, fp, msk.get(m), msk.get(f)) for m, mp in imgs.items() for f, fp in imgs.items() if m != f]


def write_pairs_csv(pairs: list[dict], out, overwrite: bool = False) -> Path:
    """Write ``pairs`` as a CSV (paths relative to its folder where possible); refused if ``out`` exists
    (unless ``overwrite``); written whole or not at all."""
    out = Path(out)
    if out.is_dir():
        raise InputError(f"{out}: is a folder (give the CSV file to write)")
    if out.exists() and not overwrite:
        raise InputError(f"{out}: file exists (use --overwrite to replace it)")
    if not out.parent.resolve().is_dir():
        raise InputError(f"{out}: output folder {out.parent} not found")
    base = os.path.abspath(out.parent)

    def rel(p: str) -> str:
        if not p:
            return ""
        try:
            return os.path.relpath(p, base)
        except ValueError:  # another drive (Windows)
            return p

    cols = ["moving", "fixed"] + (["moving_mask", "fixed_mask"] if any("moving_mask" in p for p in pairs) else [])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for p in pairs:
        w.writerow({k: rel(p.get(k, "")) for k in cols})
    try:
        write_text_atomic(out, buf.getvalue())
    except OSError as e:
        raise InputError(f"{out}: cannot be written ({e.strerror or e})") from None
    return out


def _cmd_pairs(a) -> int:
    pairs = make_pairs(a.data_dir, to=a.to, masks=a.masks, fixed_mask=a.fixed_mask, use_masks=not a.no_masks)
    out = write_pairs_csv(pairs, a.out, overwrite=a.overwrite)
    if not a.quiet:
        kind = f"onto {a.to}" if a.to else "ordered pairs"
        masks = " with masks" if "moving_mask" in pairs[0] else ""
        print(f"wrote {len(pairs)} {kind}{masks} to {out} (cxreg register --pairs {out} --out OUT)")
    return 0


def add_parser(sub) -> None:
    """Register the ``pairs`` sub-command on the ``cxreg`` sub-parsers."""
    p = sub.add_parser("pairs", help="write a pairs CSV (all ordered pairs of a folder, or every image onto one "
                       "fixed image) for cxreg register --pairs")
    p.add_argument("data_dir", help="folder of images (PNG, NIfTI, DICOM), or DIR with images/ and masks/")
    p.add_argument("--out", required=True, help="CSV file to write (paths relative to its folder)")
    p.add_argument("--to", default=None, metavar="FIXED", help="register every image onto this fixed image "
                   "(atlas); default: all ordered pairs of the folder")
    p.add_argument("--masks", default=None, help="folder of lung masks matched to the images by file stem "
                   "(default: DIR/masks when DIR/images exists)")
    p.add_argument("--fixed-mask", default=None, help="lung mask of the --to image (needed when masks are used and "
                   "the --to image is not in DIR)")
    p.add_argument("--no-masks", action="store_true", help="leave the mask columns out (masks predicted)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CSV")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_pairs)
