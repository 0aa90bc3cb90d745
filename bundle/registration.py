# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Registration pipeline around :class:`bundle.networks.MultiScaleRegNet`.

``predict_field`` is the single place where a field is made, for training, validation, evaluation and
inference:

1. images (and attention masks) are area-resampled to ``work_size`` (64 by default);
2. attention: the images are multiplied by their (predicted) lung masks;
3. optional affine pre-alignment from the masks' moments (centroid and covariance), applied to the moving image;
4. the network predicts a residual field (or a stationary velocity integrated by scaling and squaring);
5. the residual is resized to the output grid (vectors rescaled) and composed exactly with the affine:
   ``u(p) = r(p) + a(p + r(p))``.

All fields are pull-back displacements in pixels (docs/conventions.md).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F

from .data import load_split, random_pairs, sample_pairs, train_val_ids
from .metrics import folding
from .networks.registration import MultiScaleRegNet
from .transforms import normalize_intensity
from .spatial import (identity_grid, integrate_velocity, jacobian_determinant, remove_folds, resize_ddf, resize_image,
                      resize_mask, warp)

__all__ = [
    "RegSettings",
    "as_bool",
    "moments_affine",
    "affine_points",
    "predict_field",
    "RegistrationBatches",
    "RegistrationValPairs",
    "training_data",
    "test_pairs",
    "TrainStep",
    "inverse_consistency_loss",
    "EvalStep",
    "build_registration",
    "init_weights",
    "init_intensity",
    "init_setting",
    "load_registration",
    "save_registration",
    "attention_masks",
    "soften_attention",
    "OursMethod",
]


def as_bool(value, name: str = "value") -> bool:
    """``True``/``False``, 1/0 or the strings true/false, on/off, yes/no, 1/0 (any case) -> bool; else ValueError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{name} must be true or false, not {value!r}")


_TRUE, _FALSE = {"true", "on", "yes", "1"}, {"false", "off", "no", "0"}


@dataclass
class RegSettings:
    """Everything besides the weights that turns a network output into a field (saved with the weights)."""

    work_size: int = 64
    attention: bool = True
    affine: bool = False
    integrate: bool = False
    int_steps: int = 7
    attention_margin: float = 0.0  # soft widening of the attention masks, in pixels of a 256 x 256 image
    integrate_at_output: bool = False  # with integrate: up-sample the velocity and integrate on the output grid
    intensity: str = "unit"  # image normalisation before the network: unit / zscore / equalize (transforms)
    fix_folds: bool = False  # locally smooth the output field where det J <= 0 (bundle.spatial.remove_folds)
    net: dict = field(default_factory=dict)  # MultiScaleRegNet kwargs

    def __post_init__(self):
        # `python -m monai.bundle run ... --integrate false` hands over the *string* "false" (Fire keeps lower-case
        # true/false as text), which would be truthy: accept the usual spellings, refuse anything else
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("bool", bool) and not isinstance(v, bool):
                setattr(self, f.name, as_bool(v, f.name))
        if isinstance(self.int_steps, bool) or not isinstance(self.int_steps, int) or self.int_steps < 1:
            raise ValueError(f"int_steps must be a whole number >= 1 (scaling-and-squaring steps), not {self.int_steps!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "RegSettings":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# --------------------------------------------------------------------------------------------- geometry
def moments_affine(moving_mask: torch.Tensor, fixed_mask: torch.Tensor, eps: float = 1e-6):
    """Affine (A, c_m, c_f) in normalised coordinates mapping the fixed mask's moments onto the moving one's.

    Coordinates ``x = (p + 0.5) / N`` per axis (pixel-area model, so the result does not depend on the
    grid). With centroids ``c`` and covariances ``S`` of the (soft) masks, ``x_m = c_m + A (x_f - c_f)`` with
    ``A = S_m^{1/2} S_f^{-1/2}`` (no reflection, exact second moments). Empty masks give the identity.
    Shapes: masks (B, 1, H, W); returns A (B, 2, 2), c_m (B, 2), c_f (B, 2).
    """

    def stats(m):
        b, _, h, w = m.shape
        g = identity_grid((h, w), device=m.device, dtype=torch.float32)
        x = (g + 0.5) / torch.tensor([h, w], device=m.device, dtype=torch.float32).view(1, 2, 1, 1)
        wgt = m.float().flatten(2)  # B,1,HW
        tot = wgt.sum(2).clamp_min(eps)  # B,1
        xf = x.flatten(2)  # 1,2,HW
        c = (wgt * xf).sum(2) / tot  # B,2
        d = xf - c[:, :, None]  # B,2,HW
        cov = torch.einsum("bin,bjn->bij", d * wgt, d) / tot[:, :, None]
        empty = wgt.sum(2)[:, 0] < 1
        return c, cov + eps * torch.eye(2, device=m.device), empty

    cm, sm, em = stats(moving_mask)
    cf, sf, ef = stats(fixed_mask)

    def sqrtm(s, inv=False):
        ev, evec = torch.linalg.eigh(s)
        ev = ev.clamp_min(1e-8)
        p = ev.rsqrt() if inv else ev.sqrt()
        return evec @ torch.diag_embed(p) @ evec.transpose(1, 2)

    a = sqrtm(sm) @ sqrtm(sf, inv=True)
    bad = em | ef
    if bad.any():
        a[bad] = torch.eye(2, device=a.device)
        cm[bad] = cf[bad] = 0.5
    return a, cm, cf


def affine_points(a, cm, cf, points: torch.Tensor) -> torch.Tensor:
    """Displacement of the normalised affine at pixel ``points`` (B, 2, H, W) of an (H, W) grid: ``T(q) - q``."""
    h, w = points.shape[2:]
    n = torch.tensor([h, w], device=points.device, dtype=points.dtype).view(1, 2, 1, 1)
    x = (points + 0.5) / n - cf[:, :, None, None]
    xm = torch.einsum("bij,bjhw->bihw", a, x) + cm[:, :, None, None]
    return xm * n - 0.5 - points


def soften_attention(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Widen a (soft) mask (B, 1, H, W) by ``radius`` pixels with a linear ramp: max-pool, then box average.

    Inside the mask the result stays 1; it falls to 0 about ``2 * radius`` pixels outside it, so the network
    sees the image around the predicted lung border instead of a hard cut at it. ``radius <= 0``: unchanged.
    """
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    dil = F.max_pool2d(mask, k, stride=1, padding=radius)
    return F.avg_pool2d(F.pad(dil, (radius,) * 4, mode="replicate"), k, stride=1)


