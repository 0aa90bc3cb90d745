"""Write time and size of a gzipped NIfTI: ``bundle.io.write_nifti`` (nibabel) against ``itk.imwrite``.

    python scripts/bench_nifti_write.py [--sides 256 2048] [--repeats 3]

Random float32 scalar (H, W) and vector (H, W, 2) images (a Jacobian map and a displacement field, as
``cxreg register`` writes them); the best of ``--repeats`` runs, in seconds (docs/reliability.md, "Limits").
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def best_time(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sides", type=int, nargs="+", default=[256, 2048])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    import itk

    from bundle.io import write_nifti

    rng = np.random.default_rng(0)
    print("| image | nibabel (write_nifti) | itk.imwrite |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        na, ni = os.path.join(d, "a.nii.gz"), os.path.join(d, "b.nii.gz")
        for side in a.sides:
            for kind, shape in (("scalar", (side, side)), ("vector", (side, side, 2))):
                arr = rng.normal(size=shape).astype(np.float32)
                vec = kind == "vector"
                t_nib = best_time(lambda: write_nifti(na, arr, vector=vec), a.repeats)
                img = itk.image_from_array(arr, is_vector=vec)
                t_itk = best_time(lambda: itk.imwrite(img, ni, compression=True), a.repeats)
                print(f"| {side} x {side} {kind} | {t_nib:.3f} s, {os.path.getsize(na) // 1024} KiB "
                      f"| {t_itk:.3f} s, {os.path.getsize(ni) // 1024} KiB |")


if __name__ == "__main__":
    main()
