# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Image and mask reading/writing with one axis convention.

Every array returned here is ``(H, W)`` = (row, col), the order in which PIL, numpy and
``itk.GetArrayFromImage`` show a picture. MONAI's ``PILReader`` reverses the axes by default
(``reverse_indexing=True``) to match ITK's (x, y) index order; we switch that off for PNG. For NIfTI,
whose first voxel axis ``i`` is the image x axis (columns), the loaded (i, j) array is transposed to
(row, col). Writing does the inverse, so PNG -> NIfTI -> PNG is lossless and a NIfTI written here
opens upright in ITK-SNAP, 3D Slicer and ``itk.imread``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["InputError", "first_line", "read_pairs_csv", "IMAGE_SUFFIXES", "IMAGE_SUFFIXES_TEXT", "MIN_SIDE", "MAX_SIDE", "is_nifti", "is_dicom", "image_shape", "load_image", "load_mask", "write_nifti", "parse_labels", "MAX_LABELS",
           "save_image", "stem", "atomic_dir", "check_writable", "check_output_file"]

IMAGE_SUFFIXES = (".png", ".nii", ".nii.gz", ".dcm")
#: the suffixes as one phrase for messages: ".png, .nii, .nii.gz or .dcm"
IMAGE_SUFFIXES_TEXT = f"{', '.join(IMAGE_SUFFIXES[:-1])} or {IMAGE_SUFFIXES[-1]}"
# Sizes ``cxreg register`` accepts (pixels per side): smaller images carry no lung shape to register; larger
# ones would need more than 1 GiB of memory for the fixed-grid outputs (docs/reliability.md).
MIN_SIDE = 32
MAX_SIDE = 2048


class InputError(ValueError):
    """A user input (file, folder, CSV) is unusable; the message names the file and the problem."""


