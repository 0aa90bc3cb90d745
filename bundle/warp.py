# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""``cxreg warp``: apply a saved ``ddf.nii.gz`` (written by ``cxreg register``) to another image or label map of
the moving image -- a second exposure, a heart or clavicle segmentation, a multi-label atlas.

Direction (as ``cxreg register``): the field lives on the **fixed** grid; each fixed point p takes the moving
image's value at the physical point p + ddf(p). So the output has the ddf's grid (the fixed image's size, origin,
spacing and direction) and the input must be on the moving image's grid (same size and, for NIfTI/DICOM, the same
geometry as the moving image that was registered). Grey images are resampled linearly; ``labels=True`` uses the
nearest neighbour and keeps the integer labels (no label is blended into another). Outside the moving image a
grey image repeats its border value (as ``cxreg register``'s warped image) and a label map is 0 (as its warped mask).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .io import (InputError, atomic_file, check_output_file, first_line, image_shape, is_nifti, load_image,
                 write_nifti)

__all__ = ["warp_file", "read_ddf", "apply_ddf", "moving_geometry", "add_parser"]

_OUT_TYPES = (".png", ".nii", ".nii.gz")


def read_ddf(path: str | os.PathLike):
    """(vectors (H, W, 2) float32 physical (x, y) displacements, origin (2,), spacing (2,), direction (2, 2)) of a
    2D ITK displacement field file; :class:`InputError` naming the file when it is not one."""
    import itk

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: displacement field not found")
    if not is_nifti(path):
        raise InputError(f"{path}: not a displacement field (expected the .nii.gz written by cxreg register)")
    try:
        im = itk.imread(str(path))
    except Exception as e:
        raise InputError(f"{path}: cannot be read as a displacement field ({first_line(e)})") from None
    arr = np.asarray(itk.array_from_image(im), dtype=np.float32)
    if im.GetImageDimension() != 2 or arr.ndim != 3 or arr.shape[-1] != 2:
        raise InputError(f"{path}: not a 2D displacement field (expected a 2-component vector image as written by "
                         f"cxreg register, got an array of shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise InputError(f"{path}: displacement field has NaN or infinite vectors")
    return (arr, np.array(im.GetOrigin(), dtype=np.float64), np.array(im.GetSpacing(), dtype=np.float64),
            np.asarray(itk.array_from_matrix(im.GetDirection()), dtype=np.float64))


def apply_ddf(moving: np.ndarray, moving_geometry, ddf: np.ndarray, fixed_geometry, labels: bool = False) -> np.ndarray:
    """Resample ``moving`` (H_m, W_m) onto the field's grid: out[p] = moving(p + ddf[p]) in physical space.

    ``*_geometry`` = (origin (2,), spacing (2,), direction (2, 2)) in ITK's (x, y) order; ``ddf`` (H, W, 2)
    physical (x, y) displacements. Linear interpolation with the border value repeated outside, or with ``labels`` nearest neighbour and 0 outside.
    Returns (H, W) float64 (integers with ``labels``).
    """
    from scipy.ndimage import map_coordinates

    fo, fs, fd = fixed_geometry
    mo, ms, md = moving_geometry
    h, w = ddf.shape[:2]
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    phys = fo + (np.stack([cc, rr], -1) * fs) @ fd.T + ddf  # moving point of each fixed pixel, (x, y)
    idx = ((phys - mo) @ np.linalg.inv(md).T) / ms          # continuous (x, y) index of the moving image
    coords = np.stack([idx[..., 1], idx[..., 0]])            # (row, col) for map_coordinates
    order = 0 if labels else 1
    if labels:  # nearest neighbour by rounding half up, so that a field of whole pixels moves labels exactly
        coords = np.floor(coords + 0.5)
    return map_coordinates(np.asarray(moving, dtype=np.float64), coords, order=order,
                           mode="constant" if labels else "nearest", cval=0.0)


def _registered_moving(ddf_path: Path) -> tuple[Path | None, tuple[int, int] | None]:
    """The moving image ``cxreg register`` computed ``ddf_path`` for, if it still exists, and its size (rows,
    cols; recorded since 0.5.7), from the metrics.json beside the field; (None, None) without one."""
    try:
        info = json.loads((ddf_path.parent / "metrics.json").read_text())
    except (OSError, ValueError):
        return None, None
    if not isinstance(info, dict):
        return None, None
    p = Path(info["moving"]) if isinstance(info.get("moving"), str) else None
    shape = info.get("moving_shape")
    shape = tuple(int(n) for n in shape) if isinstance(shape, list) and len(shape) == 2 else None
    return (p if p is not None and p.is_file() else None), shape


def moving_geometry(moving: Path, ddf_path: Path, shape):
    """The geometry to read ``moving`` with: its own (NIfTI/DICOM) or, for a PNG, that of the registered moving
    image (a PNG mask of a DICOM moving image lies on the DICOM's grid). When the registered moving image is known,
    the input must have its size and, if both carry one, its geometry; otherwise an :class:`InputError`."""
    from .register import _itk_geometry

    own = _itk_geometry(moving, shape)
    reg, recorded = _registered_moving(ddf_path)
    if reg is None:  # the registered moving image is gone (or was named relative to another folder before 0.5.7)
        if recorded and tuple(shape) != recorded:
            raise InputError(f"{moving}: image is {shape[0]}x{shape[1]} pixels, but {ddf_path} was computed for a "
                             f"moving image of {recorded[0]}x{recorded[1]}; warp images on the moving image's grid")
        return own
    want = tuple(n for n in image_shape(reg) if n > 1)[:2]
    if want and tuple(shape) != want:
        raise InputError(f"{moving}: image is {shape[0]}x{shape[1]} pixels, but {ddf_path} was computed for the "
                         f"moving image {reg} of {want[0]}x{want[1]}; warp images on the moving image's grid")
    reg_geo = _itk_geometry(reg, shape)
    if moving.suffix.lower() == ".png":
        return reg_geo
    if not all(np.allclose(a, b, atol=1e-4) for a, b in zip(own, reg_geo)):
        raise InputError(f"{moving}: its origin, spacing or direction differ from those of the registered moving "
                         f"image {reg}; warp images on the moving image's grid")
    return own


def warp_file(moving: str | os.PathLike, ddf: str | os.PathLike, out: str | os.PathLike, labels: bool = False,
              overwrite: bool = False) -> Path:
    """Warp the image or label map ``moving`` with ``ddf`` (a ``cxreg register`` ``ddf.nii.gz``) onto the fixed grid
    and write ``out`` (.png or .nii/.nii.gz, written atomically: nothing is left behind on error).

    PNG output: grey values rounded to the input's 8 or 16 bits (the input must hold whole numbers from 0 to
    65535; write a float image to .nii.gz); labels as uint8 (uint16 above 255). NIfTI output: float32
    (uint8/uint16 with ``labels``) with the fixed image's origin, spacing and direction.
    """
    moving, ddf, out = Path(moving), Path(ddf), Path(out)
    check_output_file(out, overwrite, _OUT_TYPES, ".png, .nii or .nii.gz")
    vec, fo, fs, fd = read_ddf(ddf)
    img = load_image(moving)
    whole = np.isfinite(img).all() and np.array_equal(img, np.rint(img)) and img.min() >= 0 and img.max() <= 65535
    if labels and not whole:
        raise InputError(f"{moving}: not a label map (--labels needs whole numbers from 0 to 65535)")
    if not np.isfinite(img).all():
        raise InputError(f"{moving}: image has NaN or infinite values")
    to_png = out.name.lower().endswith(".png")
    if to_png and not whole:
        raise InputError(f"{moving}: values are not whole numbers from 0 to 65535, so a PNG would change them "
                         f"(write {out.name.rsplit('.', 1)[0]}.nii.gz instead)")
    res = apply_ddf(img, moving_geometry(moving, ddf, img.shape), vec, (fo, fs, fd), labels=labels)
    if labels:
        res = np.rint(res).astype(np.uint8 if res.max() <= 255 else np.uint16)
    elif to_png:
        dt = np.uint16 if img.max() > 255 else np.uint8
        res = np.clip(np.rint(res), 0, np.iinfo(dt).max).astype(dt)
    else:
        res = res.astype(np.float32)
    try:
        with atomic_file(out) as tmp:
            if to_png:
                from PIL import Image

                Image.fromarray(res).save(tmp, format="PNG")
            else:
                write_nifti(tmp, res, fo, fs, fd)  # as itk.imwrite writes it (bundle.io.write_nifti)
    except OSError as e:
        raise InputError(f"{out}: cannot be written ({e.strerror or e})") from None
    return out


def _cmd_warp(a) -> int:
    p = warp_file(a.moving, a.ddf, a.out, labels=a.labels, overwrite=a.overwrite)
    if not a.quiet:
        print(f"wrote {p}")
    return 0


def add_parser(sub) -> None:
    """Register the ``warp`` sub-command on the ``cxreg`` sub-parsers."""
    p = sub.add_parser("warp", help="apply a saved ddf.nii.gz to another image or label map of the moving image")
    p.add_argument("moving", help="image or label map on the moving image's grid (PNG, NIfTI or DICOM)")
    p.add_argument("ddf", help="ddf.nii.gz written by cxreg register (it defines the fixed grid)")
    p.add_argument("--out", required=True, help="output file (.png, .nii or .nii.gz)")
    p.add_argument("--labels", action="store_true", help="nearest-neighbour resampling that keeps integer labels "
                   "(for masks and label maps); default: linear, for grey images")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_warp)
