# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""``cxreg points``: map landmarks (points) with a saved ``ddf.nii.gz`` (written by ``cxreg register``).

Direction (as ``cxreg register`` and ``cxreg warp``): the field lives on the **fixed** grid and maps each fixed
point p to the moving point ``p + ddf(p)``. So

* ``from_image="fixed"``: points on the fixed image -> where they lie in the moving image, ``p + ddf(p)``
  (the field interpolated bilinearly at p);
* ``from_image="moving"``: points on the moving image -> where they land on the fixed image, the p that solves
  ``p + ddf(p) = q`` (the inverse map; Newton's method on the bilinear field, started at ``q - ddf(q)``). The
  residual ``|p + ddf(p) - q|`` is reported per point; a field that folds has no unique inverse, and the
  shipped models' fields are fold-free (``fix_folds``).

Coordinates are physical ``(x, y)``, as ITK and ANTs give them: for a PNG (spacing 1, origin 0) x is the column
and y the row, in pixels (pixel centres at whole numbers); for NIfTI/DICOM, the image's LPS millimetres. Outside
the field's grid the field is extended by its border value (column ``inside`` is 0 there).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from .io import InputError, atomic_file, check_output_file

__all__ = ["map_points", "map_points_file", "read_points_csv", "add_parser"]


def _bilinear(field: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """``field`` (H, W, C) at continuous (col, row) indices ``cr`` (N, 2), border-clamped -> (N, C)."""
    h, w = field.shape[:2]
    c = np.clip(cr[:, 0], 0, w - 1)
    r = np.clip(cr[:, 1], 0, h - 1)
    c0 = np.clip(np.floor(c).astype(int), 0, max(w - 2, 0))
    r0 = np.clip(np.floor(r).astype(int), 0, max(h - 2, 0))
    c1, r1 = np.minimum(c0 + 1, w - 1), np.minimum(r0 + 1, h - 1)
    fc, fr = (c - c0)[:, None], (r - r0)[:, None]
    return ((1 - fr) * ((1 - fc) * field[r0, c0] + fc * field[r0, c1])
            + fr * ((1 - fc) * field[r1, c0] + fc * field[r1, c1]))


def map_points(points: np.ndarray, ddf: np.ndarray, geometry, from_image: str = "moving", max_iter: int = 50,
               tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map (N, 2) physical (x, y) ``points`` with the pull-back field ``ddf`` (H, W, 2; physical (x, y)
    displacements on the fixed grid ``geometry`` = (origin (2,), spacing (2,), direction (2, 2)), ITK's order).

    Returns ``(mapped (N, 2), inside (N,) bool, residual (N,))``: the moving-image points of fixed points
    (``from_image="fixed"``, residual 0), or the fixed-image points of moving points (``"moving"``; residual =
    ``|p + ddf(p) - q|`` in physical units after at most ``max_iter`` Newton steps, stopped below ``tol``).
    ``inside``: the fixed point (given or found) lies on the field's grid."""
    if from_image not in ("fixed", "moving"):
        raise ValueError(f"from_image must be 'fixed' or 'moving', not {from_image!r}")
    o, s, d = (np.asarray(a, np.float64) for a in geometry)
    u = np.asarray(ddf, np.float64)
    h, w = u.shape[:2]
    a = d * s[None, :]                 # d(physical)/d(index (col, row))
    a_inv = np.linalg.inv(a)
    q = np.asarray(points, np.float64).reshape(-1, 2)

    def to_index(x):
        return (x - o) @ a_inv.T

    def inside(cr):
        return (cr[:, 0] >= -0.5) & (cr[:, 0] <= w - 0.5) & (cr[:, 1] >= -0.5) & (cr[:, 1] <= h - 0.5)

    if from_image == "fixed":
        cr = to_index(q)
        return q + _bilinear(u, cr), inside(cr), np.zeros(len(q))
    # d u / d index by central differences (one-sided at the border), as (H, W, 2 components, 2 index axes)
    du_dr = np.gradient(u, axis=0) if h > 1 else np.zeros_like(u)  # np.gradient needs 2 samples per axis
    du_dc = np.gradient(u, axis=1) if w > 1 else np.zeros_like(u)
    grad = np.stack([du_dc, du_dr], -1)  # (..., component, (col, row))
    cr = to_index(q - _bilinear(u, to_index(q)))  # start: q - u(q)
    res = np.full(len(q), np.inf)
    for _ in range(max_iter):
        f = o + cr @ a.T + _bilinear(u, cr) - q               # F(p) = p + u(p) - q, physical
        res = np.linalg.norm(f, axis=1)
        todo = res > tol
        if not todo.any():
            break
        jac = a[None] + _bilinear(grad.reshape(h, w, 4), cr[todo]).reshape(-1, 2, 2)
        # the field is constant beyond the border (clamped), so there d u / d index is 0
        out = ~inside(cr[todo])
        jac[out] = a
        step = np.linalg.solve(jac, f[todo][..., None])[..., 0]
        cr[todo] = cr[todo] - step
    f = o + cr @ a.T + _bilinear(u, cr) - q
    return o + cr @ a.T, inside(cr), np.linalg.norm(f, axis=1)


def read_points_csv(path: str | os.PathLike) -> tuple[list[str], list[dict], np.ndarray]:
    """``(columns, rows, (N, 2) points)`` of a CSV with columns ``x`` and ``y`` (other columns, e.g. a landmark
    name, are kept); :class:`InputError` naming the file and line otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: points file not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a UTF-8 CSV file ({e})") from None
    reader = csv.DictReader(io.StringIO(text))
    cols = [c.strip() for c in (reader.fieldnames or [])]
    if "x" not in cols or "y" not in cols:
        raise InputError(f"{path}: needs the columns x,y (found {cols})")
    rows, pts = [], []
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        try:
            x, y = float(row["x"]), float(row["y"])
        except ValueError:
            raise InputError(f"{path}: line {line}: x and y must be numbers (got {row['x']!r}, {row['y']!r})") from None
        if not (np.isfinite(x) and np.isfinite(y)):
            raise InputError(f"{path}: line {line}: x and y must be finite numbers (got {row['x']}, {row['y']})")
        rows.append(row)
        pts.append((x, y))
    if not rows:
        raise InputError(f"{path}: no points in this file")
    return cols, rows, np.asarray(pts, np.float64)


def map_points_file(ddf: str | os.PathLike, points: str | os.PathLike, out: str | os.PathLike, from_image: str,
                    overwrite: bool = False) -> tuple[Path, int, float]:
    """Map the points of the CSV ``points`` with ``ddf`` (a ``cxreg register`` ``ddf.nii.gz``) and write ``out``:
    the input columns, then ``x_moving, y_moving`` (``from_image="fixed"``) or ``x_fixed, y_fixed, residual``
    (``"moving"``), and ``inside``. Written atomically. Returns ``(out, number of points, largest residual)``."""
    from .warp import read_ddf

    out = check_output_file(out, overwrite, (".csv",), ".csv")
    cols, rows, pts = read_points_csv(points)
    vec, fo, fs, fd = read_ddf(ddf)
    mapped, ins, res = map_points(pts, vec, (fo, fs, fd), from_image)
    to = "moving" if from_image == "fixed" else "fixed"
    new = [f"x_{to}", f"y_{to}"] + (["residual"] if from_image == "moving" else []) + ["inside"]
    header = [c for c in cols if c not in new] + new
    try:
        with atomic_file(out) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                wr = csv.DictWriter(f, fieldnames=header)
                wr.writeheader()
                for row, m, i, r in zip(rows, mapped, ins, res):
                    row = dict(row, **{f"x_{to}": f"{m[0]:.6f}", f"y_{to}": f"{m[1]:.6f}", "inside": int(i)})
                    if from_image == "moving":
                        row["residual"] = f"{r:.2e}"
                    wr.writerow({k: row.get(k, "") for k in header})
    except OSError as e:
        raise InputError(f"{out}: cannot be written ({e.strerror or e})") from None
    return out, len(rows), float(res.max())


def _cmd_points(a) -> int:
    out, n, worst = map_points_file(a.ddf, a.points, a.out, a.from_image, overwrite=a.overwrite)
    if not a.quiet:
        extra = f"; largest residual {worst:.2g}" if a.from_image == "moving" else ""
        print(f"mapped {n} point(s) from the {a.from_image} image to the "
              f"{'moving' if a.from_image == 'fixed' else 'fixed'} image{extra}: {out}")
    return 0


def add_parser(sub) -> None:
    """Register the ``points`` sub-command on the ``cxreg`` sub-parsers."""
    p = sub.add_parser("points", help="map landmarks (a CSV of x,y points) with a saved ddf.nii.gz, either way")
    p.add_argument("ddf", help="ddf.nii.gz written by cxreg register")
    p.add_argument("points", help="CSV with columns x,y (physical coordinates: for a PNG x = column, y = row in "
                   "pixels); other columns are kept")
    p.add_argument("--from", dest="from_image", required=True, choices=["moving", "fixed"],
                   help="which image the points are on: moving -> their place on the fixed image (the field's "
                   "inverse), fixed -> their place in the moving image")
    p.add_argument("--out", required=True, help="output CSV (the input columns, then x_<to>, y_<to>[, residual], "
                   "inside)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--quiet", action="store_true", help="no summary line")
    p.set_defaults(func=_cmd_points)
