# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Register users' image pairs: ``register(fixed, moving)`` (fixed first, as ANTsPy) and the output files.

Any size and aspect ratio: each image is zero-padded to a square (centred, as our data were prepared) and
resampled to ``size`` (256) for the lung masks and the field; the field is then expressed on the **fixed
image's own grid**: ``ddf[:, r, c]`` = (row, col) displacement in pixels such that the fixed pixel (r, c)
takes its value from the moving image at (r, c) + ddf (pull-back, docs/conventions.md), in the moving
image's pixel indices. ``ddf.nii.gz`` stores the same map in ITK's displacement-field convention: a
2-component vector image on the fixed grid whose vectors are *physical* displacements (x, y) from each fixed
point to its moving point, so ``itk.DisplacementFieldTransform`` (or ANTs ``antsApplyTransforms -t ddf.nii.gz``)
resamples the moving image onto the fixed one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import Inferer

from .io import (MAX_SIDE, MIN_SIDE, InputError, atomic_dir, check_writable, first_line, is_dicom, is_nifti, json_ready,
                 load_image, load_mask, parse_labels, save_image, stem, write_text_atomic)
from .metrics import pair_metrics
from .refine import DEFAULT_MASK_WEIGHT, check_weights
from .spatial import jacobian_determinant, remove_folds, resize_image

# The model users get unless they choose: trained on all three datasets, within 0.005 DSC of each dataset's own
# model on its test split and far better outside it (docs/generalisation.md).
DEFAULT_MODEL = "universal"

__all__ = ["DEFAULT_MODEL", "Registrar", "RegistrationInferer", "PairJob", "register", "write_outputs",
           "register_files", "load_checked", "write_summary", "inference_evaluator", "run_inference", "weight_arg",
           "bundle_inference", "inputs_dir", "bool_arg", "count_arg", "fix_folds_arg"]


def _unit(arr: np.ndarray, path="image") -> np.ndarray:
    """Grey values to [0, 1]: / 255 for 8-bit ranges, else / max."""
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise InputError(f"{path}: image has {bad} NaN or infinite pixel value(s); replace them first")
    top = float(arr.max())
    return arr / (255.0 if top <= 255 else top) if top > 0 else arr


def _to_square(arr: np.ndarray, size: int, mask: bool = False):
    """Zero-pad (H, W) to a centred square, resample to size; returns (tensor (1,1,S,S), pad (top, left), side)."""
    from .prepare import pad_to_square

    sq, pad = pad_to_square(arr.astype(np.float32), return_offsets=True)
    t = resize_image(torch.from_numpy(sq)[None, None], size)
    return ((t > 0.5).float() if mask else t), pad, sq.shape[0]