def _to_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """Area resampling to the working size; masks stay soft (area fractions), as the attention uses them."""
    return resize_image(x, size)


def predict_field(net: torch.nn.Module, settings: RegSettings, moving: torch.Tensor, fixed: torch.Tensor,
                  moving_attn: torch.Tensor | None = None, fixed_attn: torch.Tensor | None = None,
                  out_size: tuple[int, int] | None = None, refine_steps: int = 0, refine_size: int = 128,
                  fix_folds: bool | None = None, refine_weights: dict | None = None) -> dict:
    """Field from ``moving`` to ``fixed`` (pull-back), images (B, 1, H, W) in [0, 1].

    Returns ``{"ddf": (B, 2, *out_size), "ddf_work": total field at work size, "residual": network field at
    work size, "velocity": the integrated velocity (or None), "moving_in", "fixed_in": network inputs}``.
    ``out_size`` defaults to the input size. ``refine_steps > 0`` runs test-time refinement
    (:func:`bundle.refine.refine_residual`) of the network output at ``refine_size`` using the attention masks;
    ``refine_weights`` (e.g. ``{"w_mask": 3.0}``) overrides its loss weights ``w_img``, ``w_mask``, ``w_smooth``.
    ``fix_folds`` (default: ``settings.fix_folds``) removes the output field's folds by local smoothing
    (:func:`bundle.spatial.remove_folds`, on the ``out_size`` grid; the result also holds ``"folds_fixed"``, the
    folded pixels before, and ``"folds_left"``, after, per pair).
    """
    s = settings.work_size
    out_size = tuple(out_size or moving.shape[2:])
    if settings.intensity != "unit":
        moving, fixed = normalize_intensity(moving, settings.intensity), normalize_intensity(fixed, settings.intensity)
    m, f = _to_size(moving, s), _to_size(fixed, s)
    ma = _to_size(moving_attn, s) if moving_attn is not None else None
    fa = _to_size(fixed_attn, s) if fixed_attn is not None else None
    if settings.attention:
        if ma is None or fa is None:
            raise ValueError("attention is on: moving_attn and fixed_attn masks are needed")
        r = int(round(settings.attention_margin * s / 256))
        m, f = m * soften_attention(ma, r), f * soften_attention(fa, r)
    aff = None
    if settings.affine:
        if ma is None or fa is None:
            raise ValueError("affine pre-alignment needs moving_attn and fixed_attn masks")
        aff = moments_affine(ma, fa)
        grid = identity_grid((s, s), device=m.device).expand(m.shape[0], -1, -1, -1)
        m_in = warp(m, affine_points(*aff, grid))
    else:
        m_in = m
    out = net(torch.cat([m_in, f], 1))
    if refine_steps > 0:
        if ma is None or fa is None:
            raise ValueError("refinement needs moving_attn and fixed_attn masks")
        from .refine import check_weights, refine_residual

        full_m = moving * moving_attn if settings.attention else moving
        full_f = fixed * fixed_attn if settings.attention else fixed
        out = refine_residual(out, full_m, full_f, moving_attn, fixed_attn, settings, aff, steps=refine_steps,
                              size=refine_size, **check_weights(refine_weights))
        s = refine_size  # the field now lives on the refinement grid
    velocity = None
    if settings.integrate:
        velocity = out
        out = integrate_velocity(velocity, settings.int_steps)
    residual = out

    def total(r):
        if aff is None:
            return r
        g = identity_grid(r.shape[2:], device=r.device).expand(r.shape[0], -1, -1, -1)
        return r + affine_points(*aff, g + r)

    ddf_work = total(residual)
    if out_size == tuple(residual.shape[2:]):
        ddf = ddf_work
    elif velocity is not None and settings.integrate_at_output:
        # up-sample the velocity, then integrate on the output grid: no interpolation of a composed field
        ddf = total(integrate_velocity(resize_ddf(velocity, out_size), settings.int_steps))
    else:
        ddf = total(resize_ddf(residual, out_size))
    res = {"ddf": ddf, "ddf_work": ddf_work, "residual": residual, "velocity": velocity, "moving_in": m,
           "fixed_in": f}
    if settings.fix_folds if fix_folds is None else fix_folds:
        before = (jacobian_determinant(ddf) <= 0).flatten(1).sum(1)
        if bool(before.any()):  # fold-free batches (almost all) skip remove_folds' second det J
            res["ddf"], res["folds_left"] = remove_folds(ddf)
        else:
            res["folds_left"] = torch.zeros_like(before)
        res["folds_fixed"] = before
    return res


