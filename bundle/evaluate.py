# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Evaluation harness: register ordered test pairs with a method and score them.

Writes into ``out``: ``pairs.csv`` (moving, fixed, dsc, hd, assd, hd95 (since 0.5.5), jac, jac_pct, sdlogj (std of log det J, since
0.5.10), seconds),
``summary.json`` (mean/std/median/p90 per metric, settings, timing) and ``table.md`` (a Table-1 row
``mean (std)``). Methods map a batch of pairs at the evaluation size (256x256) to pull-back fields;
masks are warped with nearest neighbour, so warped masks stay binary.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from .data import load_split, resolve_data_dir, sample_pairs
from .io import atomic_dir, check_writable, json_ready
from .metrics import pair_metrics, summarise
from .spatial import warp

__all__ = ["METHODS", "register_method", "evaluate", "table_row", "PAPER_TABLE1"]

# method(fixed (B,1,H,W) in [0,1], moving (B,1,H,W), fixed_mask, moving_mask, fixed_index=, moving_index=)
#   -> ddf (B,2,H,W) in pixels. The masks are given for oracle tests only; real methods must not use them.
# A method object may have setup(data) (called once with the CachedSplit) and a batch_size attribute.
Method = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
METHODS: dict[str, tuple[Method, int]] = {}  # name -> (function, preferred batch size)


def register_method(name: str, batch_size: int = 1):
    def deco(fn):
        METHODS[name] = (fn, batch_size)
        return fn

    return deco


@register_method("identity", batch_size=128)
def _identity(fixed, moving, fixed_mask, moving_mask, **_):
    return torch.zeros(fixed.shape[0], 2, *fixed.shape[2:])


def _classical(fn, fixed, moving):
    # the classical tools get the stored grey values (0..255), as the paper's SimpleElastix/SyN did
    out = [torch.from_numpy(fn(f[0].numpy() * 255.0, m[0].numpy() * 255.0)) for f, m in zip(fixed, moving)]
    return torch.stack(out)


@register_method("elastix", batch_size=1)
def _elastix(fixed, moving, fixed_mask, moving_mask, **_):
    from .baselines import elastix_register

    return _classical(elastix_register, fixed, moving)


@register_method("syn", batch_size=1)
def _syn(fixed, moving, fixed_mask, moving_mask, **_):
    from .baselines import syn_register

    return _classical(syn_register, fixed, moving)


# The paper's Table 1 (mean (std)); HD and ASSD there are called mm, on the same 256x256 images.
PAPER_TABLE1 = {
    "JSRT": {
        "SimpleElastix": "0.915 (0.045) | 31.408 (15.783) | 3.860 (2.071) | #",
        "SyN": "0.895 (0.058) | 26.545 (15.617) | 4.468 (2.654) | #",
        "AC-RegNet": "0.953 (0.012) | 22.367 (15.382) | 2.195 (0.845) | 740.025 (993.758)",
        "Ours (paper)": "0.970 (0.005) | 9.230 (4.760) | 1.244 (0.237) | 48.236 (149.108)",
    },
    "MONT": {
        "SimpleElastix": "0.888 (0.086) | 31.097 (22.229) | 4.301 (3.743) | #",
        "SyN": "0.842 (0.113) | 28.221 (17.701) | 5.549 (4.578) | #",
        "AC-RegNet": "0.946 (0.025) | 14.841 (16.170) | 2.645 (1.768) | 692.614 (1074.659)",
        "Ours (paper)": "0.963 (0.016) | 13.385 (16.000) | 1.722 (1.600) | 263.380 (710.760)",
    },
    "SHEN": {
        "SimpleElastix": "0.908 (0.058) | 29.133 (19.261) | 3.666 (2.591) | #",
        "SyN": "0.863 (0.087) | 32.915 (19.622) | 5.214 (3.487) | #",
        "AC-RegNet": "0.929 (0.029) | 24.518 (16.248) | 2.882 (1.396) | 887.145 (1080.631)",
        "Ours (paper)": "0.957 (0.011) | 11.720 (9.376) | 1.637 (0.536) | 57.464 (203.295)",
    },
}


def table_row(summary: dict, label: str) -> str:
    s = summary["metrics"]

    def cell(k, nd):
        return f"{s[k]['mean']:.{nd}f} ({s[k]['std']:.{nd}f})"

    return f"| {summary['dataset']} | {label} | {cell('dsc', 3)} | {cell('hd', 3)} | {cell('assd', 3)} | {cell('jac', 3)} | {summary['n_pairs']} |"


