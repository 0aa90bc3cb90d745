# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""MONAI-style dictionary transforms used by the bundles."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform

from .io import atomic_file, load_image, save_image, stem

__all__ = ["LoadGreyd", "SaveMaskd", "RandMaskCorruptiond", "corrupt_mask", "list_images", "inference_datalist", "INTENSITY_MODES",
           "equalize_histogram", "normalize_intensity"]

INTENSITY_MODES = ("unit", "zscore", "equalize")


def _equalize_8bit(flat: torch.Tensor) -> torch.Tensor | None:
    """:func:`equalize_histogram` by counting, for (B, C, N) values that are all exactly ``k / 255`` (8-bit
    images as loaded): the same numbers as sorting, ~60x faster on a 256 x 256 image. None for other values."""
    if flat.numel() == 0:
        return None
    k = (flat * 255).round_()
    if not torch.equal(k / 255, flat) or k.min() < 0 or k.max() > 255:
        return None
    idx = k.long()
    b, c, n = idx.shape
    offset = (torch.arange(b * c, device=idx.device) * 256).view(b, c, 1)
    counts = torch.bincount((idx + offset).flatten(), minlength=b * c * 256).view(b, c, 256)
    below = counts.cumsum(2) - counts  # pixels strictly darker than each grey level
    return below.gather(2, idx).float() / n


def equalize_histogram(images: torch.Tensor) -> torch.Tensor:
    """Per-image histogram equalisation: each pixel becomes the fraction of its image's pixels that are darker.

    ``v -> #{pixels < v} / N``, so the darkest value (e.g. black padding bands) maps to 0, equal values stay
    equal and the result does not depend on the intensity range (8-bit, 16-bit, [0, 1]) or on any monotonic
    contrast change. Shapes: (B, C, H, W) in, (B, C, H, W) float32 in [0, 1) out.
    """
    x = images.float()
    flat = x.flatten(2)
    fast = _equalize_8bit(flat)
    if fast is not None:
        return fast.view_as(x)
    srt = flat.sort(dim=2).values.contiguous()
    below = torch.searchsorted(srt, flat.contiguous(), right=False)
    return (below.float() / flat.shape[2]).view_as(x)


def normalize_intensity(images: torch.Tensor, mode: str = "unit") -> torch.Tensor:
    """``unit``: unchanged (grey / 255 or / max, as loaded); ``zscore``: per image zero mean, unit std;
    ``equalize``: :func:`equalize_histogram`. Shapes: (B, C, H, W) in and out."""
    if mode == "unit":
        return images
    if mode == "zscore":
        x = images.float()
        m = x.mean(dim=(2, 3), keepdim=True)
        return (x - m) / x.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    if mode == "equalize":
        return equalize_histogram(images)
    raise ValueError(f"intensity must be one of {INTENSITY_MODES}, not {mode!r}")


