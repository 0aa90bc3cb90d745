"""Histogram equalisation (the universal models' input normalisation): counting path vs sorting path.

    python scripts/bench_equalize.py        (~5 s)

Times bundle.transforms.equalize_histogram on 8-bit 256 x 256 images (the counting path, used whenever every
value is exactly k / 255) against the sorting path it replaces (sort + searchsorted, still used for other
values), one torch thread, median of 50 calls, batch 1 and 32; checks that both give the same numbers.
"""

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bundle.transforms import equalize_histogram  # noqa: E402


def by_sorting(images):
    flat = images.float().flatten(2)
    srt = flat.sort(dim=2).values.contiguous()
    return (torch.searchsorted(srt, flat.contiguous()).float() / flat.shape[2]).view_as(images)


def median_ms(fn, x, n=50):
    fn(x)
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn(x)
        t.append(1000 * (time.perf_counter() - t0))
    return statistics.median(t)


torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
print("| images | counting (ms) | sorting (ms) | same values |")
print("|---|---|---|---|")
for b in (1, 32):
    x = torch.randint(0, 256, (b, 1, 256, 256), generator=g).float() / 255
    same = torch.equal(equalize_histogram(x), by_sorting(x))
    print(f"| {b} x 256 x 256 | {median_ms(equalize_histogram, x):.2f} | {median_ms(by_sorting, x):.2f} | {same} |")
