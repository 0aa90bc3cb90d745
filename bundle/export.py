# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""``cxreg export``: standalone MONAI bundles (zip) that run without ``pip install cxreg``.

One zip per model, ``<out>/cxreg_<kind>_<dataset>_v<version>.zip``, laid out as a MONAI model-zoo bundle::

    cxreg_<kind>_<ds>/
      LICENSE
      configs/metadata.json inference.json train.json evaluate.json logging.conf
      models/model.pt            plain state dict (+ models/segmentation.pt for registration)
      models/model.ts            TorchScript (traced by ``python -m monai.bundle ckpt_export``)
      docs/README.md
      scripts/__init__.py
      scripts/cxreg/...          a copy of this package (imported as ``scripts.cxreg``)

The configs of the repository are rewritten (``bundle.x`` -> ``scripts.cxreg.x``, paths inside the bundle
folder). ``metadata.json`` carries the SHA-256 of every weights file (``cxreg_weights_sha256``), checked by
:func:`check_weights` before any weights are loaded, and the measured metrics read from ``docs/results`` at
export time. The functions below the exporter (:func:`run_registration`, :func:`check_weights`,
:func:`load_any_registration`) are what the exported configs call, from the copy inside the bundle.

Inference in an exported registration bundle needs monai (+ fire for ``python -m monai.bundle``), torch, itk,
nibabel and pillow: tqdm, scikit-image and scipy are replaced by torch fallbacks here when they are missing
(mask cleaning and HD/ASSD give the same values, see tests/test_export.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from .io import InputError

__all__ = [
    "KINDS",
    "PACKAGE",
    "bundle_name",
    "export_bundle",
    "sha256",
    "check_weights",
    "registration_evaluator",
    "run_registration",
    "load_any_registration",
    "clean_masks_torch",
    "hausdorff_torch",
    "assd_torch",
    "add_parser",
]

KINDS = ("segmentation", "autoencoder", "registration")
PACKAGE = "cxreg"  # the copy of this package inside an exported bundle: scripts/cxreg, imported as scripts.cxreg
HASH_KEY = "cxreg_weights_sha256"
_SRC = Path(__file__).resolve().parent
# the bundle folder, from the copy of this package inside it (scripts/cxreg/export.py -> parents[2])
BUNDLE_ROOT_EXPR = "$os.path.dirname(os.path.dirname(os.path.abspath(scripts.__file__)))"
PAPER = ("He Z, He Y, Cao W. Deformable image registration with attention-guided fusion of multi-scale "
         "deformation fields. Applied Intelligence, 2022.")


def bundle_name(kind: str, dataset: str) -> str:
    """``cxreg_<kind>_<dataset>`` in lower case (model-zoo names are lower case)."""
    return f"cxreg_{kind}_{dataset}".lower()


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ============================================================================================ runtime
# (called by the configs of exported bundles, from scripts/cxreg/export.py inside the bundle)
def check_weights(bundle_root: str | os.PathLike) -> dict:
    """Compare every weights file listed in ``configs/metadata.json`` with its SHA-256; InputError on mismatch."""
    root = Path(bundle_root)
    meta_path = root / "configs" / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{meta_path}: cannot read the bundle metadata ({e})") from None
    hashes = meta.get(HASH_KEY) or {}
    if not hashes:
        raise InputError(f"{meta_path}: no '{HASH_KEY}' entry (not a cxreg bundle?)")
    for rel, want in hashes.items():
        p = root / rel
        if not p.is_file():
            raise InputError(f"{p}: weights file missing from the bundle")
        got = sha256(p)
        if got != want:
            raise InputError(f"{p}: SHA-256 {got[:16]}... does not match {want[:16]}... in configs/metadata.json "
                             "(the file is damaged or was replaced; download the bundle again)")
    return meta


def check_weights_or_exit(bundle_root) -> dict:
    """:func:`check_weights` with a one-line message and exit status 1 instead of a traceback."""
    try:
        return check_weights(bundle_root)
    except InputError as e:
        raise SystemExit(f"cxreg bundle: error: {e}") from None


def _labels_8(mask: torch.Tensor) -> torch.Tensor:
    """8-connected component labels of a (H, W) bool mask by max-label propagation (0 = background)."""
    import torch.nn.functional as F

    h, w = mask.shape
    lab = torch.where(mask, torch.arange(1, h * w + 1, dtype=torch.float64).view(h, w), torch.zeros((), dtype=torch.float64))
    while True:
        new = F.max_pool2d(lab[None, None], 3, 1, 1)[0, 0] * mask
        if torch.equal(new, lab):
            return lab
        lab = new


def clean_masks_torch(masks: torch.Tensor) -> torch.Tensor:
    """The same as ``bundle.priors.clean_masks`` with torch only (no scikit-image/scipy).

    Keeps the two largest 8-connected lung components (MONAI ``KeepLargestConnectedComponent`` with full
    connectivity) and fills holes, i.e. background not 8-connected to the image border (MONAI ``FillHoles``).
    (B, 1, H, W) 0/1 in and out.
    """
    import torch.nn.functional as F

    out = []
    for m in masks.float().cpu():
        fg = m[0] > 0.5
        lab = _labels_8(fg)
        ids, counts = torch.unique(lab[fg], return_counts=True)
        if len(ids) > 2:
            keep = ids[torch.argsort(counts, descending=True, stable=True)[:2]]
            fg = torch.isin(lab, keep)
        bg = ~fg
        reach = torch.zeros_like(bg)
        reach[0, :], reach[-1, :], reach[:, 0], reach[:, -1] = bg[0, :], bg[-1, :], bg[:, 0], bg[:, -1]
        while True:
            new = (F.max_pool2d(reach[None, None].float(), 3, 1, 1)[0, 0] > 0) & bg
            if torch.equal(new, reach):
                break
            reach = new
        out.append((~reach).float()[None])
    return torch.stack(out)


def _edges(m: torch.Tensor) -> torch.Tensor:
    """MONAI's mask boundary: the mask minus its erosion by a 4-neighbour cross (outside = background)."""
    import torch.nn.functional as F

    p = F.pad(m[None, None].float(), (1, 1, 1, 1))[0, 0] > 0
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~inner


def _boundary_distances(pred, target, spacing=None) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
    """Per batch item: (distances of pred's boundary pixels to target's boundary, and the reverse); None if empty."""
    from .metrics import _as_tensor

    p, t = _as_tensor(pred) > 0.5, _as_tensor(target) > 0.5
    scale = torch.tensor(spacing if spacing else (1.0, 1.0), dtype=torch.float64)
    out = []
    for a, b in zip(p[:, 0], t[:, 0]):
        if not a.any() or not b.any():
            out.append(None)
            continue
        ca = torch.nonzero(_edges(a)).double() * scale
        cb = torch.nonzero(_edges(b)).double() * scale
        d = torch.cdist(ca, cb)
        out.append((d.min(1).values, d.min(0).values))
    return out


def surface_metrics_torch(pred, target, spacing=None, hd95: bool = False):
    """``bundle.metrics.surface_metrics`` (HD, ASSD[, HD95]) without scipy, from one boundary-distance pass; each (B,).

    HD as MONAI ``HausdorffDistanceMetric`` (maximum); ASSD as ``SurfaceDistanceMetric(symmetric=True)`` (the
    mean of both directions' boundary distances taken together); HD95 the larger of the two directions' 95th
    percentiles (``torch.quantile``, as MONAI); NaN where a mask is empty."""
    hd, sd, h95 = [], [], []
    for d in _boundary_distances(pred, target, spacing):
        hd.append(float("nan") if d is None else float(max(d[0].max(), d[1].max())))
        sd.append(float("nan") if d is None else float(torch.cat(d).mean()))
        if hd95:
            h95.append(float("nan") if d is None else max(float(torch.quantile(x.double(), 0.95)) if x.numel() else 0.0
                                                          for x in d))
    return (torch.tensor(hd), torch.tensor(sd), torch.tensor(h95)) if hd95 else (torch.tensor(hd), torch.tensor(sd))


def hausdorff_torch(pred, target, spacing=None) -> torch.Tensor:
    """``bundle.metrics.hausdorff`` without scipy; (B,)."""
    return surface_metrics_torch(pred, target, spacing)[0]


def assd_torch(pred, target, spacing=None) -> torch.Tensor:
    """``bundle.metrics.assd`` without scipy; (B,)."""
    return surface_metrics_torch(pred, target, spacing)[1]


def _use_fallbacks() -> None:
    """Let the inference path run where tqdm / scikit-image / scipy are not installed."""
    import types

    def missing(mod: str) -> bool:
        try:
            __import__(mod)
            return False
        except ImportError:
            return True

    if missing("tqdm"):
        fake = types.ModuleType("tqdm")
        fake.tqdm = lambda it=None, *a, **k: it  # no progress bar
        sys.modules["tqdm"] = fake
    if missing("skimage.measure") or missing("scipy.ndimage"):
        from . import priors

        priors.clean_masks = clean_masks_torch
    if missing("scipy.ndimage"):
        from . import metrics

        metrics.hausdorff, metrics.assd = hausdorff_torch, assd_torch
        metrics.surface_metrics = surface_metrics_torch


def load_any_registration(path: str | os.PathLike, settings: dict, device="cpu"):
    """(network, RegSettings) from a plain state dict (``models/model.pt``) or a cxreg ``{"model", "settings"}``."""
    from .registration import RegSettings, build_registration
    from .workflow import safe_load

    ck = safe_load(path, device)
    if isinstance(ck, dict) and "model" in ck and "settings" in ck:
        settings, ck = ck["settings"], ck["model"]
    s = RegSettings.from_dict(settings)
    net = build_registration(s)
    net.load_state_dict(ck)
    return net.to(device).eval(), s


def _bundle_names(meta: dict, root: Path, seg_models=("segmentation.pt",), seg_tta: bool = False) -> dict:
    """``{"model", "seg_model"}`` naming an exported bundle's weights from its metadata (as
    :func:`check_weights` returns it), e.g. ``bundle <name> 0.5.3: models/model.pt``, for the ``options`` in
    each pair's ``metrics.json``; lung-mask ensembles and TTA are written as ``cxreg register`` takes them,
    ``models/segmentation.pt+models/segmentation_2.pt@tta``."""
    tag = f"bundle {meta.get('name', root.name)} {meta.get('version', '')}".rstrip()
    seg = "+".join(f"models/{f}" for f in seg_models) + ("@tta" if seg_tta else "")
    return {"model": f"{tag}: models/model.pt", "seg_model": f"{tag}: {seg}"}


def _bundle_segmentation(root: Path, seg_network, seg_models, seg_tta: bool) -> torch.nn.Module:
    """The lung-mask model of an exported bundle: ``seg_network`` loaded from the first of ``seg_models``
    (files in ``models/``), further members in fresh copies of it averaged (:class:`SegEnsemble`), and
    wrapped in :class:`SegShiftTTA` when ``seg_tta``; each member keeps the working size stored in its weights.
    The copies are made before the first member loads: weights saved without a working size (the 128 x 128
    models before 0.5.1) take the network's default, not the size of a member loaded before them (before 0.5.11
    ``SHEN256+...+SHEN`` ran its ``SHEN`` member at 256)."""
    import copy

    from .networks.segmentation import SegEnsemble, SegShiftTTA
    from .workflow import load_weights

    template = copy.deepcopy(seg_network)
    nets = []
    for i, f in enumerate(seg_models):
        net = seg_network if i == 0 else copy.deepcopy(template)
        net.load_state_dict(load_weights(root / "models" / f))
        nets.append(net)
    seg = nets[0] if len(nets) == 1 else SegEnsemble(nets)
    return SegShiftTTA(seg) if seg_tta else seg


def _checked_seg_files(root: Path, meta: dict, seg_models, config: str = "inference.json") -> list[str]:
    """``seg_models`` as a list of file names in ``models/``, each with a SHA-256 in the bundle's metadata
    (checked by :func:`check_weights`); otherwise an :class:`InputError` naming the config or metadata file."""
    seg_models = [seg_models] if isinstance(seg_models, str) else list(seg_models)
    if not seg_models:
        raise InputError(f"{root / 'configs' / config}: seg_models is empty (name at least one file in models/)")
    unlisted = [f for f in seg_models if f"models/{f}" not in meta.get(HASH_KEY, {})]
    if unlisted:
        raise InputError(f"{root / 'configs' / 'metadata.json'}: seg_models {unlisted} have no SHA-256 in "
                         f"'{HASH_KEY}' (only the bundle's own, checked weights are loaded)")
    return seg_models


def eval_fix_folds_option(value) -> bool | None:
    """``evaluate.json``'s ``--eval_fix_folds``: None/null = the model's setting, else true/false as strings or
    booleans; anything else: one line on stderr and exit status 1."""
    from .register import fix_folds_arg

    try:
        return fix_folds_arg(value, "--eval_fix_folds")
    except InputError as e:
        raise SystemExit(f"cxreg bundle: error: {e}") from None


def _refine_values(refine_steps, refine_mask_weight, refine_distance_weight=0.0) -> tuple[int, float, float]:
    """A bundle's ``--refine_steps``, ``--refine_mask_weight`` and ``--refine_distance_weight`` as Fire passes them
    (numbers or strings; a weight of None = ``cxreg register``'s default), checked; :class:`InputError` naming the
    option otherwise."""
    from .refine import DEFAULT_MASK_WEIGHT
    from .register import count_arg, weight_arg

    return (count_arg(refine_steps, "--refine_steps"),
            weight_arg(refine_mask_weight, "--refine_mask_weight", DEFAULT_MASK_WEIGHT),
            weight_arg(refine_distance_weight, "--refine_distance_weight", 0.0))


def eval_refine_options(refine_steps, refine_mask_weight, refine_distance_weight=0.0) -> dict:
    """``evaluate.json``'s ``--refine_steps``, ``--refine_mask_weight`` and ``--refine_distance_weight``, checked
    as the bundle's ``inference`` checks them: ``{"refine_steps": int, "refine_weights": {"w_mask": w,
    "w_dist": d}}`` for :class:`bundle.registration.EvalStep`; a bad value: one line on stderr and exit status 1."""
    try:
        steps, w, wd = _refine_values(refine_steps, refine_mask_weight, refine_distance_weight)
    except InputError as e:
        raise SystemExit(f"cxreg bundle: error: {e}") from None
    return {"refine_steps": steps, "refine_weights": {"w_mask": w, "w_dist": wd}}


def bundle_attention(bundle_root, seg_model, seg_network, seg_models=("segmentation.pt",), seg_tta: bool = False):
    """The attention masks' source for an exported bundle's ``evaluate.json``
    (:func:`bundle.registration.test_pairs`' ``seg_model``): ``"truth"`` as given; the bundle's own lung-mask
    model (``seg_model`` = its ``models/segmentation.pt``, the default) as its ``inference`` runs it, i.e. the
    members ``seg_models`` averaged, with shift TTA if ``seg_tta``, after their SHA-256 check; any other path as
    given. Errors: one line on stderr and exit status 1."""
    root = Path(bundle_root)
    if seg_model is None or str(seg_model).lower() in ("truth", "none", ""):
        return "truth"
    if Path(seg_model).resolve() != (root / "models" / "segmentation.pt").resolve():
        return seg_model
    try:
        _use_fallbacks()
        files = _checked_seg_files(root, check_weights(root), seg_models, config="evaluate.json")
        from .register import bool_arg

        tta = bool_arg(seg_tta, "--seg_tta")
        return _bundle_segmentation(root, seg_network, files, tta).eval()
    except InputError as e:
        raise SystemExit(f"cxreg bundle: error: {e}") from None


def registration_evaluator(bundle_root, network, seg_network, settings: dict, moving=None, fixed=None,
                           moving_mask=None, fixed_mask=None, pairs_csv=None, output_dir="eval", device="cpu",
                           overwrite=False, refine_steps: int = 0, debug: bool = False, fix_folds: bool | None = None,
                           seg_models=("segmentation.pt",), seg_tta: bool = False,
                           refine_mask_weight: float | None = None, mask_labels=None,
                           refine_distance_weight: float | None = None):
    """An exported registration bundle's ``evaluator`` (:func:`bundle.register.inference_evaluator` with the
    bundle's own weights: ``models/model.pt`` loaded into ``network`` and the lung-mask model(s) ``seg_models``
    in ``models/``, averaged if several, with shift TTA if ``seg_tta``, after their SHA-256 check);
    ``refine_steps`` test-time refinement steps with ``refine_mask_weight`` and ``refine_distance_weight`` (None =
    ``cxreg register``'s defaults).
    Errors: one line on stderr and exit status 1 (a traceback with ``--debug True``)."""
    from .register import bool_arg

    try:
        debug = bool_arg(debug, "--debug")  # Fire passes --debug false as the string "false"
    except InputError as e:
        raise SystemExit(f"cxreg bundle: error: {e}") from None
    try:
        _use_fallbacks()
        root = Path(bundle_root)
        meta = check_weights(root)
        from . import register as reg_mod
        from .workflow import load_weights

        device = str(device)
        refine_steps, w, wd = _refine_values(refine_steps, refine_mask_weight, refine_distance_weight)
        seg_models = _checked_seg_files(root, meta, seg_models)
        network.load_state_dict(load_weights(root / "models" / "model.pt"))
        seg_tta = bool_arg(seg_tta, "--seg_tta")
        seg = _bundle_segmentation(root, seg_network, seg_models, seg_tta)
        registrar = reg_mod.Registrar.from_networks(network, settings, seg.to(device).eval(), device=device,
                                                    refine_steps=refine_steps,
                                                    fix_folds=reg_mod.fix_folds_arg(fix_folds),
                                                    names=_bundle_names(meta, root, seg_models, seg_tta),
                                                    refine_mask_weight=w, refine_distance_weight=wd)
        return reg_mod.inference_evaluator(moving=moving, fixed=fixed, moving_mask=moving_mask, fixed_mask=fixed_mask,
                                           pairs_csv=pairs_csv, output_dir=output_dir, model="bundle", device=device,
                                           overwrite=overwrite, refine_steps=refine_steps, exit_on_error=not debug,
                                           registrar=registrar, strict=debug, mask_labels=mask_labels)
    except InputError as e:
        if debug:
            raise
        raise SystemExit(f"cxreg bundle: error: {e}") from None


def run_registration(bundle_root, network, seg_network, settings: dict, *args, debug: bool = False,
                     **kw) -> list[dict]:
    """What an exported registration bundle's ``inference`` does in one call: :func:`registration_evaluator`
    (same arguments), then :func:`bundle.register.run_inference`: ``cxreg register``'s outputs for one pair
    (``moving``, ``fixed``) or a pairs CSV (``pairs_csv``)."""
    from .register import bool_arg, run_inference

    ev = registration_evaluator(bundle_root, network, seg_network, settings, *args, debug=debug, **kw)
    return run_inference(ev, exit_on_error=not bool_arg(debug, "--debug"))


# ============================================================================================ exporter
def _rewrite(obj, pkg: str = f"scripts.{PACKAGE}"):
    """Config values with the package name ``bundle`` replaced by the copy inside the bundle."""
    import re

    if isinstance(obj, dict):
        return {k: _rewrite(v, pkg) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rewrite(v, pkg) for v in obj]
    if isinstance(obj, str):
        obj = re.sub(r"^\$import bundle$", f"$import {pkg}", obj)
        return re.sub(r"(?<![\w.])bundle\.", f"{pkg}.", obj)
    return obj


def _after_option_check(cfg: dict, item: str) -> list[str]:
    """``cfg``'s ``initialize`` with ``item`` after its first step, the option check (``check_overrides``), so
    that a misspelt option is reported before the weights are hashed."""
    init = list(cfg.get("initialize", []))
    k = 1 if init and "check_overrides(" in init[0] else 0
    return [*init[:k], item, *init[k:]]


def _imports(cfg: dict) -> list[str]:
    imp = [i for i in cfg.get("imports", []) if i != f"$import scripts.{PACKAGE}"]
    return ["$import os", "$import scripts", f"$import scripts.{PACKAGE}", f"$import scripts.{PACKAGE}.export",
            *[i for i in imp if i not in ("$import os",)]]


def _repo_cfg(kind: str, name: str) -> dict:
    sub = "" if kind == "registration" else kind
    return json.loads((_SRC.parent / "configs" / sub / name).read_text())


def _versions() -> dict:
    import importlib.metadata as md

    def v(p):
        try:
            return md.version(p)
        except md.PackageNotFoundError:
            return None

    return {p: v(p) for p in ("monai", "torch", "numpy", "itk", "nibabel", "pillow", "fire", "pytorch-ignite",
                              "tensorboard", "scipy", "scikit-image", "tqdm")}


def _mean(v) -> float:
    import numpy as np

    return round(float(np.nanmean(np.asarray(v, dtype=float))), 4)


def _universal_metrics(kind: str, res: Path) -> tuple[dict, str]:
    """The universal model's test metrics on each dataset, keyed ``<DS>_<metric>``: registration from
    ``docs/results/registration/<DS>_universal_df1`` (the shipped universal model since 0.5.0, universal
    segmentation as attention, fix_folds on), segmentation from ``docs/results/generalisation``."""
    out, src = {}, ""
    g = res / "generalisation"
    if kind == "registration":
        for ds in ("JSRT", "MONT", "SHEN"):
            p = res / "registration" / f"{ds}_universal_df1" / "summary.json"
            if p.is_file():
                m = json.loads(p.read_text())["metrics"]
                out.update({f"{ds}_{k}_mean": round(m[k]["mean"], 4) for k in ("dsc", "hd", "assd", "jac") if k in m})
                src = str((res / "registration").relative_to(_SRC.parent)) + "/<DS>_universal_df1"
    elif kind == "segmentation" and (g / "segmentation.json").is_file():
        d = json.loads((g / "segmentation.json").read_text())
        for ds in ("JSRT", "MONT", "SHEN"):
            r = d.get(f"universal_on_{ds}")
            if r:
                out.update({f"{ds}_test_dsc_mean": round(r["dsc"], 4), f"{ds}_test_hd_mean": round(r["hd"], 3),
                            f"{ds}_test_assd_mean": round(r["assd"], 3)})
                src = str((g / "segmentation.json").relative_to(_SRC.parent))
    if out:
        out["units"] = "pixels of the 256x256 images"
    return out, src


def _summary_metrics(s: dict) -> dict:
    """eval_metrics of a registration results row from its ``summary.json`` (means, pairs, units, size)."""
    m = s["metrics"]
    out = {f"{k}_mean": round(m[k]["mean"], 4) for k in ("dsc", "hd", "assd", "jac") if k in m}
    out.update({"test_pairs": s.get("n_pairs"), "units": s.get("units", "pixels"),
                "images": f"{s.get('size', 256)}x{s.get('size', 256)}"})
    return out


def measured_metrics(kind: str, dataset: str, results: str | os.PathLike | None = None) -> tuple[dict, str]:
    """(eval_metrics, source file) for the shipped model, read from docs/results (no hard-coded numbers)."""
    from .priors import shipped_name

    res = Path(results) if results else _SRC.parent / "docs" / "results"
    if shipped_name(dataset) == "universal":
        return _universal_metrics(kind, res)
    if kind == "registration":
        p = res / "registration" / f"{dataset}_shipped_ff" / "summary.json"  # as shipped since 0.5.0 (fix_folds)
        if not p.is_file():
            p = res / "registration" / f"{dataset}_shipped" / "summary.json"
        if not p.is_file():
            return {}, ""
        return _summary_metrics(json.loads(p.read_text())), str(p.relative_to(_SRC.parent))
    p = res / "priors.json"
    if not p.is_file():
        return {}, ""
    d = json.loads(p.read_text())
    if kind == "segmentation":
        r = d.get(f"segmentation/{dataset}/CE + contour")
        if not r:
            return {}, ""
        c = r["clean"]
        return ({"test_dsc_mean": _mean(c["dsc"]), "test_hd_mean": _mean(c["hd"]), "test_assd_mean": _mean(c["assd"]),
                 "test_images": len(r["ids"]), "units": "pixels of the 256x256 images"}, str(p.relative_to(_SRC.parent)))
    out = {}
    for inp in ("clean", "corrupted"):
        r = d.get(f"autoencoder/{dataset}/CE + contour/{inp}")
        if r:
            out.update({f"test_{inp}_dsc_mean": _mean(r["dsc"]), f"test_{inp}_hd_mean": _mean(r["hd"]),
                        f"test_{inp}_assd_mean": _mean(r["assd"])})
            out["test_images"] = len(r["ids"])
    if out:
        out["units"] = "pixels of the 256x256 images"
    return out, str(p.relative_to(_SRC.parent)) if out else ""


def _same_weights(a, b) -> bool:
    """Whether two registration model names or paths (``"universal"``, ``models/registration_universal.pt``)
    resolve to the same weights file."""
    from .priors import weights_path

    return Path(weights_path("registration", a)).resolve() == Path(weights_path("registration", b)).resolve()


def _same_seg(a, b) -> bool:
    """Whether two ``--seg-model`` values (names, paths, ``A+B`` ensembles, ``@tta``) run the same weights the
    same way."""
    from .priors import ensemble_members, split_tta, weights_path

    (ba, ta), (bb, tb) = split_tta(a), split_tta(b)
    ma, mb = ensemble_members(ba) or [ba], ensemble_members(bb) or [bb]
    if ta != tb or len(ma) != len(mb):
        return False
    return all(Path(weights_path("segmentation", x)).resolve() == Path(weights_path("segmentation", y)).resolve()
               for x, y in zip(ma, mb))


def row_metrics(dataset: str, row: str, inference: dict, fix_folds: bool, results=None) -> tuple[dict, str]:
    """(eval_metrics, source) of the results row ``docs/results/registration/<dataset>_<row>/summary.json``,
    after checking that the row was measured with the bundle's settings (``inference``: ``model``,
    ``seg_model``, ``refine_steps``, ``refine_mask_weight``; ``fix_folds``); InputError naming the file and the
    first setting that differs."""
    res = Path(results) if results else _SRC.parent / "docs" / "results"
    p = res / "registration" / f"{dataset}_{row}" / "summary.json"
    if not p.is_file():
        raise InputError(f"{p}: no such results row (--metrics-row names a folder docs/results/registration/"
                         f"{dataset}_<row>)")
    s = json.loads(p.read_text())
    o = s.get("options") or {}
    if o.get("method") not in (None, "ours"):
        raise InputError(f"{p}: measured with method {o.get('method')!r}, not ours")
    diffs = []
    if "model" in o and not _same_weights(o["model"], inference["model"]):
        diffs.append(("model", o["model"], inference["model"]))
    if "seg_model" in o and not _same_seg(o["seg_model"] or o.get("model"), inference["seg_model"]):
        diffs.append(("seg_model", o["seg_model"], inference["seg_model"]))
    if int(o.get("refine", 0)) != int(inference["refine_steps"]):
        diffs.append(("refine", o.get("refine", 0), inference["refine_steps"]))
    elif inference["refine_steps"] and (float(o.get("refine_mask_weight", 1.0)) != float(inference["refine_mask_weight"])
                                        or o.get("refine_size", 128) != 128 or o.get("refine_distance_weight", 0.0)):
        diffs.append(("refine_mask_weight / refine_size / refine_distance_weight",
                      (o.get("refine_mask_weight", 1.0), o.get("refine_size", 128), o.get("refine_distance_weight", 0.0)),
                      (inference["refine_mask_weight"], 128, 0.0)))
    if o.get("fix_folds") in ("on", "off") and (o["fix_folds"] == "on") != bool(fix_folds):
        diffs.append(("fix_folds", o["fix_folds"], "on" if fix_folds else "off"))
    if diffs:
        k, got, want = diffs[0]
        raise InputError(f"{p}: measured with {k} {got!r}, the bundle runs {want!r} (choose the row that matches, or "
                         "leave --metrics-row out)")
    return _summary_metrics(s), str(p.relative_to(_SRC.parent)) if p.is_relative_to(_SRC.parent) else str(p)


def _metadata(kind: str, dataset: str, version: str, hashes: dict, results=None, metrics=None) -> dict:
    meta = _repo_cfg(kind, "metadata.json")
    v = _versions()
    metrics, src = metrics or measured_metrics(kind, dataset, results)
    meta.update({
        "version": version,
        "changelog": {version: meta.get("changelog", {}).get(version, f"cxreg {version}: model trained on {dataset}")},
        "monai_version": v["monai"], "pytorch_version": v["torch"].split("+")[0], "numpy_version": v["numpy"],
        "name": f"{meta['name']}, trained on {dataset}",
        "references": [PAPER],
        "image_classes": "one grey chest radiograph (PNG 8/16-bit or 2D NIfTI), any size; scaled to [0, 1]",
        "eval_metrics": metrics,
    })
    if kind == "registration":
        meta["required_packages_version"] = {k: v[k] for k in ("itk", "nibabel", "pillow", "fire") if v[k]}
        meta["optional_packages_version"] = {k: v[k] for k in ("pytorch-ignite", "tensorboard", "scipy",
                                                                  "scikit-image", "tqdm") if v[k]}
        meta["label_classes"] = "optional lung masks (0 background, >0 lung) of the moving and fixed images"
        meta["pred_classes"] = ("warped moving image, displacement field (2 channels, pixels), Jacobian determinant, "
                                "warped lung mask")
        meta["description"] += (" Inference also needs the lung segmentation model, shipped as models/segmentation.pt;"
                                " the shape-prior autoencoder is used for training only.")
    else:
        meta["required_packages_version"] = {k: v[k] for k in ("pytorch-ignite", "itk", "nibabel", "pillow", "fire")
                                             if v[k]}
        meta["optional_packages_version"] = {k: v[k] for k in ("tensorboard", "scipy", "scikit-image") if v[k]}
        meta["label_classes"] = "0 background, 1 lung (both lungs, heart excluded)"
        meta["pred_classes"] = "0 background, 1 lung"
    meta["data_type"] = "png, nifti"
    meta["eval_metrics_source"] = src or "not measured"
    meta[HASH_KEY] = hashes
    return meta


def _configs(kind: str, dataset: str, settings: dict | None, inference: dict | None = None) -> dict[str, dict]:
    """The configs of an exported bundle, from the repository's (override files such as
    ``multi_gpu_train.json`` are copied with the package name rewritten); ``inference`` (registration) holds
    the lung-mask files, TTA and refinement defaults of ``configs/inference.json``."""
    from .refine import DEFAULT_MASK_WEIGHT

    inference = {"seg_files": ["segmentation.pt"], "seg_tta": False, "refine_steps": 0,
                 "refine_mask_weight": DEFAULT_MASK_WEIGHT, **(inference or {})}
    out = {}
    sub = _SRC.parent / "configs" / ("" if kind == "registration" else kind)
    for extra in ("multi_gpu_train.json", "multi_gpu_evaluate.json"):
        if (sub / extra).is_file():
            out[extra] = _rewrite(json.loads((sub / extra).read_text()))
    if kind == "registration":
        net = {"_target_": f"scripts.{PACKAGE}.networks.MultiScaleRegNet", "spatial_dims": 2, **settings["net"]}
        out["inference.json"] = {
            "imports": ["$import os", "$import torch", "$import scripts", f"$import scripts.{PACKAGE}.export",
                        f"$import scripts.{PACKAGE}.register", f"$import scripts.{PACKAGE}.workflow"],
            "bundle_root": BUNDLE_ROOT_EXPR,
            "dataset": dataset,
            "model_path": "$os.path.join(@bundle_root, 'models', 'model.pt')",
            "seg_model_path": "$os.path.join(@bundle_root, 'models', 'segmentation.pt')",
            "device": "$'cuda' if torch.cuda.is_available() else 'cpu'",
            "settings": settings,
            "network_def": net,
            "seg_network_def": {"_target_": f"scripts.{PACKAGE}.networks.LungSegNet", "spatial_dims": 2},
            "moving": None, "fixed": None, "moving_mask": None, "fixed_mask": None, "pairs_csv": None,
            "mask_labels": None,
            "output_dir": "$os.path.join(@bundle_root, 'eval')",
            "overwrite": False,
            "seg_models": list(inference["seg_files"]),
            "seg_tta": bool(inference["seg_tta"]),
            "refine_steps": int(inference["refine_steps"]),
            "refine_mask_weight": float(inference["refine_mask_weight"]),
            "refine_distance_weight": float(inference.get("refine_distance_weight", 0.0)),
            "fix_folds": None,
            "debug": False,
            # MONAI's inference-workflow properties (check_properties): the evaluator over the pairs, its
            # network and the pipeline as an Inferer, the folder the inputs are read from
            "dataset_dir": f"$scripts.{PACKAGE}.register.inputs_dir(@moving, @fixed, @pairs_csv)",
            "evaluator": f"$scripts.{PACKAGE}.export.registration_evaluator(@bundle_root, @network_def, "
                         "@seg_network_def, @settings, moving=@moving, fixed=@fixed, moving_mask=@moving_mask, "
                         "fixed_mask=@fixed_mask, pairs_csv=@pairs_csv, output_dir=@output_dir, device=@device, "
                         "overwrite=@overwrite, refine_steps=@refine_steps, fix_folds=@fix_folds, debug=@debug, "
                         "seg_models=@seg_models, seg_tta=@seg_tta, refine_mask_weight=@refine_mask_weight, "
                         "mask_labels=@mask_labels, refine_distance_weight=@refine_distance_weight)",
            "inferer": "$@evaluator.inferer",
            # an option no key here defines (--refine for --refine_steps) stops with one line, not ignored
            "initialize": [f"$scripts.{PACKAGE}.workflow.check_overrides('cxreg bundle')"],
            "run": [f"$scripts.{PACKAGE}.register.run_inference(@evaluator, exit_on_error=not "
                    f"scripts.{PACKAGE}.register.bool_arg(@debug, '--debug'))"],
            "inference": "%run",
        }
        tr = _rewrite(_repo_cfg(kind, "train.json"))
        tr["imports"] = _imports(tr)
        import inspect
        from dataclasses import asdict

        from .networks import MultiScaleRegNet
        from .registration import RegSettings

        s = asdict(RegSettings.from_dict(settings))  # the model's settings, RegSettings' defaults where it has none
        n = {k: p.default for k, p in inspect.signature(MultiScaleRegNet).parameters.items()
             if p.default is not p.empty}  # MultiScaleRegNet's defaults where the model's settings name none
        n.update(settings.get("net") or {})
        tr.update({"bundle_root": BUNDLE_ROOT_EXPR, "dataset": dataset,
                   "data_dir": "$os.environ.get('CXREG_DATA_DIR', os.path.join(@bundle_root, 'data'))",
                   "model_path": "$os.path.join(@output_dir, 'registration.pt')",
                   "seg_model": "$os.path.join(@bundle_root, 'models', 'segmentation.pt')",
                   "ae_model": "$os.path.join(@bundle_root, 'models', 'autoencoder.pt')",
                   "work_size": s["work_size"], "attention": s["attention"], "affine": s["affine"],
                   "integrate": s["integrate"], "fix_folds": s["fix_folds"], "int_steps": s["int_steps"],
                   "integrate_at_output": s["integrate_at_output"], "intensity": s["intensity"],
                   "channels": list(n["channels"]), "num_scales": n["num_scales"], "fusion": n["fusion"],
                   "integrate_scales": n["integrate_scales"], "attention_margin": float(s["attention_margin"]),
                   "shipped_settings": settings})
        out["train.json"] = tr
        ev = _rewrite(_repo_cfg(kind, "evaluate.json"))
        ev.update({"model_path": "$os.path.join(@bundle_root, 'models', 'model.pt')",
                   "load_settings": f"$scripts.{PACKAGE}.export.load_any_registration(@model_path, @shipped_settings)[1]",
                   "network_def": f"$scripts.{PACKAGE}.export.load_any_registration(@model_path, @shipped_settings)[0]",
                   # the lung masks, refinement and fold removal of the bundle's inference (inference.json)
                   "seg_network_def": {"_target_": f"scripts.{PACKAGE}.networks.LungSegNet", "spatial_dims": 2},
                   "seg_models": list(inference["seg_files"]), "seg_tta": bool(inference["seg_tta"]),
                   "refine_steps": int(inference["refine_steps"]),
                   "refine_mask_weight": float(inference["refine_mask_weight"]),
                   "refine_distance_weight": float(inference.get("refine_distance_weight", 0.0)),
                   "eval_fix_folds": None,
                   "validate#dataset": f"$scripts.{PACKAGE}.registration.test_pairs(@dataset, @data_dir, "
                                       f"scripts.{PACKAGE}.export.bundle_attention(@bundle_root, @seg_model, "
                                       "@seg_network_def, @seg_models, @seg_tta))",
                   "validate#evaluator#iteration_update": f"$scripts.{PACKAGE}.registration.EvalStep(@load_settings, "
                                                          f"**scripts.{PACKAGE}.export.eval_refine_options("
                                                          "@refine_steps, @refine_mask_weight, @refine_distance_weight), fix_folds="
                                                          f"scripts.{PACKAGE}.export.eval_fix_folds_option(@eval_fix_folds))"})
        ev["initialize"] = _after_option_check(ev, f"$scripts.{PACKAGE}.export.check_weights_or_exit(@bundle_root)")
        out["evaluate.json"] = ev
        return out
    inf = _rewrite(_repo_cfg(kind, "inference.json"))
    inf["imports"] = _imports(inf)
    inf.pop("model", None)  # the repository's model-name id: a bundle has its one models/model.pt
    inf.update({"bundle_root": BUNDLE_ROOT_EXPR, "dataset": dataset,
                "model_path": "$os.path.join(@bundle_root, 'models', 'model.pt')",
                "output_dir": "$os.path.join(@bundle_root, 'eval')"})
    inf["run"] = [f"$scripts.{PACKAGE}.export.check_weights_or_exit(@bundle_root)", *inf["run"]]
    out["inference.json"] = inf
    tr = _rewrite(_repo_cfg(kind, "train.json"))
    tr["imports"] = _imports(tr)
    tr.update({"bundle_root": BUNDLE_ROOT_EXPR, "dataset": dataset,
               "data_dir": "$os.environ.get('CXREG_DATA_DIR', os.path.join(@bundle_root, 'data'))",
               "model_path": "$os.path.join(@output_dir, 'trained.pt')"})
    out["train.json"] = tr
    ev = _rewrite(_repo_cfg(kind, "evaluate.json"))
    ev["model_path"] = "$os.path.join(@bundle_root, 'models', 'model.pt')"
    ev["initialize"] = _after_option_check(ev, f"$scripts.{PACKAGE}.export.check_weights_or_exit(@bundle_root)")
    out["evaluate.json"] = ev
    return out


def _readme(kind: str, dataset: str, name: str, meta: dict) -> str:
    m = meta.get("eval_metrics") or {}
    rows = "\n".join(f"| {k} | {v} |" for k, v in m.items()) or "| (not measured) | |"
    src = meta.get("eval_metrics_source", "not measured")
    if kind == "registration":
        run = ("python -m monai.bundle run inference --config_file configs/inference.json \\\n"
               "    --moving moving.png --fixed fixed.png --output_dir out\n"
               "# many pairs: a CSV with columns moving,fixed[,moving_mask,fixed_mask]\n"
               "python -m monai.bundle run inference --config_file configs/inference.json --pairs_csv pairs.csv "
               "--output_dir out\n"
               "# score it on all ordered test pairs of a data set (layout under Data below), with the same lung\n"
               "# masks, refinement and fold removal as inference; per-pair CSVs in runs/registration_<DS>/eval_<DS>/\n"
               "python -m monai.bundle run --config_file \"['configs/train.json','configs/evaluate.json']\" "
               "--data_dir DATA")
        what = ("registers a moving chest radiograph onto a fixed one (PNG 8/16-bit grey/RGB, or 2D NIfTI; any size; "
                "the outputs lie on the fixed image's grid). Per pair it writes `warped.png`/`warped.nii.gz`, "
                "`ddf.nii.gz` (ITK displacement field: physical (x, y) displacement from each fixed point to its "
                "moving point, so `itk.DisplacementFieldTransform` or `antsApplyTransforms -t ddf.nii.gz` resample "
                "the moving image onto the fixed one), `jacobian.nii.gz`, `warped_mask.png`, `overlay.png` and "
                "`metrics.json` (folded pixels JAC; DSC/HD/ASSD when `--moving_mask` and `--fixed_mask` are given; "
                "for label-map masks say which labels are lung, e.g. `--mask_labels 1,2`). "
                "Lung masks that are not given are predicted by the segmentation model shipped in "
                "`models/segmentation.pt`.")
    else:
        run = ("python -m monai.bundle run inference --config_file configs/inference.json "
               "--input_dir images/ --output_dir out")
        what = ("predicts the lung mask of every PNG/NIfTI image in `--input_dir` and writes `<name>.png` (0/255) "
                "on the input grid." if kind == "segmentation" else
                "reconstructs (denoises) the lung masks in `--input_dir` (64x64 shape model) and writes "
                "`<name>.png` (0/255) on the input grid; its encoder is the shape prior of the registration loss.")
    if kind == "registration":
        st = meta["_settings"]
        what += (f" This model: network input {st['work_size']}x{st['work_size']}, lung-mask attention "
                 f"{'on' if st['attention'] else 'off'}, affine pre-alignment from the masks' moments "
                 f"{'on' if st['affine'] else 'off'}, " + (f"diffeomorphic (stationary velocity integrated by "
                 f"scaling and squaring, {st['int_steps']} steps)" if st["integrate"] else "displacement output")
                 + f", network {json.dumps(st['net'])}.")
        inf = meta.get("_inference") or {}
        if inf:
            segs = " + ".join(f"`models/{f}`" for f in inf["seg_files"])
            what += (f" Lung masks: {segs}" + (" (probabilities averaged)" if len(inf["seg_files"]) > 1 else "")
                     + (", five shifted passes averaged (TTA)" if inf["seg_tta"] else "")
                     + f" (`cxreg register --seg-model {inf['seg_model']}`). Test-time refinement: "
                     + (f"{inf['refine_steps']} steps per pair, mask weight {inf['refine_mask_weight']:g} (set "
                        "`--refine_steps 0` to turn it off)" if inf["refine_steps"] else "off (`--refine_steps 20` "
                        "turns it on)") + ".")
    return f"""# {meta['name']}

{meta['description']} (The docs/*.md files named here are in the cxreg repository.)

This bundle {what}

## Run

Needs `pip install "monai[fire]" torch itk nibabel pillow` (no cxreg install: the code is in `scripts/cxreg`).
Run from this folder:

```bash
{run}
```

Use `--device cpu` or `--device cuda` to choose the device. Every run first checks the SHA-256 of the weights
against `configs/metadata.json` (`{HASH_KEY}`) and stops with a one-line error if they differ.
`models/model.ts` is a TorchScript version of the network
(`python -m monai.bundle ckpt_export network_def --filepath models/model.ts --ckpt_file models/model.pt
--meta_file configs/metadata.json --config_file configs/inference.json --use_trace True --input_shape "{meta['_input_shape']}"`).

## Data

Trained on the {dataset} training split: {meta['data_source']}. The data are not part of this bundle.
Training: `python -m monai.bundle run training --config_file configs/train.json --data_dir DATA` (layout
`DATA/{dataset}/images/<id>.png`, `DATA/{dataset}/masks/<id>.png`, `DATA/splits.json`; see the cxreg repository).

## Measured metrics

On the {dataset} test split, from `{src}` in the cxreg repository at export time:

| metric | value |
|---|---|
{rows}

## Intended use and licence

{meta['intended_use']}. {meta['license']}. Reference: {PAPER}
"""


def _copy_package(dst: Path) -> None:
    """This package's .py files into ``dst`` (no caches)."""
    for src in sorted(_SRC.rglob("*.py")):
        rel = src.relative_to(_SRC)
        if "__pycache__" in rel.parts:
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel)