class Registrar:
    """Holds the models; ``registrar(fixed, moving, ...)`` registers one pair of (H, W) arrays.

    Args:
        model: ``universal`` (default) / ``JSRT`` / ``MONT`` / ``SHEN`` (shipped weights) or a registration model
            file.
        seg_model: lung segmentation model for masks that are not given (default: the same shipped name, else universal).
        device: ``cpu`` or ``cuda``.
        size: working grid of the masks and of the field output (256).
        refine_steps: test-time refinement steps (0 = off).
        refine_mask_weight: weight of the lung-mask overlap term of the refinement
            (:data:`bundle.refine.DEFAULT_MASK_WEIGHT`, 40; image similarity 1; 1.0 before 0.5.3).
        refine_distance_weight: weight of the refinement's boundary term (0 = off; :mod:`bundle.refine`).
        fix_folds: remove the field's folds (:func:`bundle.spatial.remove_folds`); None = the model's setting.
    """

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL, seg_model=None, device: str = "cpu", size: int = 256,
                 refine_steps: int = 0, fix_folds: bool | None = None,
                 refine_mask_weight: float = DEFAULT_MASK_WEIGHT, refine_distance_weight: float = 0.0):
        from .priors import load_segmentation
        from .registration import load_registration
        from .workflow import check_device

        check_device(device)  # before the weights are mapped onto it
        check_weights({"w_mask": refine_mask_weight, "w_dist": refine_distance_weight})  # before anything loads
        net, settings = load_registration(model, device)
        from .priors import shipped_name

        seg_model = seg_model or shipped_name(model) or DEFAULT_MODEL
        self.names = {"model": str(model), "seg_model": str(seg_model)}
        self._setup(net, settings, load_segmentation(seg_model, device), device, size, refine_steps, fix_folds,
                    refine_mask_weight, refine_distance_weight)

    def _setup(self, net, settings, seg, device, size, refine_steps, fix_folds=None,
               refine_mask_weight=DEFAULT_MASK_WEIGHT, refine_distance_weight=0.0) -> None:
        from .registration import RegSettings

        self.net = net.to(device).eval()
        self.settings = settings if isinstance(settings, RegSettings) else RegSettings.from_dict(settings)
        self.seg = seg.to(device).eval()
        self.device, self.size, self.refine_steps, self.fix_folds = device, size, refine_steps, fix_folds
        w = check_weights({"w_mask": refine_mask_weight, "w_dist": refine_distance_weight})
        self.refine_mask_weight, self.refine_distance_weight = w["w_mask"], w["w_dist"]

    @classmethod
    def from_networks(cls, net: torch.nn.Module, settings, seg: torch.nn.Module, device: str = "cpu",
                      size: int = 256, refine_steps: int = 0, fix_folds: bool | None = None,
                      names: dict | None = None, refine_mask_weight: float = DEFAULT_MASK_WEIGHT,
                      refine_distance_weight: float = 0.0) -> "Registrar":
        """A Registrar around networks already built and loaded (e.g. an exported bundle's own weights);
        ``settings`` is a :class:`bundle.registration.RegSettings` or its dict. ``names`` (``model``,
        ``seg_model``) says where the networks came from in :meth:`options`."""
        from .workflow import check_device

        check_device(device)
        self = cls.__new__(cls)
        self.names = {"model": "(given network)", "seg_model": "(given network)", **(names or {})}
        self._setup(net, settings, seg, device, size, refine_steps, fix_folds, refine_mask_weight,
                    refine_distance_weight)
        return self

    def options(self) -> dict:
        """The settings that decide this registrar's fields (written into each pair's ``metrics.json``)."""
        from . import __version__

        fix = self.settings.fix_folds if self.fix_folds is None else self.fix_folds
        return {**self.names, "size": self.size, "refine": self.refine_steps,
                "refine_mask_weight": self.refine_mask_weight, "refine_distance_weight": self.refine_distance_weight,
                "fix_folds": bool(fix), "version": __version__}

    @torch.no_grad()
    def lung_mask(self, img01: torch.Tensor) -> torch.Tensor:
        from .priors import predict_lung_masks

        return predict_lung_masks(self.seg, img01.to(self.device)).cpu()

    @torch.no_grad()
    def __call__(self, fixed: np.ndarray, moving: np.ndarray, fixed_mask: np.ndarray | None = None,
                 moving_mask: np.ndarray | None = None, fixed_lung: torch.Tensor | None = None,
                 moving_lung: torch.Tensor | None = None, net: torch.nn.Module | None = None) -> dict:
        """Register one pair of (H, W) arrays (fixed first); ``net``: use this registration network instead of
        the registrar's own (same settings; what :class:`RegistrationInferer` passes on)."""
        from .registration import predict_field

        S = self.size
        f_sq, f_pad, f_side = _to_square(_unit(fixed), S)
        m_sq, m_pad, m_side = _to_square(_unit(moving), S)
        # attention masks on the working grid: given masks, else predicted ones (cached by callers)
        if fixed_mask is None and moving_mask is None and fixed_lung is None and moving_lung is None:
            fixed_lung, moving_lung = self.lung_mask(torch.cat([f_sq, m_sq])).split(1)  # one forward for both
        fa = _to_square(fixed_mask.astype(np.float32), S, True)[0] if fixed_mask is not None else (
            fixed_lung if fixed_lung is not None else self.lung_mask(f_sq))
        ma = _to_square(moving_mask.astype(np.float32), S, True)[0] if moving_mask is not None else (
            moving_lung if moving_lung is not None else self.lung_mask(m_sq))
        dev = self.device
        out = predict_field(self.net if net is None else net, self.settings, m_sq.to(dev), f_sq.to(dev), ma.to(dev), fa.to(dev),
                            refine_steps=self.refine_steps, fix_folds=self.fix_folds,
                            refine_weights={"w_mask": self.refine_mask_weight,
                                            "w_dist": self.refine_distance_weight})
        u = out["ddf"].cpu()  # (1, 2, S, S) on the fixed square grid
        # fixed pixel p -> square-grid position q -> moving square position q + u(q) -> moving pixel
        h, w = fixed.shape
        # the (2, h, w) arrays below are 32 MiB each for a 2048 x 2048 fixed image: built in place, freed early
        p = torch.stack(torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                       indexing="ij"))  # 2,h,w
        pad_f = torch.tensor(f_pad, dtype=torch.float32).view(2, 1, 1)
        q = (p + pad_f).add_(0.5).mul_(S / f_side).sub_(0.5)
        if (h, w) == (S, S):  # already on the working grid: sampling u at its own pixels is u itself
            uq = u[0]
        else:
            grid = torch.stack([q[1] / (S - 1) * 2 - 1, q[0] / (S - 1) * 2 - 1], -1)[None]  # x (col) first
            uq = F.grid_sample(u, grid, mode="bilinear", padding_mode="border", align_corners=True)[0]
            del grid
        pad_m = torch.tensor(m_pad, dtype=torch.float32).view(2, 1, 1)
        pm = q.add_(uq).add_(0.5).mul_(m_side / S).sub_(0.5 + pad_m)  # moving pixel coordinates (q's buffer)
        del q, uq
        ddf = pm - p
        fix = self.settings.fix_folds if self.fix_folds is None else self.fix_folds
        removed = int(out["folds_fixed"][0]) if "folds_fixed" in out else 0  # on the S x S working grid
        jac = jacobian_determinant(ddf[None])[0]
        if fix:  # resampling to another image grid can tip a few pixels again: repair them on this grid too
            again = int((jac <= 0).sum())
            if again:  # pm and jac are rebuilt from the repaired field: freed first (48 MiB at 2048 x 2048)
                del pm, jac
                ddf = remove_folds(ddf[None])[0][0]
                pm = p + ddf
                removed += again
                jac = jacobian_determinant(ddf[None])[0]
        del p
        warped = self._sample(moving.astype(np.float32), pm, "bilinear", "border")
        res = {"ddf": ddf.numpy(), "warped": warped, "jacobian": jac.numpy()}
        mm = moving_mask if moving_mask is not None else self._unsquare(ma, m_pad, m_side, moving.shape)
        res["warped_mask"] = (self._sample(mm.astype(np.float32), pm, "bilinear", "zeros") > 0.5).astype(np.uint8)
        res["fixed_mask"] = fixed_mask if fixed_mask is not None else self._unsquare(fa, f_pad, f_side, fixed.shape)
        res["masks_given"] = fixed_mask is not None and moving_mask is not None
        if fix:  # folded pixels that remove_folds smoothed away (working grid, then the fixed image's grid)
            res["folds_removed"] = removed
        return res

    @staticmethod
    def _sample(img: np.ndarray, pm: torch.Tensor, mode: str, padding: str) -> np.ndarray:
        h, w = img.shape
        grid = torch.stack([pm[1] / max(w - 1, 1) * 2 - 1, pm[0] / max(h - 1, 1) * 2 - 1], -1)[None]
        t = torch.from_numpy(img)[None, None]
        return F.grid_sample(t, grid, mode=mode, padding_mode=padding, align_corners=True)[0, 0].numpy()

    @staticmethod
    def _unsquare(mask_sq: torch.Tensor, pad, side, shape) -> np.ndarray:
        """A mask on the working square back to the image grid (nearest via bilinear + 0.5)."""
        big = F.interpolate(mask_sq.float(), size=(side, side), mode="bilinear", align_corners=False)[0, 0]
        h, w = shape
        return (big[pad[0] : pad[0] + h, pad[1] : pad[1] + w] > 0.5).numpy().astype(np.uint8)