# --------------------------------------------------------------------------------------------- data
def attention_masks(images: torch.Tensor, seg_model: str | os.PathLike | None, truth: torch.Tensor | None = None,
                    batch_size: int = 16) -> torch.Tensor:
    """Lung masks used as attention: predicted by the segmentation model (cleaned), or the true masks.

    ``seg_model`` is a dataset name (shipped weights), a weights path, a loaded network (e.g. an exported
    bundle's ensemble, :func:`bundle.export.bundle_attention`), or ``None``/``"truth"`` for ``truth``.
    """
    if not isinstance(seg_model, torch.nn.Module) and (seg_model is None
                                                       or str(seg_model).lower() in ("truth", "none", "")):
        if truth is None:
            raise ValueError("no segmentation model and no masks given for attention")
        return truth.float()
    from .priors import load_segmentation, predict_lung_masks

    net = seg_model.eval() if isinstance(seg_model, torch.nn.Module) else load_segmentation(seg_model)
    return predict_lung_masks(net, images, batch_size=batch_size)


def _random_affine(n: int, rng: np.random.Generator, rot: float, scale: float, shift: float) -> torch.Tensor:
    """(n, 2, 3) matrices for F.affine_grid (normalised coordinates, x = columns first)."""
    th = rng.uniform(-rot, rot, n)
    sc = np.exp(rng.uniform(-scale, scale, (n, 2)))
    t = rng.uniform(-shift, shift, (n, 2))
    mats = np.zeros((n, 2, 3), np.float32)
    mats[:, 0, 0] = np.cos(th) * sc[:, 0]
    mats[:, 0, 1] = -np.sin(th) * sc[:, 1]
    mats[:, 1, 0] = np.sin(th) * sc[:, 0]
    mats[:, 1, 1] = np.cos(th) * sc[:, 1]
    mats[:, :, 2] = t
    return torch.from_numpy(mats)