_CHECK = """
import sys
from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out
verify_metadata(meta_file="configs/metadata.json", filepath=sys.argv[1])
print("metadata is verified")
verify_net_in_out(net_id="network_def", meta_file="configs/metadata.json", config_file="configs/inference.json")
print("network input/output verified with no error")
ckpt_export(net_id="network_def", filepath="models/model.ts", ckpt_file="models/model.pt",
            meta_file="configs/metadata.json", config_file="configs/inference.json", use_trace=True,
            input_shape=eval(sys.argv[2]))
print("exported models/model.ts")
"""


def _check(b: Path, schema: Path, shape: list[int]) -> str:
    """verify_metadata, verify_net_in_out and ckpt_export (traced TorchScript) in the bundle folder ``b``."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=str(b))
    r = subprocess.run([sys.executable, "-c", _CHECK, str(schema), str(shape)], cwd=b, env=env,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        tail = (r.stdout + r.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"bundle check failed in {b}: " + " | ".join(tail))
    return r.stdout + r.stderr


def export_bundle(kind: str, dataset: str, out: str | os.PathLike = "dist", version: str | None = None,
                  model: str | os.PathLike | None = None, seg_model: str | os.PathLike | None = None,
                  check: bool = True, overwrite: bool = False, results=None, log: list | None = None,
                  refine_steps: int = 0, refine_mask_weight: float | None = None, metrics_row: str | None = None,
                  name: str | None = None) -> Path:
    """Write ``<out>/<name>_v<version>.zip`` (``name`` default ``cxreg_<kind>_<dataset>``) and return its path.

    ``model`` / ``seg_model`` default to the shipped ``models/<kind>_<dataset>.pt`` (and
    ``models/segmentation_<dataset>.pt`` for registration). For registration ``seg_model`` takes what
    ``cxreg register --seg-model`` takes, ensembles and TTA included (``"JSRT256@tta"``,
    ``"SHEN256+universal256@tta"``): each member is shipped (``models/segmentation.pt``,
    ``models/segmentation_2.pt``, ...), and ``refine_steps`` / ``refine_mask_weight`` become the defaults of
    the bundle's ``inference.json``. ``metrics_row`` takes the bundle's metrics from
    ``docs/results/registration/<dataset>_<row>`` after checking that the row used the same settings. With
    ``check`` the bundle is verified before it is zipped: ``verify_metadata`` (the repository's offline
    schema), ``verify_net_in_out``, and ``ckpt_export`` (traced TorchScript ``models/model.ts``); their output
    is appended to ``log``.
    """
    import re

    from .priors import ensemble_members, shipped_name, split_tta, weights_path
    from .refine import DEFAULT_MASK_WEIGHT
    from .workflow import load_weights, save_atomic

    if kind not in KINDS:
        raise InputError(f"unknown bundle kind {kind!r} (use one of {', '.join(KINDS)})")
    if kind != "registration" and (refine_steps or refine_mask_weight is not None or metrics_row):
        raise InputError(f"--refine, --refine-mask-weight and --metrics-row are for the registration bundle, not {kind}")
    if refine_steps < 0:
        raise InputError(f"--refine {refine_steps}: need 0 (off) or more steps")
    dataset = shipped_name(dataset) or dataset
    version = version or _repo_cfg(kind, "metadata.json")["version"]
    if name is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_]*", name):
        raise InputError(f"--name {name!r}: use lower-case letters, digits and underscores (model-zoo names)")
    name = name or bundle_name(kind, dataset)
    out = Path(out).resolve()
    zpath = out / f"{name}_v{version}.zip"
    if zpath.exists() and not overwrite:
        raise InputError(f"{zpath}: exists (use --overwrite to replace it)")
    src = weights_path(kind, model or dataset)
    settings = None
    if kind == "registration":
        from .workflow import safe_load

        ck = safe_load(src)
        if not isinstance(ck, dict) or "model" not in ck or "settings" not in ck:
            raise InputError(f"{src}: not a cxreg registration model (needs 'model' and 'settings')")
        from dataclasses import asdict

        from .registration import RegSettings

        settings = asdict(RegSettings.from_dict(ck["settings"]))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=f".{name}.") as tmp:
        b = Path(tmp) / name
        for d in ("configs", "models", "docs", "scripts"):
            (b / d).mkdir(parents=True)
        save_atomic({k: v.detach().cpu() for k, v in load_weights(src).items()}, b / "models" / "model.pt")
        inference, metrics = None, None
        if kind == "registration":
            spec = str(seg_model or dataset)
            base, tta = split_tta(spec)
            members = ensemble_members(base) or [base]
            files = ["segmentation.pt"] + [f"segmentation_{i + 1}.pt" for i in range(1, len(members))]
            for m, f in zip(members, files):
                seg = weights_path("segmentation", m)
                save_atomic({k: v.detach().cpu() for k, v in load_weights(seg).items()}, b / "models" / f)
            inference = {"model": str(model or dataset), "seg_model": spec, "seg_files": files, "seg_tta": tta,
                         "refine_steps": int(refine_steps),
                         "refine_mask_weight": DEFAULT_MASK_WEIGHT if refine_mask_weight is None
                         else float(refine_mask_weight)}
            if metrics_row:
                metrics = row_metrics(dataset, metrics_row, inference, settings.get("fix_folds", False), results)
        hashes = {f"models/{p.name}": sha256(p) for p in sorted((b / "models").glob("*.pt"))}
        meta = _metadata(kind, dataset, version, hashes, results, metrics)
        if inference:
            meta["cxreg_inference"] = {k: inference[k] for k in ("model", "seg_model", "refine_steps",
                                                                  "refine_mask_weight")}
            if not _same_weights(inference["model"], dataset):  # e.g. the universal model in a JSRT bundle
                meta["name"] = f"{_repo_cfg(kind, 'metadata.json')['name']}, {inference['model']} model, for {dataset}"
            if inference["seg_model"] != dataset or refine_steps:
                meta["name"] = (f"{meta['name']}; lung masks {inference['seg_model']}"
                                + (f", {refine_steps} refinement steps" if refine_steps else ""))
        inp = meta["network_data_format"]["inputs"]["image"]
        shape = [1, inp["num_channels"], *inp["spatial_shape"]]
        (b / "configs" / "metadata.json").write_text(json.dumps(meta, indent=4))
        for fname, cfg in _configs(kind, dataset, settings, inference).items():
            (b / "configs" / fname).write_text(json.dumps(cfg, indent=4))
        sub = "" if kind == "registration" else kind
        shutil.copy2(_SRC.parent / "configs" / sub / "logging.conf", b / "configs" / "logging.conf")
        shutil.copy2(_SRC.parent / "LICENSE", b / "LICENSE")
        (b / "scripts" / "__init__.py").write_text(
            "# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.\n"
            f'"""Custom code of this bundle: ``scripts.{PACKAGE}`` is a copy of the cxreg package."""\n')
        _copy_package(b / "scripts" / PACKAGE)
        (b / "docs" / "README.md").write_text(_readme(kind, dataset, name, {**meta, "_input_shape": str(shape),
                                                                            "_settings": settings,
                                                                            "_inference": inference}))
        if check:
            schema = _SRC.parent / "configs" / "schema" / "meta_schema.json"
            sc = Path(tmp) / "schema.json"
            shutil.copy2(schema, sc)
            text = _check(b, sc, shape)
            if log is not None:
                log.append(text)
            for junk in b.rglob("__pycache__"):
                shutil.rmtree(junk)
        part = Path(tmp) / "bundle.zip"
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(b.rglob("*")):
                if p.is_file() and "__pycache__" not in p.parts:
                    z.write(p, p.relative_to(b.parent).as_posix())
        os.replace(part, zpath)
    return zpath


def _cmd_export(a) -> int:
    kinds = KINDS if a.bundle == "all" else (a.bundle,)
    datasets = ("JSRT", "MONT", "SHEN", "universal") if a.dataset == "all" else (a.dataset,)
    if (a.model or a.seg_model or a.metrics_row or a.name) and (len(kinds) > 1 or len(datasets) > 1):
        raise InputError("--model/--seg-model/--metrics-row/--name need one --bundle and one --dataset")
    for k in kinds:
        for ds in datasets:
            z = export_bundle(k, ds, a.out, version=a.version, model=a.model, seg_model=a.seg_model,
                              check=not a.no_check, overwrite=a.overwrite, refine_steps=a.refine,
                              refine_mask_weight=a.refine_mask_weight, metrics_row=a.metrics_row, name=a.name)
            print(f"{z}  sha256 {sha256(z)}")
    return 0


def add_parser(sub) -> None:
    """Register the ``export`` sub-command on the ``cxreg`` sub-parsers."""
    from .cli import non_negative, whole

    p = sub.add_parser("export", help="write standalone MONAI bundles (zip) that run without cxreg installed")
    p.add_argument("--bundle", required=True, choices=[*KINDS, "all"], help="which bundle: %(choices)s")
    p.add_argument("--dataset", required=True, help="JSRT | MONT | SHEN | universal | all")
    p.add_argument("--out", default="dist", help="folder of the zips (default dist/)")
    p.add_argument("--version", default=None, help="bundle version (default: configs' metadata.json)")
    p.add_argument("--model", default=None, help="weights file instead of models/<bundle>_<dataset>.pt")
    p.add_argument("--seg-model", default=None, help="registration: lung-mask model(s) to ship, as cxreg register "
                   "--seg-model takes them (default: the dataset's), e.g. JSRT256@tta or SHEN256+universal256@tta")
    p.add_argument("--refine", type=whole(0), default=0, help="registration: test-time refinement steps the bundle runs "
                   "by default (0 = off)")
    p.add_argument("--refine-mask-weight", type=non_negative, default=None,
                   help="registration: the refinement's lung-mask weight (default: cxreg register's)")
    p.add_argument("--metrics-row", default=None, help="registration: take the bundle's metrics from "
                   "docs/results/registration/<dataset>_<ROW> (checked against the bundle's settings)")
    p.add_argument("--name", default=None, help="bundle name (default cxreg_<bundle>_<dataset>)")
    p.add_argument("--no-check", action="store_true", help="skip verify_metadata, verify_net_in_out and model.ts")
    p.add_argument("--overwrite", action="store_true", help="replace an existing zip")
    p.set_defaults(func=_cmd_export)