def load_checked(path: str | os.PathLike) -> np.ndarray:
    """:func:`bundle.io.load_image` for registration: (H, W) float32, finite, not constant, with sides in
    [``MIN_SIDE``, ``MAX_SIDE``] (the maximum checked on the header, before decoding)."""
    arr = load_image(path, min_side=MIN_SIDE, max_side=MAX_SIDE)
    _unit(arr, path)
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise InputError(f"{path}: image is constant (every pixel is {lo:g}); there is nothing to register")
    return arr


def write_summary(out_dir: str | os.PathLike, status: list[dict], name: str = "summary.json") -> Path:
    """``out_dir/<name>`` (one status dict per pair), written to a temporary file and renamed."""
    return write_text_atomic(Path(out_dir) / name, json.dumps(json_ready(status), indent=2, ensure_ascii=False))


def register(fixed, moving, model=DEFAULT_MODEL, fixed_mask=None, moving_mask=None, device="cpu", mask_labels=None,
             **kw) -> dict:
    """Register ``moving`` onto ``fixed`` ((H, W) arrays or file paths; fixed first, as ANTsPy).

    Mask files are read with :func:`bundle.io.load_mask` (``mask_labels``: which values of a label map are lung).
    Returns ``{"warped", "ddf" (2, H, W) pull-back pixels on the fixed grid, "jacobian", "warped_mask",
    "fixed_mask", "metrics"}``; DSC/HD/ASSD are computed when both masks are given, JAC always.
    """
    labels = parse_labels(mask_labels, "mask_labels")
    mask = lambda x: load_mask(x, labels)  # noqa: E731
    load = lambda x, f: f(x) if isinstance(x, (str, os.PathLike)) else (None if x is None else np.asarray(x))  # noqa: E731
    r = Registrar(model, device=device, **kw)
    res = r(load(fixed, load_image), load(moving, load_image), load(fixed_mask, mask), load(moving_mask, mask))
    res["metrics"] = metrics_of(res)
    return res


def metrics_of(res: dict, spacing=None) -> dict:
    """JAC (folded pixels) and SDlogJ (std of log det J) always; DSC, HD, ASSD and HD95 (pixels of the fixed
    image) when both masks were given, and with ``spacing`` (row, col) mm of the fixed image other than (1, 1) also ``hd_mm``, ``assd_mm``, ``hd95_mm`` and
    ``spacing_mm``."""
    from .metrics import log_jacobian_std

    det = torch.from_numpy(res["jacobian"])
    out = {"jac": int((det <= 0).sum()), "jac_pct": float(100 * (det <= 0).float().mean()),
           "sdlogj": float(log_jacobian_std(det[None])[0])}
    if "folds_removed" in res:
        out["folds_removed"] = res["folds_removed"]
    if res["masks_given"]:
        wm = torch.from_numpy(res["warped_mask"])[None, None].float()
        fm = torch.from_numpy(np.asarray(res["fixed_mask"]))[None, None].float()
        m = pair_metrics(wm, fm)  # JAC and SDlogJ are taken above from the fixed-grid Jacobian
        out.update({k: m[k][0] for k in ("dsc", "hd", "assd", "hd95")})
        if spacing is not None and not np.allclose(spacing, 1.0):
            from .metrics import surface_metrics

            hd, sd, h95 = surface_metrics(wm, fm, tuple(float(v) for v in spacing), hd95=True)
            out.update({"hd_mm": float(hd[0]), "assd_mm": float(sd[0]), "hd95_mm": float(h95[0]),
                        "spacing_mm": [float(v) for v in spacing]})
    return out


