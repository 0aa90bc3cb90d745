# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Small helpers the bundle configs call: weight files, resume, timing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from .io import InputError, atomic_file, first_line

__all__ = ["check_device", "safe_load", "load_weights", "init_path", "init_weights", "save_atomic", "check_finite", "export_weights", "resume_path", "write_json", "RunSummary",
           "first_reaching", "check_overrides", "unknown_overrides", "bad_flag_values",
           "bad_number_values"]


def check_device(device) -> str:
    """``device`` ("cpu", "cuda", "cuda:1", a ``torch.device``) as text, or a one-line :class:`InputError` when
    torch does not know it or it is not on this machine (asked for CUDA without a usable GPU, or a GPU index
    beyond those present)."""
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"--device {device}: not a device (use cpu or cuda)") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: no CUDA GPU is available on this machine (torch "
                             f"{torch.__version__}{'' if torch.version.cuda else ', a build without CUDA'}); "
                             f"use --device cpu")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif d.type != "cpu":
        avail = getattr(getattr(torch, d.type, None), "is_available", None)  # torch.mps, torch.xpu, ...
        if not (callable(avail) and avail()):
            raise InputError(f"--device {device}: not available on this machine (use cpu or cuda)")
    return str(device)


def safe_load(path: str | os.PathLike, map_location="cpu"):
    """``torch.load(weights_only=True)`` (tensors and plain containers only); one-line errors naming the file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: weights file not found")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:
        if "Weights only load failed" in str(e):
            raise InputError(f"{p}: refused: the checkpoint holds Python objects other than tensors (cxreg loads "
                             "weights with torch.load(weights_only=True))") from None
        raise InputError(f"{p}: not a PyTorch checkpoint ({type(e).__name__}: {first_line(e, 120)})") from e


def load_weights(path: str | os.PathLike, map_location="cpu") -> dict:
    """The network state dict of a checkpoint (a plain state dict, or the ``"model"`` entry of one)."""
    p = Path(path)
    sd = safe_load(p, map_location)
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict):
        raise InputError(f"{p}: checkpoint does not hold a state dict")
    return sd


def init_path(init: str | os.PathLike | None, kind: str) -> Path | None:
    """The weights file ``--init`` names (None for no ``--init``); a one-line :class:`InputError` if it is missing."""
    if init is None or str(init).lower() in ("", "none", "null"):
        return None
    from .priors import weights_path

    p = weights_path(kind, init)
    if not p.is_file():
        raise InputError(f"{p}: --init weights not found (give JSRT, MONT, SHEN, universal or a weights file)")
    return p


def init_weights(net: torch.nn.Module, init: str | os.PathLike | None, kind: str) -> torch.nn.Module:
    """Start training from shipped or saved weights (``--init JSRT|MONT|SHEN|universal|PATH``); None: as built.

    ``kind``: ``segmentation``, ``autoencoder`` or ``registration`` (which shipped file a name means). The
    architecture must match (a one-line :class:`InputError` names the file otherwise). Registration settings
    saved with the weights are not applied, so e.g. a 64 x 64 model can be fine-tuned at ``--work_size 128``;
    a segmentation model keeps the intensity normalisation stored in its weights but takes the working size of
    ``net`` (``--work_size``), so a 128 x 128 model can be fine-tuned at 256 x 256.
    """
    p = init_path(init, kind)
    if p is None:
        return net
    try:
        sd = load_weights(p)
        if "work_size_code" in sd and hasattr(net, "work_size"):
            sd = dict(sd, work_size_code=torch.tensor(int(net.work_size)))
        net.load_state_dict(sd)
    except RuntimeError as e:
        raise InputError(f"{p}: does not fit this network ({str(e).splitlines()[0][:160]})") from None
    return net


def save_atomic(obj, dst: str | os.PathLike) -> str:
    """``torch.save`` to a temporary file beside ``dst``, then rename: no half-written weights file."""
    with atomic_file(dst) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)  # to a file object: the archive's inner folder is "archive", not the random temp name
    return str(dst)


def check_finite(state_dict: dict, src) -> None:
    """Refuse weights with NaN/Inf (one-line ``InputError`` naming ``src`` and the first bad tensor)."""
    for k, v in state_dict.items():
        if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all():
            raise InputError(f"{src}: weights contain NaN/Inf ({k}); not exported")


def export_weights(src: str | os.PathLike, dst: str | os.PathLike) -> str:
    """Copy the network state dict of checkpoint ``src`` to ``dst`` (tensors only, atomic write)."""
    sd = load_weights(src)
    check_finite(sd, src)
    save_atomic({k: v.detach().cpu() for k, v in sd.items()}, dst)
    print(f"saved weights to {dst}")
    return str(dst)


def flag(value, name: str = "value") -> bool:
    """A config flag as a bool. ``python -m monai.bundle run ... --amp false`` hands the config the *string*
    ``"false"`` (Fire parses only ``False``), which is truthy; this maps true/false, on/off, yes/no, 1/0 (any
    case) to bools and refuses anything else with a ValueError naming the flag."""
    from .registration import as_bool

    return as_bool(value, f"--{name}")


def resume_path(output_dir: str | os.PathLike, resume: bool) -> str | None:
    """The newest ``checkpoint_*.pt`` in ``output_dir`` when ``resume`` is true, else None."""
    if not flag(resume, "resume"):
        return None
    found = sorted(Path(output_dir).glob("checkpoint_*.pt"), key=lambda p: p.stat().st_mtime)
    return str(found[-1]) if found else None


def write_json(path: str | os.PathLike, data: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=2))


class Timer:
    """``Timer()`` then ``.elapsed()`` seconds; used to record training time in the run summary."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


