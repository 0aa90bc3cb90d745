# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Classical baselines: elastix (default B-spline map) and ANTs SyN.

Both take ``(fixed, moving)`` float ``(H, W)`` arrays, fixed first as in ANTsPy, and return the
pull-back displacement field ``(2, H, W)`` in pixels, channel 0 along rows and channel 1 along columns
(see docs/conventions.md), so masks are warped and folding counted exactly as for our network.
Install with ``pip install -e ".[baselines]"`` (itk-elastix, antspyx).
"""

from __future__ import annotations

import tempfile

import numpy as np

__all__ = ["elastix_register", "syn_register"]


def _need(module: str, package: str):
    try:
        return __import__(module)
    except ImportError:
        raise RuntimeError(f"the {package} package is needed for this baseline: pip install -e '.[baselines]'") from None


def elastix_register(fixed: np.ndarray, moving: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Register with itk-elastix and its default B-spline parameter map (SimpleElastix's default).

    Returns the (2, H, W) pull-back field from ``transformix_deformation_field``.
    """
    itk = _need("itk", "itk-elastix")
    f = itk.GetImageFromArray(np.ascontiguousarray(fixed, dtype=np.float32))
    m = itk.GetImageFromArray(np.ascontiguousarray(moving, dtype=np.float32))
    params = itk.ParameterObject.New()
    params.AddParameterMap(params.GetDefaultParameterMap("bspline"))
    kw = {"number_of_threads": threads} if threads else {}
    _, result = itk.elastix_registration_method(f, m, parameter_object=params, log_to_console=False, **kw)
    with tempfile.TemporaryDirectory() as tmp:  # transformix writes deformationField.nii into its output folder
        tfx = itk.TransformixFilter.New(Input=m, TransformParameterObject=result)
        tfx.SetComputeDeformationField(True)
        tfx.SetOutputDirectory(tmp)
        tfx.SetLogToConsole(False)
        tfx.Update()
        field = itk.GetArrayFromImage(tfx.GetOutputDeformationField())  # (H, W, 2) = (dx, dy)
    return np.stack([field[..., 1], field[..., 0]]).astype(np.float32)


def syn_register(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Register with ``ants.registration(type_of_transform="SyN")`` (affine + SyN, ANTsPy defaults).

    The affine and the warp are composed into one displacement field with ``apply_transforms(compose=...)``.
    ANTsPy arrays are indexed (x, y), so our (row, col) arrays are transposed on the way in and out.
    """
    ants = _need("ants", "antspyx")
    f = ants.from_numpy(np.ascontiguousarray(fixed.T, dtype=np.float32))
    m = ants.from_numpy(np.ascontiguousarray(moving.T, dtype=np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        reg = ants.registration(fixed=f, moving=m, type_of_transform="SyN", outprefix=tmp + "/reg_")
        comp = ants.apply_transforms(fixed=f, moving=m, transformlist=reg["fwdtransforms"], compose=tmp + "/comp_")
        field = ants.image_read(comp).numpy()  # (W, H, 2) = (dx, dy)
    return np.stack([field[..., 1].T, field[..., 0].T]).astype(np.float32)