def fixed_spacing(path, shape) -> tuple[float, float] | None:
    """(row, col) pixel spacing in mm of a NIfTI or DICOM fixed image (from its header); None for PNG."""
    if not (is_nifti(path) or is_dicom(path)):
        return None
    sx, sy = _itk_geometry(path, shape)[1][:2]
    return float(sy), float(sx)


def _itk_geometry(path: str | os.PathLike, shape):
    """(origin (2,), spacing (2,), direction (2, 2)) of an image file in ITK's (x, y) order; PNG -> identity.

    A 2D file gives its geometry; a single-frame DICOM or a NIfTI stored as (x, y, 1) gives its in-plane part. If
    that in-plane direction is not a rotation or flip (|det| far from 1, e.g. a DICOM whose rows run along z), the
    direction is taken as the identity (origin and spacing kept): ITK refuses a singular direction."""
    if is_nifti(path) or is_dicom(path):
        import itk

        try:
            reader = itk.ImageFileReader.New(FileName=str(path))
            reader.UpdateOutputInformation()
            im = reader.GetOutput()
        except Exception as e:
            raise InputError(f"{path}: cannot read its geometry ({first_line(e)})") from None
        d = im.GetImageDimension()
        size = [int(im.GetLargestPossibleRegion().GetSize()[i]) for i in range(d)]
        if d == 2 or (d == 3 and size[2] == 1):
            o = np.array(im.GetOrigin(), dtype=np.float64)[:2]
            sp = np.array(im.GetSpacing(), dtype=np.float64)[:2]
            dr = np.asarray(itk.array_from_matrix(im.GetDirection()), dtype=np.float64)[:2, :2]
            if abs(abs(np.linalg.det(dr)) - 1) > 1e-3:
                dr = np.eye(2)
            return o, sp, dr
    return np.zeros(2), np.ones(2), np.eye(2)


def _physical_ddf(ddf: np.ndarray, fixed_geom, moving_geom) -> np.ndarray:
    """(H, W, 2) float32 ITK displacement field: for each fixed pixel, the physical (x, y) position of the moving
    point it samples minus its own, from the pull-back field ``ddf`` (2, H, W) (pixels, rows then columns) and the
    (origin, spacing, direction) of the two images (:func:`_itk_geometry`).

    With index ``i = (col, row)`` and ``A = D_m S_m``, ``B = D_f S_f``: ``v = o_m - o_f + (A - B) i + A (u_col,
    u_row)``, the index terms from 1-D rows and columns, so that the only (H, W) arrays are the output and one
    temporary (a 2048 x 2048 field: 32 + 16 MiB), and equal geometries cancel exactly."""
    (fo, fs, fd), (mo, ms, md) = fixed_geom, moving_geom
    a, b = np.asarray(md, np.float64) * np.asarray(ms, np.float64), np.asarray(fd, np.float64) * np.asarray(fs, np.float64)
    c = np.asarray(mo, np.float64) - np.asarray(fo, np.float64)
    h, w = ddf.shape[1:]
    col, row = np.arange(w, dtype=np.float64)[None, :], np.arange(h, dtype=np.float64)[:, None]
    out = np.empty((h, w, 2), np.float32)
    for k in range(2):
        o = out[..., k]
        o[...] = (c[k] + (a[k, 0] - b[k, 0]) * col).astype(np.float32) + ((a[k, 1] - b[k, 1]) * row).astype(np.float32)
        o += np.float32(a[k, 0]) * ddf[1]
        o += np.float32(a[k, 1]) * ddf[0]
    return out