class EpochSetter:
    """Handler: call ``dataset.set_epoch(epoch)`` when each epoch starts (before the DataLoader forks workers)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self.dataset.set_epoch(e.state.epoch))


class RunSummary:
    """Handler: write ``summary.json`` (epochs, iterations, wall seconds, best metric, validation history, device,
    threads) after every validation and at the end of training.

    ``history`` is a list of ``{"epoch", "iteration", "seconds", "metric"}``, one entry each time ``evaluator``
    completes: the trainer's epoch and iteration then, the wall seconds since training started (summed over resumed
    runs: a resumed run continues the history of the ``summary.json`` it finds, from the epoch it resumes at), and the
    evaluator's key metric. Only rank 0 writes when ``torch.distributed`` is initialised.
    """

    def __init__(self, path: str, evaluator=None, extra: dict | None = None):
        self.path, self.evaluator, self.extra = path, evaluator, extra or {}
        self.timer = Timer()
        self.trainer = None
        self.history: list[dict] = []
        self.offset = 0.0  # wall seconds of earlier runs this one resumes

    def attach(self, engine) -> None:
        from ignite.engine import Events

        self.trainer = engine
        # attach after a CheckpointLoader: its STARTED handler restores the epoch this one reads
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.COMPLETED, self._write)
        if self.evaluator is not None:
            self.evaluator.add_event_handler(Events.COMPLETED, self._validated)

    def _started(self, engine) -> None:
        self.timer, self.history, self.offset = Timer(), [], 0.0
        start_epoch = engine.state.epoch
        p = Path(self.path)
        if start_epoch > 0 and p.is_file():  # resumed: continue the earlier run's history and clock
            try:
                old = json.loads(p.read_text())
            except (OSError, ValueError):
                old = {}
            self.history = [h for h in old.get("history", []) if h.get("epoch", 0) <= start_epoch]
            self.offset = float(old.get("wall_seconds_total", old.get("wall_seconds_this_run", 0.0)))

    def _validated(self, evaluator) -> None:
        st = evaluator.state
        key = getattr(st, "key_metric_name", None)
        value = st.metrics.get(key) if key is not None else None
        tr = self.trainer.state if self.trainer is not None else st
        self.history.append({
            "epoch": int(tr.epoch),
            "iteration": int(tr.iteration),
            "seconds": round(self.offset + self.timer.elapsed(), 2),
            "metric": None if value is None else float(value),
        })
        if self.trainer is not None:
            self._write(self.trainer, completed=False)

    def _write(self, engine, completed: bool = True) -> None:
        import os
        import platform

        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return
        ev = self.evaluator
        key = getattr(ev.state, "key_metric_name", None) if ev is not None else None
        data = {
            "epochs": engine.state.epoch,
            "iterations": engine.state.iteration,
            "completed": completed,
            "wall_seconds_this_run": round(self.timer.elapsed(), 2),
            "wall_seconds_total": round(self.offset + self.timer.elapsed(), 2),
            "best_metric": getattr(ev.state, "best_metric", None) if ev is not None else None,
            "best_metric_epoch": getattr(ev.state, "best_metric_epoch", None) if ev is not None else None,
            "key_metric": key,
            "history": self.history,
            "device": str(getattr(engine.state, "device", "cpu")),
            "torch_threads": torch.get_num_threads(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            **self.extra,
        }
        write_json(self.path, data)


def first_reaching(history: list[dict], threshold: float) -> dict | None:
    """The first entry of a :class:`RunSummary` history whose ``metric`` is ``>= threshold``; None if none is."""
    for h in history:
        if h.get("metric") is not None and h["metric"] >= threshold:
            return h
    return None


#: ``python -m monai.bundle run`` arguments that are not config keys (MONAI's ``run`` / ``run_workflow`` and
#: ``ConfigWorkflow``).
MONAI_RUN_ARGS = ("run_id", "init_id", "final_id", "meta_file", "config_file", "logging_file", "tracking",
                  "args_file", "workflow_name", "workflow_type", "properties_path")


def _argv_options(argv: list[str]) -> dict:
    """``--name value`` / ``--name=value`` / ``--flag`` (and Fire's one-dash ``-name``) options of a Fire
    command line as {name: value} (Fire's spelling: ``-`` in a name is ``_``); positional words are skipped and
    a bare ``--`` ends the options (what follows is for Fire itself: ``-- --trace``)."""
    import re

    out, i = {}, 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            break
        m = re.match(r"^--?([A-Za-z_].*)$", tok)
        if m:
            name, eq, val = m.group(1).partition("=")
            if not eq:
                nxt = argv[i + 1] if i + 1 < len(argv) else None
                if nxt is not None and not re.match(r"^--?[A-Za-z_]", nxt) and nxt != "--":
                    val, i = nxt, i + 1
                else:
                    val = True
            out[name.replace("-", "_")] = val
        i += 1
    return out


def _config_files(value):
    """``--config_file`` as MONAI takes it: a list literal (Fire parses ``"['a.json','b.json']"``) or a path
    string (MONAI itself splits a comma-separated one)."""
    import ast

    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    s = str(value).strip()
    if s.startswith(("[", "(")):
        try:
            return [str(v) for v in ast.literal_eval(s)]
        except (ValueError, SyntaxError):
            return s
    return s


def unknown_overrides(argv: list[str] | None = None, _read=None) -> tuple[list[tuple[str, str | None]], list[str]]:
    """The options of a ``python -m monai.bundle run ...`` command line that no config it names defines.

    MONAI adds an unknown ``--key value`` to the config as a new, unused entry, so a misspelt option (``--refine``
    for ``--refine_steps``) would be ignored without a word. Returns ``([(option, closest known key or None)],
    config files)``; nothing when ``argv`` (default ``sys.argv``) is not such a command line or a config or args
    file cannot be read (MONAI then reports that itself). The files are read as MONAI reads them (JSON or YAML,
    lists and comma-separated paths merged). A ``#`` or ``::`` path counts as known when its first part is; with
    ``--tracking``, the keys of MONAI's tracking settings (``experiment_name``, ``run_name``, ...) are known.
    ``_read``: :func:`_read_command`'s result (``()`` for none) when the caller has read the files already."""
    import difflib
    import re

    read = _read_command(argv) if _read is None else _read
    if not read:
        return [], []
    opts, files, cfg = read[:3]
    known = set(MONAI_RUN_ARGS) | set(cfg)
    if opts.get("tracking"):
        from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS

        known |= set(DEFAULT_MLFLOW_SETTINGS.get("configs", {}))
    bad = []
    for name in opts:
        if name in known or re.split("::|#", name)[0] in known or name == "help":
            continue
        close = difflib.get_close_matches(name, sorted(k for k in known if k not in MONAI_RUN_ARGS), n=1, cutoff=0.6)
        bad.append((name, close[0] if close else None))
    shown = files if isinstance(files, list) else [f.strip() for f in str(files).split(",")]
    return bad, shown


def _read_command(argv: list[str] | None):
    """``(options, config files, merged config, names given on the command line itself)`` of a ``python -m
    monai.bundle run ...`` command line (options of an ``--args_file`` are in the first, not the last), or None
    when ``argv`` (default ``sys.argv``) is not one or its config or args files cannot be read."""
    import sys

    from monai.bundle import ConfigParser

    argv = sys.argv if argv is None else argv
    if not argv or not str(argv[0]).replace("\\", "/").endswith("monai/bundle/__main__.py"):
        return None
    opts = _argv_options(list(argv[1:]))
    from_argv = frozenset(opts)
    try:
        if opts.get("args_file"):
            extra = ConfigParser.load_config_file(str(opts["args_file"]))
            opts = {**extra, **opts} if isinstance(extra, dict) else opts
        files = _config_files(opts.get("config_file", ""))
        if not files:  # MONAI refuses a run without a config itself
            return None
        cfg = ConfigParser.load_config_files(files)
    except Exception:  # a missing or broken file: MONAI's own error follows
        return None
    if not isinstance(cfg, dict):
        return None
    return opts, files, cfg, from_argv


def _config_default(v):
    """A config entry's default as the value checks see it: the entry itself, or for a setting that ``--init``
    fills in (``$bundle.registration.init_setting(@init, 'affine', False)``) its literal default; None otherwise."""
    import ast
    import re

    if not isinstance(v, str):
        return v
    m = re.search(r"init_setting\(@init, '[\w.]+', (.+)\)\s*$", v.strip())
    try:
        return ast.literal_eval(m.group(1)) if m else None
    except (ValueError, SyntaxError):
        return None


def _is_expression(value) -> bool:
    """A MONAI expression, reference or macro (``$...``, ``@...``, ``%...``): resolved by MONAI later."""
    return isinstance(value, str) and value.strip()[:1] in ("$", "@", "%")


def bad_flag_values(argv: list[str] | None = None, _read=None) -> list[tuple[str, object]]:
    """``[(option, value)]`` for the options of a ``python -m monai.bundle run`` command line whose config
    default is a bool (``--amp``, ``--resume``, ``--debug``, ``--affine``, ...) but whose value is not true/false, on/off,
    yes/no or 1/0 (:func:`flag`), e.g. ``--amp maybe``; empty when ``argv`` is not such a command line.
    ``_read`` as in :func:`unknown_overrides`."""
    from .registration import as_bool

    read = _read_command(argv) if _read is None else _read
    if not read:
        return []
    opts, _, cfg = read[:3]
    bad = []

    def ok(value) -> bool:
        if _is_expression(value):
            return True  # resolved by MONAI, checked by flag() at run time
        try:
            as_bool(value)
            return True
        except ValueError:
            pass
        try:  # Fire hands "1.0" over as the float 1.0, which flag() takes
            return float(value) in (0.0, 1.0)
        except (TypeError, ValueError):
            return False

    for name, value in opts.items():
        if name in cfg and isinstance(_config_default(cfg[name]), bool) and not ok(value):
            bad.append((name, value))
    return bad


#: Ranges of the bundles' number options that have one, ``name: (low, low allowed, high, high allowed)`` (``None``:
#: no bound); checked by :func:`bad_number_values` when such an option is a number in the command's config.
NUMBER_RANGES = {
    **{k: (1, True, None, False) for k in ("batch_size", "batches_per_epoch", "val_interval", "work_size", "int_steps",
                                           "size", "latent_dim", "max_epochs", "val_pairs")},
    **{k: (0, True, None, False) for k in ("seed", "num_workers", "lambda_ncc", "lambda_ssim", "lambda_ce", "lambda_ae",
                                           "lambda_df", "lambda_ic", "contour_weight", "integrate_scales",
                                           "attention_margin")},
    "learning_rate": (0, False, None, False),
    "val_fraction": (0, False, 1, False),  # 0 holds out no validation images, so no best model is ever saved
    "corruption_prob": (0, True, 1, True),
    "num_scales": (1, True, 4, True),  # MultiScaleRegNet fuses 1 to 4 scales
}
#: Options with a check of their own, whose messages are kept (``bundle.export._refine_values``).
OWN_NUMBER_CHECKS = frozenset({"refine_steps", "refine_mask_weight", "refine_distance_weight"})
#: Options that are floats whatever their default looks like (an override file may write ``"lambda_ic": 1``).
FLOAT_OPTIONS = r"^(lambda_\w+|learning_rate|\w+_weight|\w+_fraction|\w+_prob|attention_margin)$"


def _range_text(r) -> str:
    lo, lo_in, hi, hi_in = r
    low = f"{'>=' if lo_in else '>'} {lo}" if lo is not None else ""
    high = f"{'<=' if hi_in else '<'} {hi}" if hi is not None else ""
    return " and ".join(t for t in (low, high) if t)


def _in_range(x, r) -> bool:
    lo, lo_in, hi, hi_in = r
    return ((lo is None or x > lo or (lo_in and x == lo)) and (hi is None or x < hi or (hi_in and x == hi)))


def bad_number_values(argv: list[str] | None = None, _read=None) -> list[tuple[str, object, str]]:
    """``[(option, value, "a whole number ..." | "a number ...")]`` for the options of a ``python -m monai.bundle
    run`` command line whose config default is an int (``--max_epochs``, ``--batch_size``, ``--int_steps``, ...) or a
    float (``--learning_rate``, ``--lambda_df``, ...) but whose value, read as Fire reads it, is not one, e.g.
    ``--max_epochs ten``, ``--batch_size 8.5``, ``--learning_rate nan``, or is out of its range
    (:data:`NUMBER_RANGES`: ``--batch_size 0``, ``--learning_rate -1``, ``--val_fraction 1``). Floats must be
    finite. MONAI expressions, references and macros pass, and so do the options of :data:`OWN_NUMBER_CHECKS`.
    ``_read`` as in :func:`unknown_overrides`."""
    import math
    import re

    read = _read_command(argv) if _read is None else _read
    if not read:
        return []
    opts, _, cfg, from_argv = read
    from fire.parser import DefaultParseValue as parse  # what MONAI's runner (Fire) hands over; it needs fire

    def kind(name, v) -> str | None:  # "int" / "float" for a number default (or one --init fills in), else None
        v = _config_default(v)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        return "float" if isinstance(v, float) or re.match(FLOAT_OPTIONS, name) else "int"

    bad = []
    for name, value in opts.items():
        k = kind(name, cfg.get(name)) if name in cfg and name not in OWN_NUMBER_CHECKS else None
        if k is None or _is_expression(value):
            continue
        r = NUMBER_RANGES.get(name)
        what = ("a whole number" if k == "int" else "a finite number") + (f" {_range_text(r)}" if r else "")
        # Fire reads the command line's words; an --args_file's values reach MONAI as the file holds them
        v = parse(value) if isinstance(value, str) and name in from_argv else value
        if isinstance(v, str) and name not in from_argv:
            what += " (the --args_file gives it as text; write it as a number, e.g. 1.0e-4 in YAML)"
        if k == "int":
            good = isinstance(v, int) and not isinstance(v, bool)
        else:
            good = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not (good and (r is None or _in_range(v, r))):
            bad.append((name, value, what))
    return bad


def check_overrides(prefix: str = "cxreg bundle", argv: list[str] | None = None) -> None:
    """First step of every config's ``initialize``: a ``python -m monai.bundle run`` option that none of its
    config files defines ends the process with status 1 and one line,
    ``<prefix>: error: --refine: not an option of configs/inference.json (did you mean --refine_steps?)``,
    before anything is read or written (:func:`unknown_overrides`); so does a true/false option given another
    value (``<prefix>: error: --amp maybe: must be true or false ...``, :func:`bad_flag_values`) and a number
    option given something else (``<prefix>: error: --max_epochs ten: must be a whole number >= 1``,
    :func:`bad_number_values`)."""
    read = _read_command(argv) or ()  # the config files, read once for the three checks
    bad, files = unknown_overrides(argv, _read=read)
    if not bad:
        flag_value = bad_flag_values(argv, _read=read)
        if flag_value:
            name, value = flag_value[0]
            raise SystemExit(f"{prefix}: error: --{name} {value}: must be true or false (or on/off, yes/no, 1/0)")
        number = bad_number_values(argv, _read=read)
        if number:
            name, value, what = number[0]
            shown = "(no value)" if value is True else value
            raise SystemExit(f"{prefix}: error: --{name} {shown}: must be {what}")
        return
    where = ", ".join(files)
    names = ", ".join(f"--{n}" for n, _ in bad)
    hints = [f"--{c}" + (f" for --{n}" if len(bad) > 1 else "") for n, c in bad if c]
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    what = "not an option" if len(bad) == 1 else "not options"
    raise SystemExit(f"{prefix}: error: {names}: {what} of {where}{hint}")