class RegistrationBatches(torch.utils.data.Dataset):
    """Whole training batches of seeded random ordered pairs, drawn by tensor indexing (fast on CPU).

    Item ``i`` of epoch ``e`` is a dict of (B, 1, S, S) tensors: ``moving``, ``fixed`` images, ``moving_mask``,
    ``fixed_mask`` (ground truth, for the losses), ``moving_attn``, ``fixed_attn`` (attention masks); plus
    ``image`` = cat(moving, fixed) and ``label`` = fixed_mask for MONAI engines. With ``augment`` each image
    gets its own small random affine (rotation, scale, shift) applied to image and masks alike.
    Use with ``DataLoader(batch_size=None)``.

    ``rank``: the process's rank in distributed training (:meth:`for_rank`); each rank draws its own pairs and
    affines (rank 0 draws exactly what a single-process run draws), so ``N`` processes see ``N * batch_size``
    different pairs per step.
    """

    def __init__(self, images, masks, attn, batches_per_epoch: int, batch_size: int, seed: int = 0,
                 augment: bool = True, rot_deg: float = 5.0, scale: float = 0.05, shift_px: float = 3.0,
                 rank: int = 0):
        self.images, self.masks, self.attn = images.float(), masks.float(), attn.float()
        self.n, self.bpe, self.bs, self.seed = len(images), int(batches_per_epoch), int(batch_size), int(seed)
        self.augment, self.rot, self.scale = augment, math.radians(rot_deg), scale
        self.shift = 2 * shift_px / images.shape[-1]
        self.epoch = 0
        self.rank = int(rank)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def for_rank(self, rank: int) -> "RegistrationBatches":
        """Set the distributed rank (see the class docstring) and return ``self`` (for use in configs)."""
        if int(rank) < 0:
            raise ValueError(f"rank must be >= 0, got {rank}")
        self.rank = int(rank)
        return self

    def _rng(self, i: int) -> np.random.Generator:
        # rank 0 keeps the single-process seed (seed, epoch, i); other ranks append their rank
        key = (self.seed, self.epoch, int(i)) + ((self.rank,) if self.rank else ())
        return np.random.default_rng(key)

    def __len__(self) -> int:
        return self.bpe

    def __getitem__(self, i: int) -> dict:
        rng = self._rng(i)
        pairs = random_pairs(self.n, self.bs, int(rng.integers(1 << 31)))
        mi = torch.tensor([p[0] for p in pairs])
        fi = torch.tensor([p[1] for p in pairs])
        idx = torch.cat([mi, fi])
        stack = torch.cat([self.images[idx], self.masks[idx], self.attn[idx]], 1)  # 2B,3,S,S
        if self.augment:
            theta = _random_affine(len(idx), rng, self.rot, self.scale, self.shift)
            grid = F.affine_grid(theta, list(stack.shape), align_corners=False)
            img = F.grid_sample(stack[:, :1], grid, mode="bilinear", padding_mode="border", align_corners=False)
            msk = F.grid_sample(stack[:, 1:], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            stack = torch.cat([img, (msk[:, :1] > 0.5).float(), msk[:, 1:]], 1)
        b = self.bs
        d = {"moving": stack[:b, :1], "fixed": stack[b:, :1], "moving_mask": stack[:b, 1:2], "fixed_mask": stack[b:, 1:2],
             "moving_attn": stack[:b, 2:3], "fixed_attn": stack[b:, 2:3]}
        d["image"], d["label"] = torch.cat([d["moving"], d["fixed"]], 1), d["fixed_mask"]
        return d


class RegistrationValPairs(torch.utils.data.Dataset):
    """A fixed list of (moving, fixed) pairs at full resolution, as single-pair items (batch them). With image
    ``names`` each item also has ``"pair"`` = ``"<moving>__<fixed>"`` (the row name of evaluate.json's CSVs)."""

    def __init__(self, images, masks, attn, pairs, names=None):
        self.images, self.masks, self.attn, self.pairs = images, masks, attn, list(pairs)
        self.names = list(names) if names is not None else None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i):
        m, f = self.pairs[i]
        d = {"moving": self.images[m], "fixed": self.images[f], "moving_mask": self.masks[m],
             "fixed_mask": self.masks[f], "moving_attn": self.attn[m], "fixed_attn": self.attn[f]}
        d["image"], d["label"] = torch.cat([d["moving"], d["fixed"]]), d["fixed_mask"]
        if self.names is not None:
            d["pair"] = f"{self.names[m]}__{self.names[f]}"
        return d