def evaluate(
    method: str,
    dataset: str,
    out: str | os.PathLike,
    split: str = "test",
    data_dir=None,
    max_pairs: int | None = None,
    seed: int = 0,
    size: int = 256,
    spacing: tuple[float, float] | None = None,
    progress: bool = True,
    method_fn: Method | None = None,
    batch_size: int | None = None,
    shard: str | None = None,
    overwrite: bool = True,
    options: dict | None = None,
) -> dict:
    """Register and score ordered pairs of ``dataset``/``split``; returns the summary dict.

    ``options`` (e.g. the command line's model, segmentation model and refinement settings) is stored in
    ``summary.json`` as ``"options"``, with the package version, so every result folder says how it was made.

    ``max_pairs`` draws a seeded sample (``seed``) of the n(n-1) ordered pairs. Outputs are written to a
    temporary folder next to ``out`` and renamed at the end, so an interrupted run leaves nothing behind.
    ``shard="i/n"`` scores every n-th of those pairs from the i-th (see :func:`bundle.distributed.shard_items`).
    ``overwrite=False`` (``cxreg evaluate`` without ``--overwrite``) refuses an ``out`` that exists and is not
    empty; the Python default replaces it, as the scripts that rerun documented results expect.
    """
    if max_pairs is not None and (isinstance(max_pairs, bool) or int(max_pairs) != max_pairs or max_pairs < 1):
        raise ValueError(f"max_pairs must be a whole number >= 1 (or None for all pairs), not {max_pairs!r}")
    if spacing is not None and not all(np.isfinite(v) and v > 0 for v in spacing):
        raise ValueError(f"spacing must be two numbers > 0 (mm per row, per column), not {spacing!r}")
    check_writable(out, overwrite)
    if method_fn is None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {sorted([*METHODS, 'ours'])} ('ours' through "
                             f"cxreg evaluate --method ours, or method_fn=bundle.registration.OursMethod(...))")
        method_fn, default_bs = METHODS[method]
        batch_size = batch_size or default_bs
    batch_size = batch_size or getattr(method_fn, "batch_size", 1)
    data_dir = resolve_data_dir(data_dir)
    data = load_split(dataset, split, data_dir, size=size)
    if hasattr(method_fn, "setup"):
        method_fn.setup(data)
    pairs = sample_pairs(len(data), max_pairs, seed)
    if shard:
        from .distributed import shard_items

        pairs = shard_items(pairs, shard)

    rows, values = [], {k: [] for k in ("dsc", "hd", "assd", "hd95", "jac", "jac_pct", "sdlogj", "seconds")}
    t_start = time.perf_counter()
    with atomic_dir(out) as tmp:
        bar = tqdm(total=len(pairs), desc=f"{method} {dataset}", unit="pair", disable=not progress)
        for b0 in range(0, len(pairs), batch_size):
            chunk = pairs[b0 : b0 + batch_size]
            mi = torch.tensor([p[0] for p in chunk])
            fi = torch.tensor([p[1] for p in chunk])
            t0 = time.perf_counter()
            with torch.no_grad():
                ddf = method_fn(data.images[fi], data.images[mi], data.masks[fi], data.masks[mi], fixed_index=fi,
                                moving_index=mi).float()
                warped = warp(data.masks[mi], ddf, mode="nearest", padding_mode="zeros")
            seconds = (time.perf_counter() - t0) / len(chunk)
            met = pair_metrics(warped, data.masks[fi], ddf, spacing)
            for j, (m, f) in enumerate(chunk):
                row = {"moving": data.ids[m], "fixed": data.ids[f], **{k: met[k][j] for k in met}, "seconds": seconds}
                rows.append(row)
                for k in values:
                    values[k].append(row[k])
            bar.update(len(chunk))
            bar.set_postfix(dsc=f"{np.nanmean(values['dsc']):.4f}", hd=f"{np.nanmean(values['hd']):.2f}")
        bar.close()
        total = time.perf_counter() - t_start
        with open(tmp / "pairs.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        summary = {
            "method": method,
            "dataset": dataset,
            "split": split,
            "data_dir": str(data_dir),
            "n_images": len(data),
            "n_pairs": len(pairs),
            "all_pairs": len(pairs) == len(data) * (len(data) - 1),
            "shard": shard,
            "seed": seed,
            "size": size,
            "units": "mm" if spacing else "pixels",
            "metrics": summarise(values),
            "wall_seconds": total,
            "torch_threads": torch.get_num_threads(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        }
        if options is not None:
            from . import __version__

            summary["options"] = dict(options, version=__version__)
        (tmp / "summary.json").write_text(json.dumps(json_ready(summary), indent=2))
        header = "| Dataset | Method | DSC | HD | ASSD | JAC | pairs |\n|---|---|---|---|---|---|---|\n"
        (tmp / "table.md").write_text(header + table_row(summary, method) + "\n")
    return summary