def write_outputs(res: dict, out_dir: str | os.PathLike, fixed_path, moving_path, overwrite: bool = False,
                  options: dict | None = None, metrics: dict | None = None, fixed_img: np.ndarray | None = None,
                  moving_img: np.ndarray | None = None) -> Path:
    """Write warped, ddf.nii.gz, jacobian.nii.gz, warped_mask.png, overlay.png, metrics.json atomically.

    ``metrics``: :func:`metrics_of` the pair if the caller has it already (else computed here);
    ``fixed_img`` / ``moving_img``: the images as :func:`bundle.io.load_image` read them, if the caller has them
    (else read again here)."""
    from .io import write_nifti
    from .visualize import checkerboard, overlay, tile

    out = check_writable(out_dir, overwrite)
    try:
        with atomic_dir(out) as tmp:
            fixed_img = load_image(fixed_path) if fixed_img is None else fixed_img
            mov = load_image(moving_path) if moving_img is None else moving_img
            warped = res["warped"]
            fo, fs, fd = _itk_geometry(fixed_path, fixed_img.shape)
            mo, ms, md = _itk_geometry(moving_path, mov.shape)

            def nifti_on_fixed_grid(arr, name, vector=False):  # origin, spacing and direction of the fixed image,
                write_nifti(tmp / name, arr, fo, fs, fd, vector=vector)  # as itk.imwrite writes them, without ITK

            if is_nifti(moving_path) or is_dicom(moving_path):  # DICOM in -> NIfTI out (grey values kept)
                nifti_on_fixed_grid(np.ascontiguousarray(warped, dtype=np.float32), "warped.nii.gz")
            else:
                dt = np.uint16 if mov.max() > 255 else np.uint8
                save_image(tmp / "warped.png", np.clip(np.rint(warped), 0, np.iinfo(dt).max).astype(dt))
            # ITK displacement field on the fixed grid: physical (x, y) displacement fixed point -> moving point
            nifti_on_fixed_grid(_physical_ddf(res["ddf"], (fo, fs, fd), (mo, ms, md)), "ddf.nii.gz", vector=True)
            nifti_on_fixed_grid(np.ascontiguousarray(res["jacobian"], dtype=np.float32), "jacobian.nii.gz")
            save_image(tmp / "warped_mask.png", res["warped_mask"].astype(np.uint8) * 255)
            f01, w01 = _unit(fixed_img), _unit(warped) if np.isfinite(warped).all() else warped
            ov = overlay(torch.from_numpy(f01), [(res["fixed_mask"], (0, 200, 0)), (res["warped_mask"], (230, 0, 0))])
            tile([[ov, checkerboard(torch.from_numpy(f01), torch.from_numpy(w01))]],
                 [["fixed; green fixed mask, red warped mask", "checkerboard fixed / warped"]]).save(tmp / "overlay.png")
            if metrics is None:
                metrics = metrics_of(res, fixed_spacing(fixed_path, fixed_img.shape))
            # absolute paths and the moving image's size: cxreg warp checks an image against them from any folder
            info = {"fixed": os.path.abspath(fixed_path), "moving": os.path.abspath(moving_path),
                    "moving_shape": [int(n) for n in mov.shape], **metrics}
            if options:
                info["options"] = options
            (tmp / "metrics.json").write_text(json.dumps(json_ready(info), indent=2))
    except OSError as e:  # a full disk, a folder gone read-only: the old outputs stay, nothing half-written
        raise InputError(f"{out}: cannot be written ({e.strerror or e})") from None
    return out


def register_files(pairs: list[dict], out_dir, model=DEFAULT_MODEL, device="cpu", overwrite=False, progress=True,
                   refine_steps: int = 0, single: bool = False, seg_model=None, size: int = 256,
                   strict: bool = False, registrar: Registrar | None = None, check_out: bool = True,
                   fix_folds: bool | None = None, refine_mask_weight: float = DEFAULT_MASK_WEIGHT,
                   refine_distance_weight: float = 0.0, mask_labels=None) -> list[dict]:
    """Register many pairs (dicts with moving, fixed[, moving_mask, fixed_mask]); each image is loaded and its
    lung mask predicted once. One sub-folder per pair ``<moving stem>__<fixed stem>`` (or ``out_dir`` itself
    when ``single``). A failing pair is reported and skipped. Returns one status dict per pair.

    The output folder is checked first (refused if it exists and is not empty, unless ``overwrite``, or if it
    cannot be written), before any model is loaded; each pair's folder is written atomically. ``strict``
    (``cxreg --debug``) raises a pair's error, with its traceback, instead of reporting it. ``registrar``:
    use these networks instead of loading ``model``/``seg_model`` (see :meth:`Registrar.from_networks`).
    ``mask_labels``: which values of label-map masks are lung (:func:`bundle.io.load_mask`)."""
    from tqdm import tqdm

    labels = parse_labels(mask_labels)
    check_writable(out_dir, overwrite or not check_out)
    reg = _registrar(registrar, model, fix_folds, seg_model=seg_model, device=device, size=size,
                     refine_steps=refine_steps, refine_mask_weight=refine_mask_weight,
                     refine_distance_weight=refine_distance_weight)
    job = PairJob(reg, out_dir, overwrite=overwrite, single=single, strict=strict, mask_labels=labels)
    for pr in tqdm(pairs, desc="registering", unit="pair", disable=not progress):
        job(pr)
    return job.status


def _registrar(registrar: Registrar | None, model, fix_folds: bool | None, **kw) -> Registrar:
    """The given ``registrar`` (an explicit ``fix_folds`` wins over its own), else a new one of ``model``."""
    if registrar is None:
        return Registrar(model, fix_folds=fix_folds, **kw)
    if fix_folds is not None:
        registrar.fix_folds = fix_folds
    return registrar


def pair_names(pairs: list[dict]) -> list[str]:
    """The output folder of each pair: ``<moving stem>__<fixed stem>``; when two different pairs would share one
    (the same file names in different folders, as DICOM exports have), the later ones get ``__2``, ``__3``, ...
    in list order, so no pair overwrites another. ``summary.json`` records each folder's moving and fixed paths."""
    names, used = [], set()
    for pr in pairs:
        names.append(_free_name(pr, used))
        used.add(names[-1])
    return names


def _free_name(pr: dict, used: set) -> str:
    base = f"{stem(pr['moving'])}__{stem(pr['fixed'])}"
    name, k = base, 1
    while name in used:
        k += 1
        name = f"{base}__{k}"
    return name


