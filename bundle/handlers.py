# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Ignite/MONAI handlers that make training crash-safe: atomic checkpoints and a stop on NaN/Inf.

- :class:`CheckpointSaver` is MONAI's ``CheckpointSaver`` with ignite's atomic write switched on (MONAI turns
  it off): each ``checkpoint_*.pt`` / ``model.pt`` is written to a temporary file in the same folder and
  renamed, so a run killed while saving never leaves a truncated checkpoint for the next resume.
- :class:`StopOnNonFinite` stops training at the first NaN/Inf loss (or non-finite weights at the end of an
  epoch) with one clear message naming the iteration; nothing after that point is saved or exported, so the
  newest checkpoint on disk is the last good one.
- :class:`ValidateAtEnd` (beside MONAI's ``ValidationHandler`` in each trainer) validates once more after the
  last epoch when that epoch was not a multiple of ``interval``: a short run (``--max_epochs 2`` with
  ``val_interval`` 5, a quick fine-tune) still validates, keeps its best weights and exports them, instead of
  failing at the end; with ``key_metric_file`` a rerun of a run killed during that validation validates it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import torch
from monai.handlers import CheckpointSaver as _MonaiCheckpointSaver

__all__ = ["CheckpointSaver", "StopOnNonFinite", "NonFiniteError", "ValidateAtEnd", "first_loss"]


def _write_json_or_skip(path: Path, data: dict) -> None:
    """:func:`bundle.io.write_text_atomic` of ``data`` as JSON, skipped on ``OSError`` (a folder gone away or
    read-only): the small records written here are conveniences, not results."""
    from .io import write_text_atomic

    try:
        write_text_atomic(path, json.dumps(data))
    except OSError:
        pass


class _SaveThenRemove:
    """Mixin for a ``DiskSaver``: removing the checkpoint that a new one replaces waits until the new one is
    written. ignite's ``Checkpoint`` removes the old file *before* saving (with ``n_saved=1`` a crash while
    saving would leave no checkpoint at all)."""

    def _name(self, filename: str) -> str:
        return getattr(self, "filename", None) or filename  # MONAI's savers may have one fixed file name

    def remove(self, filename: str) -> None:
        self._pending = [*getattr(self, "_pending", []), filename]

    def __call__(self, checkpoint, filename: str, metadata=None) -> None:
        super().__call__(checkpoint, filename, metadata)
        pending, self._pending = getattr(self, "_pending", []), []
        for old in pending:
            if self._name(old) != self._name(filename):
                super().remove(old)


class CheckpointSaver(_MonaiCheckpointSaver):
    """MONAI ``CheckpointSaver`` (same arguments) made crash-safe.

    - Atomic files: ignite's ``DiskSaver(atomic=True)`` writes into a ``NamedTemporaryFile`` in ``save_dir``,
      ``os.replace``-s it onto the final name and adds group/other read permission; MONAI builds its savers
      with ``atomic=False``, which we switch back on.
    - The checkpoint a new one replaces (``n_saved``) is removed only after the new one is on disk.
    - The best score across a resume: with a fixed ``key_metric_filename`` (the configs' ``model.pt``) each key-
      metric save also writes ``<key_metric_filename>.score.json`` (the score and ignite's name for the file);
      ``resume_best=True`` (the configs: when the run resumes from a checkpoint) starts from that score when both
      files are there, so a validation after a resume replaces the best model only if it scores higher (MONAI's
      saver starts each process with no score: the first validation after a resume always replaced it).
    """

    def __init__(self, *args, resume_best: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        for ck in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if ck is not None:
                h = ck.save_handler
                h._atomic = True
                h.__class__ = type(f"SaveThenRemove{type(h).__name__}", (_SaveThenRemove, type(h)), {})
        ck = self._key_metric_checkpoint
        name = getattr(ck.save_handler, "filename", None) if ck is not None else None
        self._best_file = None if name is None else Path(self.save_dir) / name
        if resume_best and self._best_file is not None:
            prior = self.best_score()
            if prior is not None:
                ck._saved = [ck.Item(prior[0], prior[1])]

    def best_score(self) -> tuple[float, str] | None:
        """(score, ignite's file name) of the best model in ``save_dir`` from ``.score.json``, if both exist."""
        if self._best_file is None or not self._best_file.is_file():
            return None
        try:
            d = json.loads(self._score_file().read_text())
            score = float(d["score"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return (score, str(d.get("filename", self._best_file.name))) if math.isfinite(score) else None

    def _score_file(self) -> Path:
        return self._best_file.with_name(self._best_file.name + ".score.json")

    def metrics_completed(self, engine) -> None:
        super().metrics_completed(engine)
        ck = self._key_metric_checkpoint
        if self._best_file is None or not ck._saved:
            return
        item = ck._saved[-1]
        # if it cannot be written, a resumed run starts without the score, as MONAI's saver does
        _write_json_or_skip(self._score_file(), {"score": float(item.priority), "filename": str(item.filename)})


class NonFiniteError(RuntimeError):
    """Training produced a NaN/Inf loss or NaN/Inf weights."""


def first_loss(output) -> torch.Tensor | None:
    """The ``"loss"`` of an engine output: a dict, or a decollated list of dicts (MONAI ``SupervisedTrainer``)."""
    if isinstance(output, dict):
        return output.get("loss")
    if isinstance(output, (list, tuple)) and output and isinstance(output[0], dict):
        return output[0].get("loss")
    return output if torch.is_tensor(output) else None


def _newest_checkpoint(folder: str | os.PathLike | None) -> str:
    if not folder:
        return "none"
    found = sorted(Path(folder).glob("checkpoint_*.pt"), key=lambda p: p.stat().st_mtime)
    return str(found[-1]) if found else "none"


class StopOnNonFinite:
    """Handler: stop training with a one-line error at the first NaN/Inf loss.

    Checked at every iteration (the ``loss`` of the engine output) and, at each epoch end before any
    checkpoint is written, every network parameter. On a non-finite value it raises :class:`NonFiniteError`
    through the engine, so the epoch does not complete (no checkpoint, no validation, no export after
    ``trainer.run()``), prints ``cxreg training: error: ...`` naming the iteration and the newest checkpoint
    (the last good one) and exits with status 1 (``SystemExit``), without a traceback unless ``debug``.

    Attach it first in the trainer's handler list so that its ``EXCEPTION_RAISED`` handler runs before
    MONAI's ``StatsHandler`` (which logs a traceback and re-raises).

    Args:
        output_dir: the folder of the run's ``checkpoint_*.pt`` (named in the message).
        debug: re-raise the error (with traceback) instead of exiting; default: environment ``CXREG_DEBUG=1``.
    """

    def __init__(self, output_dir: str | os.PathLike | None = None, debug: bool | None = None):
        self.output_dir = output_dir
        self.debug = os.environ.get("CXREG_DEBUG") == "1" if debug is None else debug
        self.logger = logging.getLogger("cxreg")

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self.check_loss)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.check_weights)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self.exception_raised)

    def _fail(self, engine, what: str) -> None:
        msg = (f"training stopped: {what} at iteration {engine.state.iteration} (epoch {engine.state.epoch}); "
               f"nothing was saved after it; last good checkpoint: {_newest_checkpoint(self.output_dir)}")
        raise NonFiniteError(msg)

    def check_loss(self, engine) -> None:
        loss = first_loss(engine.state.output)
        if loss is None:
            return
        v = float(torch.as_tensor(loss).detach().float().sum())
        if not math.isfinite(v):
            self._fail(engine, f"the loss is {v}")

    def check_weights(self, engine) -> None:
        net = getattr(engine, "network", None)
        if net is None:
            return
        for name, p in net.named_parameters():
            if not torch.isfinite(p.detach()).all():
                self._fail(engine, f"parameter {name} has NaN/Inf values")

    def exception_raised(self, engine, e: BaseException) -> None:
        if isinstance(e, NonFiniteError) and not self.debug:
            self.logger.error(str(e))
            raise SystemExit(f"cxreg training: error: {e}")
        raise e


class ValidateAtEnd:
    """Runs ``validator`` when training completes, if this process completed the last epoch (``max_epochs``) and
    that epoch was not one of MONAI's ``ValidationHandler`` epochs (a multiple of ``interval``).

    Kept apart from MONAI's ``ValidationHandler``, which stays in the configs as it is (MONAI's
    ``check_properties()`` looks for it by name). Not run when a run stops early (:class:`StopOnNonFinite`, an
    ``engine.terminate()``, which ignite also ends with COMPLETED, even inside the last epoch).

    A finished run started again resumes with no epoch left to train. With ``key_metric_file`` (the best model
    the validation writes, the configs' ``<output_dir>/model.pt``) such a rerun validates the restored weights
    when the file is missing, or when the last epoch needed this handler's validation and
    ``final_validation.json`` beside the file (``{"epoch": N}``, rewritten when any run of ``validator``
    completes, after its best model is saved) does not name that epoch: a run killed during its final
    validation is validated on the rerun, instead of failing at the export or silently exporting an earlier
    epoch's best model. Otherwise the rerun validates nothing (its ``model.pt`` stays as it was). Under DDP
    rank 0 decides, so every rank validates or none does.
    """

    RECORD = "final_validation.json"

    def __init__(self, validator, interval: int, key_metric_file: str | os.PathLike | None = None) -> None:
        self.validator, self.interval = validator, int(interval)
        self.key_metric_file = None if key_metric_file is None else Path(key_metric_file)
        self._last_done: int | None = None  # the last epoch this process completed
        self._iterated = False  # whether this process ran any training iteration

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_STARTED(once=1), self._iteration_started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_done)
        engine.add_event_handler(Events.COMPLETED, self)
        if self.key_metric_file is not None:  # MONAI's ValidationHandler's runs and ours alike
            self.validator.add_event_handler(Events.COMPLETED, self._record)

    def _record(self, validator) -> None:
        """``final_validation.json``: the epoch the validator has just validated (rank 0; atomic)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return
        # if it cannot be written, a rerun validates once more: no harm
        _write_json_or_skip(self.key_metric_file.parent / self.RECORD, {"epoch": int(validator.state.epoch)})

    def _iteration_started(self, engine) -> None:
        self._iterated = True

    def _epoch_done(self, engine) -> None:
        self._last_done = engine.state.epoch

    def _recorded_epoch(self) -> int | None:
        try:
            return int(json.loads((self.key_metric_file.parent / self.RECORD).read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _rerun_reason(self, st) -> str | None:
        """Why a resumed run with nothing left to train must validate (rank 0's view), or None."""
        if self.key_metric_file is None or self._iterated or st.epoch != st.max_epochs:
            return None
        if not self.key_metric_file.is_file():
            return f"{self.key_metric_file} not found"
        if st.max_epochs % self.interval and self._recorded_epoch() != st.max_epochs:
            return f"epoch {st.max_epochs} was not validated ({self.key_metric_file.parent / self.RECORD})"
        return None

    def __call__(self, engine) -> None:
        st = engine.state
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        rank0 = not distributed or torch.distributed.get_rank() == 0
        reason = self._rerun_reason(st)
        if self.key_metric_file is not None and distributed:
            flag = [reason]  # rank 0's view (it writes the files), so that every rank validates or none does
            torch.distributed.broadcast_object_list(flag, src=0)
            reason = flag[0]
        fresh = self._last_done == st.max_epochs and st.max_epochs % self.interval
        if fresh or reason:
            if reason and rank0:
                print(f"{reason}: validating the last checkpoint's weights")
            self.validator.run(st.epoch)