def list_images(folder: str | os.PathLike) -> list[str]:
    """Sorted PNG/NIfTI/DICOM files of a folder; a one-line error if it is missing or has none."""
    from .io import IMAGE_SUFFIXES, IMAGE_SUFFIXES_TEXT, InputError

    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{d}: input folder not found")
    files = sorted(str(p) for p in d.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise InputError(f"{d}: no {IMAGE_SUFFIXES_TEXT} images in this folder")
    return files


def inference_datalist(input_dir, model_path=None, exit_on_error: bool = True,
                       prefix: str = "cxreg inference") -> list[dict]:
    """The segmentation and autoencoder bundles' ``datalist``: ``[{"image": path}, ...]`` for the images of
    ``input_dir`` (:func:`list_images`), checked before anything is written: ``--input_dir`` given, every image
    readable (:func:`bundle.io.load_image`), the weights file ``model_path`` (if given) a readable state dict.
    A problem raises :class:`~bundle.io.InputError`, or, with ``exit_on_error`` (the configs' default unless
    ``--debug True``), ends the process with status 1 and ``<prefix>: error: <file>: <problem>``."""
    from .io import IMAGE_SUFFIXES_TEXT, InputError
    from .workflow import load_weights

    try:
        if input_dir is None or str(input_dir).strip().lower() in ("", "none", "null"):
            raise InputError(f"give --input_dir FOLDER (a folder of {IMAGE_SUFFIXES_TEXT} images)")
        files = list_images(input_dir)
        for f in files:
            load_image(f)
        if model_path is not None:
            load_weights(model_path)
        return [{"image": f} for f in files]
    except (InputError, OSError) as e:
        if not exit_on_error:
            raise
        raise SystemExit(f"{prefix}: error: {e}") from None


class LoadGreyd(MapTransform):
    """Load a PNG/NIfTI path under ``keys`` as a (1, H, W) float tensor in our (row, col) convention.

    8-bit images are scaled to [0, 1] (value / 255); others by their maximum. The original path is kept
    under ``<key>_path``. Uses :func:`bundle.io.load_image` (MONAI ``LoadImage`` underneath).
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data):
        d = dict(data)
        for k in self.key_iterator(d):
            path = d[k]
            arr = load_image(path)
            top = float(np.nanmax(arr)) if arr.size else 0.0
            scale = 255.0 if top <= 255 else top
            d[k] = torch.from_numpy(np.nan_to_num(arr / scale))[None].float()
            d[f"{k}_path"] = str(path)
        return d


class SaveMaskd(MapTransform):
    """Write a (1, H, W) (or one-hot (2, H, W)) mask under ``keys`` to ``output_dir/<stem>.png`` as 0/255.

    The name comes from ``data[path_key]``; the file is written to a temporary name and renamed.
    """

    def __init__(self, keys: KeysCollection, output_dir: str, path_key: str = "image_path"):
        super().__init__(keys)
        self.output_dir, self.path_key = Path(output_dir), path_key

    def __call__(self, data):
        d = dict(data)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for k in self.key_iterator(d):
            m = torch.as_tensor(d[k]).detach().cpu()
            m = m.argmax(0) if m.shape[0] > 1 else m[0]
            out = self.output_dir / f"{stem(d[self.path_key])}.png"
            with atomic_file(out) as tmp:
                save_image(tmp, (m.numpy() > 0.5).astype(np.uint8) * 255)
        return d


def corrupt_mask(mask: torch.Tensor, rng: np.random.RandomState, strength: float = 1.0) -> torch.Tensor:
    """Corrupt a (1, H, W) 0/1 mask with one or more of: pixel noise, holes, erosion/dilation, patches."""
    m = mask.clone().float()
    h, w = m.shape[1:]
    ops = rng.permutation(4)[: rng.randint(1, 4)]
    for op in ops:
        if op == 0:  # salt-and-pepper noise
            flip = torch.from_numpy(rng.random((1, h, w)) < 0.05 * strength)
            m[flip] = 1 - m[flip]
        elif op == 1:  # holes in the lungs
            for _ in range(rng.randint(1, 6)):
                r, c, rad = rng.randint(0, h), rng.randint(0, w), rng.randint(2, max(3, h // 10))
                rr, cc = np.ogrid[:h, :w]
                m[0][torch.from_numpy((rr - r) ** 2 + (cc - c) ** 2 <= rad**2)] = 0
        elif op == 2:  # erosion or dilation by max-pooling
            k = int(rng.randint(1, 3)) * 2 + 1
            x = m[None]
            x = F.max_pool2d(x, k, 1, k // 2) if rng.random() < 0.5 else -F.max_pool2d(-x, k, 1, k // 2)
            m = x[0]
        else:  # random rectangular patches set to lung or background
            for _ in range(rng.randint(1, 4)):
                ph, pw = rng.randint(h // 16, h // 5), rng.randint(w // 16, w // 5)
                r, c = rng.randint(0, h - ph), rng.randint(0, w - pw)
                m[0, r : r + ph, c : c + pw] = float(rng.random() < 0.5)
    return m


class RandMaskCorruptiond(RandomizableTransform, MapTransform):
    """Denoising-autoencoder input: ``output_key`` = corrupted copy of the mask under ``keys`` (with prob ``prob``)."""

    def __init__(self, keys: KeysCollection, output_key: str = "image", prob: float = 0.9, strength: float = 1.0):
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self.output_key, self.strength = output_key, strength

    def __call__(self, data):
        d = dict(data)
        self.randomize(None)
        for k in self.key_iterator(d):
            src = torch.as_tensor(d[k])
            d[self.output_key] = corrupt_mask(src, self.R, self.strength) if self._do_transform else src.clone().float()
        return d