class PairJob:
    """Registers one pair dict (moving, fixed[, moving_mask, fixed_mask]) and writes its output folder: the
    step of :func:`register_files` and of the bundle's inference evaluator (:func:`inference_evaluator`).

    Each image is loaded and its lung mask predicted once (cached across pairs). A pair's folder is
    ``<moving stem>__<fixed stem>`` under ``out_dir`` (``out_dir`` itself when ``single``), written atomically.
    A pair dict's ``name`` (:func:`pair_names`, set by the pairs-CSV reader before any sharding) names its folder;
    without one, a name already used in this job gets the next free ``__2``, ``__3`` suffix.
    A failing pair gives ``{"pair", "ok": False, "error": <one line>}`` (raised instead when ``strict``).
    Every status is appended to ``self.status`` and returned. ``mask_labels``: which values of label-map
    masks are lung (:func:`bundle.io.load_mask`; recorded in the pair's ``metrics.json`` options).
    """

    def __init__(self, registrar: Registrar, out_dir, overwrite: bool = False, single: bool = False,
                 strict: bool = False, mask_labels=None):
        self.reg, self.out_dir, self.overwrite, self.single, self.strict = registrar, out_dir, overwrite, single, strict
        self.mask_labels = parse_labels(mask_labels)
        self.cache: dict = {}
        self.masks: dict = {}  # path -> mask, read once per job (as the images; a label warning once per file)
        self.status: list[dict] = []
        self.used: set[str] = set()

    def image(self, path):
        if path not in self.cache:
            arr = load_checked(path)
            sq = _to_square(_unit(arr, path), self.reg.size)[0]
            self.cache[path] = (arr, self.reg.lung_mask(sq))
        return self.cache[path]

    def reset(self) -> None:
        """Forget the images, masks and folder names read so far (a new run of the same job)."""
        self.cache.clear()
        self.masks.clear()
        self.used.clear()

    def mask(self, path):
        if path not in self.masks:
            self.masks[path] = load_mask(path, self.mask_labels)
        return self.masks[path]

    def __call__(self, pr: dict) -> dict:
        name = pr.get("name") or _free_name(pr, self.used)
        self.used.add(name)
        try:
            fixed, f_lung = self.image(pr["fixed"])
            moving, m_lung = self.image(pr["moving"])
            fm, mm = (self.mask(pr[k]) if pr.get(k) else None for k in ("fixed_mask", "moving_mask"))
            for m, img, key in ((fm, fixed, "fixed_mask"), (mm, moving, "moving_mask")):
                if m is not None and m.shape != img.shape:
                    raise InputError(f"{pr[key]}: mask size {m.shape} differs from its image {img.shape}")
            res = self.reg(fixed, moving, fm, mm, fixed_lung=f_lung, moving_lung=m_lung)
            dest = Path(self.out_dir) if self.single else Path(self.out_dir) / name
            met = metrics_of(res, fixed_spacing(pr["fixed"], fixed.shape))
            opts = self.reg.options()
            if self.mask_labels and (fm is not None or mm is not None):
                opts["mask_labels"] = list(self.mask_labels)
            write_outputs(res, dest, pr["fixed"], pr["moving"], overwrite=self.overwrite, options=opts, metrics=met,
                          fixed_img=fixed, moving_img=moving)
            st = {"pair": name, "ok": True, "out": str(dest), "moving": str(pr["moving"]), "fixed": str(pr["fixed"]),
                  **met}
        except InputError as e:
            if self.strict:
                raise
            st = {"pair": name, "ok": False, "error": str(e)}
        except (OSError, ValueError, RuntimeError, MemoryError) as e:  # unexpected: still one line, pair skipped
            if self.strict:
                raise
            st = {"pair": name, "ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0]}
        self.status.append(st)
        return st


def bool_arg(value, name: str) -> bool:
    """A bundle's true/false option as Fire passes it (``True``/``False`` or the strings true/false, on/off, ...;
    ``bool("false")`` would be True); an :class:`InputError` naming the option otherwise."""
    from .registration import as_bool

    try:
        return as_bool(value, name)
    except ValueError as e:
        raise InputError(str(e)) from None


def count_arg(value, name: str) -> int:
    """A bundle's whole-number option (>= 0) as Fire passes it (an int, or a string such as "3");
    an :class:`InputError` naming the option otherwise."""
    try:
        f = float(value)
        n = int(f) if not isinstance(value, bool) and f == int(f) else None
    except (TypeError, ValueError, OverflowError):
        n = None
    if n is None or n < 0:
        raise InputError(f"{name} must be a whole number >= 0, not {value!r}")
    return n


def weight_arg(value, name: str, default: float) -> float:
    """A bundle's refinement weight as Fire passes it (a number, or a string such as "80"; None = ``default``),
    checked as :func:`bundle.refine.check_weights` checks weights; a bool, nan, inf, a negative value or text
    is an :class:`InputError` naming the option."""
    if value is None:
        return float(default)
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        return check_weights({"w_mask": value})["w_mask"]
    except ValueError:
        raise InputError(f"{name} must be a finite number >= 0, not {value}") from None


def fix_folds_arg(value, name: str = "--fix_folds") -> bool | None:
    """A bundle's ``--fix_folds`` value: None/"none"/"null" = the model's setting, else true/false (Fire passes
    lower-case ``true``/``false`` as strings); anything else is an :class:`InputError` naming ``name``."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
        return None
    return bool_arg(value, name)


class RegistrationInferer(Inferer):
    """cxreg's registration pipeline as a MONAI ``Inferer``: ``inferer(inputs, network)``.

    ``inputs``: (B, 2, H, W) tensor, channel 0 the moving image and channel 1 the fixed one (grey values in any
    range; each image is scaled to [0, 1] as :func:`register` does). Returns the (B, 2, H, W) displacement field
    in pixels on the fixed grid (pull-back: fixed pixel p takes the moving value at p + ddf(p); channel 0 rows,
    1 columns), on the inputs' device. Lung masks come from the registrar's segmentation model; the working
    grid, refinement and fold removal are the registrar's. ``network`` (optional): a registration network with
    the registrar's settings to use instead of its own.
    """

    def __init__(self, registrar: Registrar):
        self.registrar = registrar

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module | None = None, *args, **kwargs) -> torch.Tensor:
        if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4 or inputs.shape[1] != 2:
            raise ValueError(f"inputs must be a (B, 2, H, W) tensor of moving and fixed images, not "
                             f"{tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__}")
        x = inputs.detach().float().cpu().numpy()
        ddf = [torch.from_numpy(self.registrar(x[i, 1], x[i, 0], net=network)["ddf"]) for i in range(len(x))]
        return torch.stack(ddf).to(inputs.device)


def inputs_dir(moving=None, fixed=None, pairs_csv=None) -> str | None:
    """The folder the bundle's inference reads from (its ``dataset_dir`` property): the pairs CSV's folder, else
    the fixed image's; None before any input is given."""
    src = pairs_csv or fixed
    return str(Path(src).resolve().parent) if src else None


def _one(batch: list):
    """DataLoader collate of the inference evaluator: one pair dict per iteration, paths kept as they are."""
    return batch[0]


class _Progress:
    """A tqdm bar over the inference evaluator's pairs (none for a single pair or without tqdm)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.bar = total, enabled, None

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: self.bar is not None and self.bar.update(1))
        engine.add_event_handler(Events.COMPLETED, lambda e: self.bar is not None and self.bar.close())

    def _start(self, engine) -> None:
        if self.enabled:
            from tqdm import tqdm

            bar = tqdm(total=self.total, desc="registering", unit="pair")
            self.bar = bar if hasattr(bar, "update") else None  # the bundle's no-tqdm fallback returns None


def inference_evaluator(moving=None, fixed=None, moving_mask=None, fixed_mask=None, pairs_csv=None,
                        output_dir="eval", model=DEFAULT_MODEL, seg_model=None, device="cpu", overwrite=False,
                        refine_steps=0, fix_folds=None, registrar: Registrar | None = None,
                        exit_on_error: bool = False, strict: bool = False, prefix: str = "cxreg inference",
                        mask_labels=None, refine_mask_weight=None, refine_distance_weight=None):
    """The registration bundle's ``evaluator``: a MONAI ``SupervisedEvaluator`` whose iterations are the pairs
    (``--moving``/``--fixed``, or the rows of ``--pairs_csv``) and whose step registers a pair and writes its
    folder (:class:`PairJob`); ``evaluator.network`` is the registration network and ``evaluator.inferer`` the
    pipeline as a :class:`RegistrationInferer`. Run it with :func:`run_inference`. ``refine_mask_weight`` and
    ``refine_distance_weight`` (None = ``cxreg register``'s defaults, :data:`bundle.refine.DEFAULT_MASK_WEIGHT`
    and 0) weigh the refinement's mask and boundary terms when ``refine_steps`` > 0; with a ``registrar`` its
    own weights are used.

    Checked here, in this order, before anything is written: the options, the inputs (pairs CSV, one pair's
    arguments), the output folder, the models. A problem raises :class:`InputError`, or, with
    ``exit_on_error``, ends the process with status 1 and ``<prefix>: error: <file>: <problem>``.
    """
    try:
        overwrite = bool_arg(overwrite, "--overwrite")
        fix_folds = fix_folds_arg(fix_folds)
        refine_steps = count_arg(refine_steps, "--refine_steps")
        mask_labels = parse_labels(mask_labels, "--mask_labels")
        weights = {"refine_mask_weight": weight_arg(refine_mask_weight, "--refine_mask_weight", DEFAULT_MASK_WEIGHT),
                   "refine_distance_weight": weight_arg(refine_distance_weight, "--refine_distance_weight", 0.0)}
        return _inference_evaluator(moving, fixed, moving_mask, fixed_mask, pairs_csv, output_dir, model, seg_model,
                                    device, overwrite, refine_steps, fix_folds, registrar, strict, mask_labels,
                                    weights)
    except (InputError, OSError) as e:
        if not exit_on_error:
            raise
        raise SystemExit(f"{prefix}: error: {e}") from None


def _inference_evaluator(moving, fixed, moving_mask, fixed_mask, pairs_csv, output_dir, model, seg_model, device,
                         overwrite, refine_steps, fix_folds, registrar, strict, mask_labels=None, weights=None):
    from types import SimpleNamespace

    from monai.data import Dataset
    from torch.utils.data import DataLoader

    from .cli import read_pairs_csv

    missing = None  # no inputs: an evaluator over no pairs (MONAI's check_properties builds it), refused at run
    if pairs_csv:
        pairs, single = read_pairs_csv(pairs_csv), False
    elif moving and fixed:
        pairs = [{"moving": moving, "fixed": fixed, "moving_mask": moving_mask, "fixed_mask": fixed_mask}]
        single = True
    elif moving or fixed:
        raise InputError(f"give both --moving and --fixed (only --{'moving' if moving else 'fixed'} was given), "
                         "or --pairs_csv")
    else:
        pairs, single, missing = [], True, "give --moving and --fixed, or --pairs_csv"
    if missing is None:
        check_writable(output_dir, overwrite)
    reg = _registrar(registrar, model, fix_folds, seg_model=seg_model, device=device, refine_steps=refine_steps,
                     **(weights or {}))
    job = PairJob(reg, output_dir, overwrite=overwrite, single=single, strict=strict, mask_labels=mask_labels)
    loader = DataLoader(Dataset(pairs), batch_size=1, shuffle=False, num_workers=0, collate_fn=_one)
    try:
        import ignite  # noqa: F401
    except ImportError:  # an exported bundle run with MONAI's core packages only
        ignite = None
    if ignite is None:
        ev = _PairLoop(loader, reg.net, RegistrationInferer(reg), job, progress=not single)
    else:
        from monai.engines import SupervisedEvaluator

        ev = SupervisedEvaluator(device=torch.device(reg.device), val_data_loader=loader, network=reg.net,
                                 iteration_update=lambda engine, pair: job(pair), inferer=RegistrationInferer(reg),
                                 decollate=False)
        _Progress(len(pairs), enabled=not single).attach(ev)
    ev.cxreg = SimpleNamespace(job=job, single=single, output_dir=output_dir, missing=missing)
    return ev


class _PairLoop:
    """The inference evaluator where pytorch-ignite is not installed (an exported registration bundle needs only
    MONAI's core packages): the same ``network``, ``inferer`` and ``run()``, one pair per step."""

    def __init__(self, loader, network, inferer, job, progress: bool):
        self.data_loader, self.network, self.inferer, self.job, self.progress = loader, network, inferer, job, progress

    def run(self) -> None:
        from tqdm import tqdm

        for pair in tqdm(self.data_loader, desc="registering", unit="pair", disable=not self.progress):
            self.job(pair)


def run_inference(evaluator, exit_on_error: bool = False, prefix: str = "cxreg inference") -> list[dict]:
    """Run an :func:`inference_evaluator`: one line per pair on stdout (failed pairs on stderr), ``summary.json``
    for a pairs CSV; returns the pairs' status dicts. A single pair's error is raised as :class:`InputError`
    (with ``exit_on_error``: status 1 and ``<prefix>: error: ...`` as the last line of stderr, as when any pair
    of a CSV failed; an :class:`OSError` while writing is one line too). Each run reports its own pairs only
    (an evaluator run twice starts afresh: images are read again, earlier statuses are not counted)."""
    try:
        return _run_inference(evaluator, exit_on_error, prefix)
    except (InputError, OSError) as e:
        if not exit_on_error:
            raise
        raise SystemExit(f"{prefix}: error: {e}") from None


def status_line(s: dict) -> str:
    """The line printed for a registered pair: ``<pair>: JAC n[ DSC x HD x HD95 x ASSD x] -> <folder>``."""
    extra = "".join(f" {k.upper()} {s[k]:.4g}" for k in ("dsc", "hd", "hd95", "assd") if k in s)
    return f"{s['pair']}: JAC {s['jac']}{extra} -> {s['out']}"


def _run_inference(evaluator, exit_on_error: bool, prefix: str) -> list[dict]:
    c = evaluator.cxreg
    if c.missing:
        raise InputError(c.missing)
    c.job.reset()  # a second run reads its files again and names its pairs afresh (the same folders, no __2)
    n0 = len(c.job.status)
    evaluator.run()
    status = c.job.status[n0:]
    for s in status:
        if s["ok"]:
            print(status_line(s))
        elif not c.single:  # a single pair's error is raised below
            print(f"{s['pair']}: FAILED: {s['error']}", file=sys.stderr)
    if not c.single:
        write_summary(c.output_dir, status)
    if c.single and not status[0]["ok"]:
        raise InputError(status[0]["error"])
    if exit_on_error and not all(s["ok"] for s in status):
        raise SystemExit(f"{prefix}: error: {sum(not s['ok'] for s in status)} of {len(status)} pair(s) "
                         f"failed (see above and {c.output_dir}/summary.json)")
    return status


def bundle_inference(moving=None, fixed=None, moving_mask=None, fixed_mask=None, pairs_csv=None, output_dir="eval",
                     model=DEFAULT_MODEL, seg_model=None, device="cpu", overwrite=False, refine_steps=0,
                     exit_on_error: bool = False, registrar: Registrar | None = None,
                     fix_folds: bool | None = None, mask_labels=None) -> list[dict]:
    """The registration bundle's inference in one call (:func:`inference_evaluator`, then :func:`run_inference`):
    the same outputs as ``cxreg register`` for one pair or a pairs CSV.

    With ``exit_on_error`` (the config's default unless ``--debug True``) a user error ends the process with
    status 1 and ``cxreg inference: error: <file>: <problem>`` as the last line of stderr, instead of
    MONAI's ``RuntimeError: Failed to evaluate ...`` traceback.
    """
    ev = inference_evaluator(moving, fixed, moving_mask, fixed_mask, pairs_csv, output_dir, model, seg_model, device,
                             overwrite, refine_steps, fix_folds, registrar, exit_on_error, mask_labels=mask_labels)
    return run_inference(ev, exit_on_error)
