# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Pictures for docs/usage.md, made from a SYNTHETIC pair only (never from the datasets).

    python scripts/usage_figures.py [--out docs/img] [--model JSRT]

Draws a chest-like moving image (256 x 224, lungs smaller and shifted) and fixed image (256 x 256),
registers them exactly as ``cxreg register`` does (``bundle.register.register_files``), and writes
``usage_inputs.png`` (moving, fixed, warped), ``usage_overlay.png`` (the ``overlay.png`` written for the
pair) and ``usage_field.png`` (deformed grid and Jacobian determinant map). Prints the pair's metrics.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bundle.io import load_image
from bundle.register import register_files
from bundle.visualize import grid_image, jacobian_rgb, tile, to_rgb


def chest(shape: tuple[int, int], shift=(0.0, 0.0), scale=(1.0, 1.0), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(8-bit image, 0/1 lung mask): bright body, two dark lung fields, soft ribs, noise."""
    h, w = shape
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:h, 0:w].astype(np.float32)
    body = ((r - 0.55 * h) / (0.62 * h)) ** 2 + ((c - 0.5 * w) / (0.47 * w)) ** 2 <= 1
    lungs = np.zeros(shape, bool)
    for side, cc in ((-1, 0.31), (1, 0.69)):
        r0, c0 = 0.47 * h + shift[0], cc * w + shift[1]
        rr, rc = 0.29 * h * scale[0], (0.13 + 0.01 * side) * w * scale[1]
        lungs |= ((r - r0) / rr) ** 2 + ((c - c0) / rc) ** 2 <= 1
    img = np.where(body, 185.0, 25.0) - 95.0 * lungs
    img += 12.0 * lungs * (np.sin(r / h * 2 * np.pi * 7) > 0.6)  # ribs
    img += rng.normal(0, 4, shape)
    return np.clip(img, 0, 255).astype(np.uint8), lungs.astype(np.uint8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/img")
    p.add_argument("--model", default="JSRT")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        mov, mov_m = chest((256, 224), shift=(8, -6), scale=(0.9, 0.92), seed=1)
        fix, fix_m = chest((256, 256), seed=2)
        for name, arr in (("moving", mov), ("fixed", fix), ("moving_mask", mov_m * 255), ("fixed_mask", fix_m * 255)):
            Image.fromarray(arr).save(t / f"{name}.png")
        pairs = [{"moving": str(t / "moving.png"), "fixed": str(t / "fixed.png"),
                  "moving_mask": str(t / "moving_mask.png"), "fixed_mask": str(t / "fixed_mask.png")}]
        status = register_files(pairs, t / "out", model=a.model, progress=False, single=True)
        if not status[0]["ok"]:
            raise SystemExit(f"registration failed: {status[0]['error']}")
        res = t / "out"
        warped = load_image(res / "warped.png")
        import itk

        ddf_xy = itk.array_from_image(itk.imread(str(res / "ddf.nii.gz")))  # (H, W, 2) physical (x, y) = (col, row)
        ddf = np.stack([ddf_xy[..., 1], ddf_xy[..., 0]])  # (2, H, W) rows, cols (unit spacing: pixels)
        jac = itk.array_from_image(itk.imread(str(res / "jacobian.nii.gz")))
        mov_sq = np.zeros((256, 256), np.float32)
        mov_sq[:, 16:240] = mov  # shown centred on a square canvas, as the model sees it
        tile([[to_rgb(mov_sq / 255), to_rgb(fix / 255), to_rgb(warped / 255)]],
             [["moving (256x224)", "fixed (256x256)", "warped.png"]]).save(out / "usage_inputs.png")
        shutil.copy2(res / "overlay.png", out / "usage_overlay.png")
        tile([[grid_image(ddf + np.array([0.0, 16.0])[:, None, None], step=12, background=mov_sq / 255), jacobian_rgb(jac)]],
             [["ddf: fixed-grid lines on the moving image", "jacobian.nii.gz (blue <1, red >1)"]]).save(
            out / "usage_field.png")
        metrics = json.loads((res / "metrics.json").read_text())
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("fixed", "moving")}))
    print(f"wrote {out}/usage_inputs.png, usage_overlay.png, usage_field.png")


if __name__ == "__main__":
    main()
