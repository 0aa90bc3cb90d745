# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Splitting work across processes: ``--shard i/n`` for batch inference, and torchrun's rank/world size."""

from __future__ import annotations

import os

__all__ = ["parse_shard", "shard_items", "rank_world", "dist_rank", "writer_handler_types", "drop_writers"]


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment (``RANK``, ``WORLD_SIZE``); ``(0, 1)`` outside it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; ``None`` -> torchrun's ``(rank, world_size)``.

    Raises ``ValueError`` with a one-line message for anything else (``"3/2"``, ``"a/b"``, ``"1"``).
    """
    if spec is None:
        return rank_world()
    try:
        i, n = (int(v) for v in str(spec).split("/"))
    except ValueError:
        raise ValueError(f"--shard {spec!r}: expected i/n with integers, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {spec!r}: need 0 <= i < n")
    return i, n


def shard_items(items: list, spec: str | None = None) -> list:
    """Every n-th item starting at i (round robin, so shards differ in size by at most one item).

    The union of the shards ``0/n … (n-1)/n`` is ``items``, each item in exactly one shard.
    """
    i, n = parse_shard(spec)
    return list(items)[i::n]


def dist_rank() -> int:
    """The ``torch.distributed`` rank when a process group is initialised, else torchrun's ``RANK`` (0 outside)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return rank_world()[0]


def writer_handler_types() -> tuple[type, ...]:
    """Handler classes that write logs, metrics or checkpoints: in distributed training only rank 0 attaches them."""
    from monai import handlers as mh

    from .workflow import RunSummary

    names = ("StatsHandler", "TensorBoardStatsHandler", "TensorBoardImageHandler", "CheckpointSaver", "MetricsSaver",
             "ClassificationSaver", "MLFlowHandler", "ClearMLStatsHandler", "ClearMLImageHandler")
    return tuple(getattr(mh, n) for n in names if hasattr(mh, n)) + (RunSummary,)


def drop_writers(handlers, rank: int | None = None) -> list:
    """``handlers`` without ``None`` entries and, on ranks other than 0, without the writers
    (:func:`writer_handler_types`): for ``multi_gpu_train.json``, robust to the order of the handler list."""
    rank = dist_rank() if rank is None else int(rank)
    kinds = writer_handler_types()
    return [h for h in (handlers or []) if h is not None and (rank == 0 or not isinstance(h, kinds))]