def training_data(dataset: str, data_dir=None, work_size: int = 64, seg_model=None, batches_per_epoch: int = 50,
                  batch_size: int = 32, val_pairs: int = 100, val_fraction: float = 0.1, seed: int = 0,
                  augment: bool = True, max_images: int | None = None):
    """(train batches, validation pairs) for a dataset: attention masks predicted once per image.

    ``seg_model``: a dataset name or weights path for the attention model, or None/"truth" for the true masks.
    Validation pairs come from a seeded 10% of the training images and are scored at full resolution.
    """
    augment = as_bool(augment, "--augment")
    full = load_split(dataset, "train", data_dir)
    attn_full = attention_masks(full.images, seg_model, truth=full.masks)
    masks = full.masks if full.masks is not None else (attn_full > 0.5).float()  # own data without masks
    tr, va = train_val_ids(len(full), val_fraction, seed, min_val=2)
    if max_images:
        tr = tr[:max_images]
    tr_t = torch.tensor(tr)
    train = RegistrationBatches(resize_image(full.images[tr_t], work_size), resize_mask(masks[tr_t], work_size),
                                resize_image(attn_full[tr_t], work_size), batches_per_epoch, batch_size, seed, augment)
    va_t = torch.tensor(va)
    pairs = sample_pairs(len(va), val_pairs, seed)
    val = RegistrationValPairs(full.images[va_t], masks[va_t], attn_full[va_t], pairs)
    return train, val


def test_pairs(dataset: str, data_dir=None, seg_model=None, split: str = "test") -> RegistrationValPairs:
    """All ordered pairs of a split at full resolution, with attention masks predicted once per image."""
    from .data import all_ordered_pairs

    d = load_split(dataset, split, data_dir)
    return RegistrationValPairs(d.images, d.masks, attention_masks(d.images, seg_model, truth=d.masks),
                                all_ordered_pairs(len(d)), names=d.ids)


# --------------------------------------------------------------------------------------------- engine steps
def inverse_consistency_loss(ddf_ab: torch.Tensor, ddf_ba: torch.Tensor) -> torch.Tensor:
    """Mean squared inverse-consistency error (pixels²) of two pull-back fields (B, 2, H, W), symmetric.

    ``ddf_ab`` maps the fixed grid to the moving image and ``ddf_ba`` the other way; their compositions
    ``x -> x + u_ab(x) + u_ba(x + u_ab(x))`` (and the reverse) are the identity for exact inverses, so the loss is
    the mean of ``|compose(u_ba, u_ab)|²`` and ``|compose(u_ab, u_ba)|²`` (0 for a translation and its opposite).
    """
    from .spatial import compose_ddf

    e1 = compose_ddf(ddf_ba, ddf_ab)
    e2 = compose_ddf(ddf_ab, ddf_ba)
    return 0.5 * ((e1 ** 2).sum(1).mean() + (e2 ** 2).sum(1).mean())