def first_line(e: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (or its type's name), at most ``limit`` characters: the part of a
    reader's multi-line error that fits a one-line :class:`InputError`."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:limit]


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith((".nii", ".nii.gz"))


def is_dicom(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(".dcm")


def _read_dicom(path: Path) -> np.ndarray:
    """(H, W) float32 array of a single-frame DICOM via ITK (GDCM). ITK's GDCM reader already
    inverts MONOCHROME1 images (stored value v -> type maximum - v), so bright means dense as in MONOCHROME2."""
    import itk

    im = itk.imread(str(path))
    arr = np.squeeze(itk.array_from_image(im)).astype(np.float32)
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a single-frame 2D DICOM, got pixel array shape {arr.shape}")
    return arr


def stem(path: str | os.PathLike) -> str:
    """File name without its image suffix (``a.nii.gz`` -> ``a``)."""
    name = Path(path).name
    for suf in (".nii.gz", ".nii", ".png", ".dcm"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return Path(path).stem


def _to_grey(arr: np.ndarray, path) -> np.ndarray:
    """Channels-last RGB/RGBA (or grey+alpha) to grey; alpha is dropped."""
    if arr.ndim == 3 and arr.shape[-1] in (2, 3, 4):
        if arr.shape[-1] == 2:  # grey + alpha
            return arr[..., 0]
        rgb = arr[..., :3].astype(np.float32)
        return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a 2D image, got an array of shape {tuple(arr.shape)}")
    return arr


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_signature(path: Path) -> None:
    """Refuse files whose first bytes do not match their suffix (e.g. a text file named .png)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    low = str(path).lower()
    if low.endswith(".png") and head != _PNG_MAGIC:
        raise InputError(f"{path}: not a PNG file (it does not start with the PNG signature)")
    if low.endswith(".nii.gz") and head[:2] != b"\x1f\x8b":
        raise InputError(f"{path}: not a gzip-compressed NIfTI file (it does not start with the gzip signature)")
    if low.endswith(".dcm"):
        with open(path, "rb") as fh:
            fh.seek(128)
            if fh.read(4) != b"DICM":
                raise InputError(f"{path}: not a DICOM file (no 'DICM' marker after the 128-byte preamble)")


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    _check_signature(path)


def image_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """``(H, W)`` (or the full voxel shape of a NIfTI, (row, col) first) from the file header, without decoding.

    Lets callers refuse a huge image before its pixels are read. Raises :class:`InputError` naming the file.
    """
    path = Path(path)
    _check_file(path)
    try:
        if is_nifti(path):
            import nibabel as nib

            shp = tuple(int(n) for n in nib.load(str(path)).shape)
            return (shp[1], shp[0], *shp[2:]) if len(shp) >= 2 else shp
        if is_dicom(path):
            import itk

            reader = itk.ImageFileReader.New(FileName=str(path))
            reader.UpdateOutputInformation()
            size = reader.GetOutput().GetLargestPossibleRegion().GetSize()
            return tuple(int(size[i]) for i in (1, 0)) + tuple(int(size[i]) for i in range(2, len(size)))
        from PIL import Image

        with Image.open(path) as im:
            return (im.height, im.width)
    except Exception as e:
        first = first_line(e)
        raise InputError(f"{path}: cannot be read as an image, the file is corrupt or truncated ({first})") from None


def load_image(path: str | os.PathLike, min_side: int | None = None, max_side: int | None = None) -> np.ndarray:
    """Read a PNG, NIfTI or DICOM image as a float32 ``(H, W)`` array of its stored grey values.

    PNG is read with MONAI ``LoadImage`` + ``PILReader(reverse_indexing=False)``, NIfTI with
    ``LoadImage`` + ``NibabelReader`` and transposed from (i, j) to (row, col). A 3D NIfTI with one
    singleton axis is squeezed to 2D; RGB/RGBA PNGs become grey (ITU-R 601 luma, alpha dropped); 16-bit
    PNGs keep their values. A single-frame DICOM (``.dcm``) is read with ITK (GDCM, which inverts MONOCHROME1).
    ``min_side``/``max_side`` (pixels) refuse images outside that range; the
    upper limit is checked on the file header, before decoding. Raises :class:`InputError` naming the file.
    """
    from monai.data import NibabelReader, PILReader
    from monai.transforms import LoadImage

    path = Path(path)
    if max_side is not None:
        shp = [n for n in image_shape(path) if n > 1][:2]
        if shp and max(shp) > max_side:
            raise InputError(f"{path}: image is {'x'.join(map(str, shp))} pixels; the largest accepted is "
                             f"{max_side}x{max_side} (downsample it first)")
    _check_file(path)
    try:
        if is_nifti(path):
            arr = np.asarray(LoadImage(reader=NibabelReader(), image_only=True)(str(path)))
            arr = np.squeeze(arr)
            if arr.ndim != 2:
                raise InputError(f"{path}: expected a 2D image (or 3D with one singleton axis), got shape {arr.shape}")
            arr = arr.T
        elif path.suffix.lower() == ".png":
            arr = np.asarray(LoadImage(reader=PILReader(reverse_indexing=False), image_only=True)(str(path)))
            arr = _to_grey(arr, path)
        elif is_dicom(path):
            arr = _read_dicom(path)
        else:
            raise InputError(f"{path}: unsupported file type (use {IMAGE_SUFFIXES_TEXT})")
    except InputError:
        raise
    except Exception as e:  # reader errors: truncated or corrupt content
        first = first_line(e)
        raise InputError(f"{path}: cannot be read as an image, the file is corrupt or truncated ({first})") from None
    if min_side is not None and min(arr.shape) < min_side:
        raise InputError(f"{path}: image is {arr.shape[0]}x{arr.shape[1]} pixels; the smallest accepted is "
                         f"{min_side}x{min_side}")
    return np.ascontiguousarray(arr, dtype=np.float32)


#: A mask with at most this many distinct integer values (and more than two) is a label map: which labels
#: are lung must be said (``--mask-labels``); with more values it is a soft mask, thresholded at half its maximum.
MAX_LABELS = 8


def parse_labels(value, name: str = "--mask-labels") -> tuple[int, ...] | None:
    """``"1,2"`` / ``[1, 2]`` / ``1`` -> ``(1, 2)`` / ``(1,)``; None or "" -> None; an :class:`InputError` naming
    the option for anything that is not whole numbers > 0."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    items = value.replace(",", " ").split() if isinstance(value, str) else (
        list(value) if isinstance(value, (list, tuple)) else [value])
    try:
        out = tuple(int(v) for v in items if isinstance(v, (int, str)) and not isinstance(v, bool)
                    and float(v) == int(float(v)))
    except (TypeError, ValueError, OverflowError):
        out = ()
    if not items or len(out) != len(items) or any(v <= 0 for v in out):
        raise InputError(f"{name} must be labels > 0 separated by commas (e.g. 1,2), not {value!r}")
    return out


def load_mask(path: str | os.PathLike, labels=None) -> np.ndarray:
    """Read a lung mask as a uint8 ``(H, W)`` array of 0/1.

    ``labels`` (e.g. ``(1, 2)``): lung = pixels with one of these values (a label map: left lung 1, right lung 2,
    heart 3, ...). Without ``labels``: a mask with one or two values is lung where it has the higher one (0/1,
    0/255, 40/190; all lung if it has one value > 0); one with 3 to :data:`MAX_LABELS` integer values is a label
    map and refused (:class:`InputError` listing its labels: give ``labels``), since taking the highest label(s)
    would silently drop lung; one with more values (an anti-aliased or soft mask) is lung above half its maximum.
    """
    arr = load_image(path)
    if labels is not None:
        labels = parse_labels(labels)
        lung = np.isin(arr, labels)
        if not lung.any():
            raise InputError(f"{path}: none of the mask labels {', '.join(map(str, labels))} is in this mask "
                             f"(it has {_values(np.unique(arr))})")
        absent = [v for v in labels if not (arr == v).any()]
        if absent:  # a typo (--mask-labels 1,5) or a mask without one lung: say so, do not stop
            import logging

            logging.getLogger("cxreg").warning(
                f"warning: {path}: mask label(s) {', '.join(map(str, absent))} not in this mask (it has "
                f"{_values(np.unique(arr))}); lung = label(s) {', '.join(str(v) for v in labels if v not in absent)}")
        return lung.astype(np.uint8)
    vals = np.unique(arr)
    top = float(vals[-1])
    if len(vals) == 1 and top <= 0:
        raise InputError(f"{path}: mask is empty (every pixel is {top:g}); a lung mask needs lung pixels")
    if len(vals) <= 2:
        return ((arr > vals[0]) if len(vals) == 2 else np.full(arr.shape, top > 0)).astype(np.uint8)
    if len(vals) <= MAX_LABELS and np.all(vals == np.round(vals)):
        raise InputError(f"{path}: mask has {len(vals)} values ({_values(vals)}), a label map: say which labels "
                         f"are lung with --mask-labels (e.g. --mask-labels 1,2)")
    return (arr > top / 2).astype(np.uint8)


def _values(vals: np.ndarray) -> str:
    """The sorted distinct values ``vals`` (``np.unique``) as text, the first :data:`MAX_LABELS` of them."""
    return ", ".join(f"{v:g}" for v in vals[:MAX_LABELS]) + (", ..." if len(vals) > MAX_LABELS else "")


def save_image(path: str | os.PathLike, arr: np.ndarray, spacing: tuple[float, float] | None = None) -> None:
    """Write an ``(H, W)`` array as PNG (uint8/uint16 as given, floats clipped to uint8) or NIfTI.

    NIfTI gets the array transposed to (x=column, y=row) and a diagonal affine with ``spacing``
    given as (row, col) spacing in mm.
    """
    path = Path(path)
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"{path}: save_image expects a 2D array, got {arr.shape}")
    if is_nifti(path):
        import nibabel as nib

        sr, sc = spacing or (1.0, 1.0)
        affine = np.diag([sc, sr, 1.0, 1.0])
        nib.save(nib.Nifti1Image(np.ascontiguousarray(arr.T), affine), str(path))
    elif path.suffix.lower() == ".png":
        from PIL import Image

        if arr.dtype not in (np.uint8, np.uint16):
            arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(str(path))
    else:
        raise ValueError(f"{path}: unsupported output type (use .png, .nii or .nii.gz)")


def write_nifti(path: str | os.PathLike, arr: np.ndarray, origin=(0.0, 0.0), spacing=(1.0, 1.0), direction=None,
                vector: bool = False) -> None:
    """Write a 2D image the way ``itk.imwrite`` writes it, with nibabel (which is lighter: importing and running
    ITK's writer cost a ``cxreg register`` process ~255 MiB, docs/reliability.md "Limits").

    ``arr``: (H, W) (rows, columns), or (H, W, C) with ``vector`` (a displacement field: components stored as
    given, in ITK's physical (x, y), as ITK stores them). ``origin``, ``spacing`` (x, y) and ``direction``
    (2, 2) are ITK's (LPS); the NIfTI affine is their RAS form, stored as both qform and sform (code 1, scanner),
    units mm, intent ``vector`` for a vector image (dims x, y, 1, 1, C). ITK reads the file back with the same
    geometry and values as its own writer's file (``tests/test_io.py``)."""
    import nibabel as nib

    o, sp = np.asarray(origin, np.float64), np.asarray(spacing, np.float64)
    d = np.eye(2) if direction is None else np.asarray(direction, np.float64)
    aff = np.eye(4)
    aff[:2, :2], aff[:2, 3] = d * sp[None, :], o
    aff = np.diag([-1.0, -1.0, 1.0, 1.0]) @ aff  # LPS -> RAS
    a = np.asarray(arr)
    data = a.transpose(1, 0, 2)[:, :, None, None, :] if vector else a.T  # (x, y[, z, t, c]): a view, F-ordered
    img = nib.Nifti1Image(data, aff)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    hdr = img.header
    hdr.set_xyzt_units("mm", "sec")
    hdr["regular"] = b"r"  # as ITK writes it, with the unused pixdim entries 0
    hdr["pixdim"][4:] = 0
    if vector:
        hdr.set_intent("vector")
    nib.save(img, str(path))


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` or its nearest ancestor that exists (where a missing output folder would be created)."""
    anc = Path(path)
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    return anc


def check_output_file(out: str | os.PathLike, overwrite: bool, suffixes: tuple[str, ...], types: str) -> Path:
    """Refuse an unusable output *file* path before any work (nothing is created here): a name not ending in one of
    ``suffixes`` (``types`` names them in the message), an existing file without ``overwrite``, a folder in its
    place, or a parent folder that cannot be written. Returns ``out`` as a Path."""
    out = Path(out)
    if not out.name.lower().endswith(suffixes):
        raise InputError(f"{out}: unsupported output type (use {types})")
    if out.exists() and (out.is_dir() or not overwrite):
        raise InputError(f"{out}: output file exists" + (" and is a folder" if out.is_dir() else
                                                          " (use --overwrite to replace it)"))
    anc = nearest_existing(out.parent)
    if not anc.is_dir() or not os.access(anc, os.W_OK):
        raise InputError(f"{out}: output folder cannot be written ({anc} is not a writable folder)")
    return out


def check_writable(dest: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse an output folder that exists and is not empty (unless ``overwrite``) or cannot be written.

    Checked before any work is done; creates the missing parents of ``dest`` (not ``dest`` itself).
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise InputError(f"{dest}: output path exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise InputError(f"{dest}: output folder exists (use --overwrite to replace it)")
    anc = nearest_existing(dest.parent)
    if not anc.is_dir():
        raise InputError(f"{dest}: output folder cannot be written ({anc} is not a folder)")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent).cleanup()
    except OSError as e:
        raise InputError(f"{dest}: output folder cannot be written ({e.strerror or e})") from None
    return dest


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it back at once
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(dest: str | os.PathLike):
    """Yield a temporary file path beside ``dest``; on success it is renamed onto ``dest``, on error it is removed.

    The temporary name is hidden (``.<name>.XXXX<suffix>``, the name cut to 64 characters so that a long file
    name still fits the file system's limit) and keeps ``dest``'s suffix (``.nii.gz`` included), so writers that
    choose the format by suffix still work; the finished file gets the mode a plain ``open()`` would give it
    (0666 less the umask; ``mkstemp`` makes 0600 files). A failed or interrupted write never leaves a
    half-written ``dest``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if dest.name.lower().endswith(".nii.gz") else dest.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name[:64]}.", suffix=suffix, dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def json_ready(obj):
    """``obj`` with every NaN or infinite float replaced by None, so ``json.dumps`` writes ``null`` (strict JSON,
    readable by every parser) instead of the bare ``NaN`` Python would write: e.g. the HD of an empty mask."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.floating):
        return json_ready(float(obj))
    return obj


def write_text_atomic(dest: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``dest`` through :func:`atomic_file`."""
    with atomic_file(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)


@contextmanager
def atomic_dir(dest: str | os.PathLike):
    """Yield a temporary folder beside ``dest``; on success it replaces ``dest``, on error it is removed.

    So a failed or interrupted run never leaves a half-written ``dest`` behind.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        tmp.chmod(0o755)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_pairs_csv(path: str | os.PathLike) -> dict[tuple[str, str], dict[str, str]]:
    """The rows of an evaluation's ``pairs.csv`` (``cxreg evaluate``), keyed by ``(moving, fixed)``, in file
    order; a missing file or one without ``moving``/``fixed`` columns is an :class:`InputError` naming it."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"moving", "fixed"} <= set(reader.fieldnames or ()):
            raise InputError(f"{path}: not a pairs.csv (no moving and fixed columns)")
        return {(r["moving"], r["fixed"]): r for r in reader}