class TrainStep:
    """``iteration_update`` for MONAI ``SupervisedTrainer``: one optimisation step of the registration loss.

    Returns the weighted loss terms, ``"loss"``, and ``"folds"`` (mean number of pixels with det J <= 0 of the
    work-size field), so StatsHandler/TensorBoard log folding at every iteration.

    ``lambda_ic > 0`` adds the inverse-consistency term ``λ_ic · ic``: the pair is also registered the other
    way (fixed to moving) and ``ic`` (:func:`inverse_consistency_loss`) penalises how far the two fields are
    from being each other's inverse; it is logged as ``"ic"``.
    """

    def __init__(self, settings: RegSettings, loss: torch.nn.Module, lambda_ic: float = 0.0):
        self.settings, self.loss, self.lambda_ic = settings, loss, float(lambda_ic)

    def __call__(self, engine, batch) -> dict:
        dev = engine.state.device
        b = {k: v.to(dev, non_blocking=True) for k, v in batch.items() if torch.is_tensor(v)}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, enabled=bool(engine.amp)):
            out = predict_field(engine.network, self.settings, b["moving"], b["fixed"], b["moving_attn"],
                                b["fixed_attn"], fix_folds=False)  # training uses ddf_work; no post-processing
            u = out["ddf_work"]
            warped = warp(out["moving_in"], u)
            warped_mask = warp(b["moving_mask"], u, mode="bilinear", padding_mode="zeros")
            reg = out["velocity"] if out["velocity"] is not None else out["residual"]
            terms = self.loss(out["fixed_in"], warped, b["fixed_mask"], warped_mask, reg)
            if self.lambda_ic > 0:
                back = predict_field(engine.network, self.settings, b["fixed"], b["moving"], b["fixed_attn"],
                                     b["moving_attn"], fix_folds=False)
                terms["ic"] = self.lambda_ic * inverse_consistency_loss(u, back["ddf_work"])
                terms["loss"] = terms["loss"] + terms["ic"]
        if engine.amp and engine.scaler is not None:
            engine.scaler.scale(terms["loss"]).backward()
            engine.scaler.step(engine.optimizer)
            engine.scaler.update()
        else:
            terms["loss"].backward()
            engine.optimizer.step()
        res = {k: v.detach() for k, v in terms.items()}
        res["folds"] = folding(u.detach().float())[0].float().mean()
        return res


class EvalStep:
    """``iteration_update`` for MONAI ``SupervisedEvaluator``: full-resolution warped masks for DSC.

    Returns ``pred`` / ``label`` as one-hot (B, 2, H, W) (masks warped with nearest neighbour, as in the
    evaluation harness) and ``folds`` per pair.

    By default it scores the raw network field, so validation during training logs how much the network itself
    folds. ``refine_steps``, ``refine_size``, ``refine_weights`` and ``fix_folds`` (``None`` = the model's
    setting) are :func:`predict_field`'s: with them an exported bundle's ``evaluate.json`` scores the field its
    ``inference`` writes, as ``cxreg evaluate`` does with the same options (``folds`` then counts the folds left).
    """

    def __init__(self, settings: RegSettings, refine_steps: int = 0, refine_size: int = 128,
                 refine_weights: dict | None = None, fix_folds: bool | None = False):
        self.settings = settings
        self.refine_steps, self.refine_size = int(refine_steps), int(refine_size)
        from .refine import check_weights

        self.refine_weights, self.fix_folds = check_weights(refine_weights), fix_folds

    @torch.no_grad()
    def __call__(self, engine, batch) -> dict:
        dev = engine.state.device
        b = {k: v.to(dev) for k, v in batch.items() if torch.is_tensor(v)}
        engine.network.eval()
        out = predict_field(engine.network, self.settings, b["moving"], b["fixed"], b["moving_attn"], b["fixed_attn"],
                            refine_steps=self.refine_steps, refine_size=self.refine_size, fix_folds=self.fix_folds,
                            refine_weights=self.refine_weights)
        w = warp(b["moving_mask"], out["ddf"], mode="nearest", padding_mode="zeros")
        onehot = lambda x: torch.cat([1 - x, x], 1)  # noqa: E731
        return {"pred": onehot(w), "label": onehot(b["fixed_mask"]), "folds": folding(out["ddf"])[0].float().mean()}


# --------------------------------------------------------------------------------------------- models
def build_registration(settings: RegSettings) -> MultiScaleRegNet:
    return MultiScaleRegNet(**settings.net)


def save_registration(src_checkpoint: str | os.PathLike, dst: str | os.PathLike, settings: RegSettings) -> str:
    """Write ``{"model": state_dict, "settings": dict}`` (tensors and plain values only) atomically."""
    from .workflow import check_finite, load_weights, save_atomic

    sd = load_weights(src_checkpoint)
    check_finite(sd, src_checkpoint)
    save_atomic({"model": {k: v.detach().cpu() for k, v in sd.items()}, "settings": asdict(settings)}, dst)
    print(f"saved registration model to {dst}")
    return str(dst)


def init_weights(net: torch.nn.Module, init: str | os.PathLike | None, kind: str = "registration") -> torch.nn.Module:
    """:func:`bundle.workflow.init_weights` for the registration bundle (``kind="registration"``)."""
    from .workflow import init_weights as _init

    return _init(net, init, kind)


def init_setting(init: str | os.PathLike | None, name: str, default):
    """The setting ``name`` saved with the ``--init`` registration model (``default`` without one, or when the
    file has no settings), so that fine-tuning keeps what its start was trained with: ``configs/train.json``'s
    defaults of ``intensity``, ``attention``, ``affine``, ``integrate`` and ``fix_folds`` (since 0.5.10; before,
    only ``intensity`` followed ``--init`` and ``--init universal`` without the diffeo preset trained the shipped
    diffeomorphic weights as a plain displacement field), and since 0.5.11 ``attention_margin`` and the network's
    shape (``net.channels``, ``net.num_scales``, ``net.fusion``, ``net.integrate_scales``: a dotted name reads
    the ``net`` entry), so that ``--init FILE`` of a model with another shape loads. A value given on the command
    line or in a preset overrides it; ``work_size`` is not carried (a 64 x 64 model may be fine-tuned at 128)."""
    from .workflow import init_path, safe_load

    try:
        p = init_path(init, "registration")
        if p is None:
            return default
        value = safe_load(p)["settings"]
        for part in name.split("."):  # "net.channels": the "channels" entry of "net"; missing: None
            value = value.get(part) if isinstance(value, dict) else None
    except Exception:  # a missing or foreign file: init_weights names the problem
        return default
    if value is None:
        return default
    if isinstance(default, (bool, str, float)):
        return type(default)(value)
    if isinstance(default, list):
        return list(value)
    return value


def init_intensity(init: str | os.PathLike | None) -> str:
    """The intensity mode saved with the ``--init`` registration model (``unit`` without one)
    (:func:`init_setting`)."""
    return str(init_setting(init, "intensity", "unit"))


def load_registration(model: str | os.PathLike = "JSRT", device="cpu") -> tuple[MultiScaleRegNet, RegSettings]:
    """Network (eval mode) and settings from a file written by :func:`save_registration`."""
    from .io import InputError
    from .workflow import safe_load

    from .priors import weights_path

    p = weights_path("registration", model)
    ck = safe_load(p, device)
    if not isinstance(ck, dict) or "model" not in ck or "settings" not in ck:
        raise InputError(f"{p}: not a cxreg registration model (needs 'model' and 'settings')")
    settings = RegSettings.from_dict(ck["settings"])
    net = build_registration(settings)
    net.load_state_dict(ck["model"])
    return net.to(device).eval(), settings


class OursMethod:
    """Evaluation-harness method: our network, lung masks predicted once per image by the segmentation model.

    ``seg_model="truth"`` uses the ground-truth masks as attention: an oracle, for diagnosis only.
    """

    batch_size = 32

    def __init__(self, model: str | os.PathLike = "JSRT", seg_model: str | os.PathLike | None = None,
                 device: str = "cpu", refine_steps: int = 0, refine_size: int = 128, fix_folds: bool | None = None,
                 refine_weights: dict | None = None):
        from .refine import check_weights

        refine_weights = check_weights(refine_weights)  # before the models load
        self.net, self.settings = load_registration(model, device)
        self.refine_steps, self.refine_size, self.fix_folds = refine_steps, refine_size, fix_folds
        self.refine_weights = refine_weights
        from .priors import shipped_name

        self.seg_model = seg_model or shipped_name(model)
        self.device = device
        self.attn = None

    def setup(self, data) -> None:
        if self.settings.attention or self.settings.affine:
            if self.seg_model is None:
                raise ValueError("give the segmentation model (seg_model) for a registration model given by path")
            self.attn = attention_masks(data.images, self.seg_model, truth=data.masks)

    @torch.no_grad()
    def __call__(self, fixed, moving, fixed_mask, moving_mask, fixed_index=None, moving_index=None):
        dev = self.device
        fa = self.attn[fixed_index].to(dev) if self.attn is not None else None
        ma = self.attn[moving_index].to(dev) if self.attn is not None else None
        out = predict_field(self.net, self.settings, moving.to(dev), fixed.to(dev), ma, fa,
                            refine_steps=self.refine_steps, refine_size=self.refine_size, fix_folds=self.fix_folds,
                            refine_weights=self.refine_weights)
        return out["ddf"].cpu()
