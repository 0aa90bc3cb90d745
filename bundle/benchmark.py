# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""``cxreg benchmark``: ours against elastix and ANTs SyN on the same pairs, and training throughput.

One run measures, on the test split of one dataset (256 x 256 images):

- **ours, batch 1, end to end** per pair: load both PNGs and both true masks from disk, predict both lung masks
  (segmentation network), predict the field and express it on the fixed grid (:class:`bundle.register.Registrar`),
  warp the true moving mask and score it (DSC, HD, ASSD, folding) -- what ``cxreg register`` does per pair;
- **ours, batched, all ordered pairs**: load the split once, predict each image's lung mask once, then fields,
  warps and metrics in batches of :attr:`bundle.registration.OursMethod.batch_size` (the ``cxreg evaluate`` path);
- both ours rows with ``--refine N`` test-time refinement steps per pair if asked (``cxreg register --refine N``);
- **elastix** (default B-spline map) and **ANTs SyN** per pair, through the same load/warp/score code;
- **training throughput**: pairs/s of the registration bundle (``configs/train.json``, 64 x 64) and images/s of
  the segmentation bundle, timed over real ``SupervisedTrainer`` iterations after a warm-up;
- **minutes until validation DSC first reaches 0.95**, from the validation history that
  :class:`bundle.workflow.RunSummary` writes into ``runs/registration_<DATASET>*/summary.json`` (or, for runs
  made before that history existed, from the ``val_mean_dice`` wall times in their TensorBoard files).

Each measurement runs in its own Python process (``python -m bundle.benchmark --worker ...``) so that its peak
resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``) is its own. A cProfile of the batch-1 pipeline says
where the time goes. The result is a Markdown report with the machine in its header and a PIL bar chart.
"""

from __future__ import annotations

import argparse
import cProfile
import io as _io
import json
import math
import os
import platform
import pstats
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .io import write_text_atomic
from .refine import DEFAULT_MASK_WEIGHT

__all__ = ["add_parser", "run_benchmark", "render_markdown", "bar_chart", "time_stats", "training_history",
           "machine_info"]

CLASSICAL = ("elastix", "syn")
LABELS = {"ours_b1": "ours, batch 1", "ours_batched": "ours, batched all pairs", "elastix": "elastix (B-spline)",
          "syn": "ANTs SyN"}
TARGETS = {"b1": 50.0, "batched": 200.0, "rss_mib": 1024.0, "minutes_to_095": 5.0, "pipeline_minutes": 60.0}


# ------------------------------------------------------------------------------------------------ helpers
def time_stats(ms: list[float]) -> dict:
    """``{"n", "median_ms", "p90_ms", "mean_ms", "pairs_per_s"}`` of per-pair wall times in ms (pairs/s =
    pairs / summed time)."""
    a = np.asarray(ms, dtype=np.float64)
    return {"n": int(a.size), "median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)),
            "mean_ms": float(a.mean()), "pairs_per_s": float(a.size / (a.sum() / 1000.0))}


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0


def machine_info() -> dict:
    """CPU model (``/proc/cpuinfo``), logical cores, cores this process may use, torch version and threads."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "itk_threads": os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _score(ddf: np.ndarray, fixed_mask: np.ndarray, moving_mask: np.ndarray) -> dict:
    """Warp the true moving mask (nearest) with a (2, H, W) pull-back field and score it against the fixed mask."""
    from .metrics import score_field

    m = score_field(np.ascontiguousarray(ddf, dtype=np.float32)[None], moving_mask.astype(np.float32)[None, None],
                    fixed_mask.astype(np.float32)[None, None])
    return {k: float(v[0]) for k, v in m.items()}


def _pairs(a: dict) -> tuple[list[str], list[tuple[int, int]], Path]:
    from .data import resolve_data_dir, sample_pairs, split_ids

    ids = split_ids(a["dataset"], "test", a["data_dir"])
    root = resolve_data_dir(a["data_dir"]) / a["dataset"]
    return ids, sample_pairs(len(ids), a["pairs"], a["seed"]), root


def _top_functions(prof: cProfile.Profile, n_pairs: int, top: int = 12) -> list[dict]:
    """The ``top`` functions by own time (tottime) of a cProfile, in ms per pair."""
    st = pstats.Stats(prof, stream=_io.StringIO())
    total = sum(v[2] for v in st.stats.values())  # all own time
    rows = []
    for (fn, line, name), (_cc, nc, tt, ct, _callers) in st.stats.items():
        where = name if fn == "~" else f"{Path(fn).parent.name}/{Path(fn).name}:{line}({name})"
        rows.append({"function": where, "calls_per_pair": nc / n_pairs, "own_ms_per_pair": 1000 * tt / n_pairs,
                     "cum_ms_per_pair": 1000 * ct / n_pairs, "own_share": tt / total if total else 0.0})
    rows.sort(key=lambda r: -r["own_ms_per_pair"])
    return rows[:top]


# ------------------------------------------------------------------------------------------------ workers
def _no_grad(a: dict):
    """``torch.inference_mode()`` (as the timings before 0.5.4), or ``torch.no_grad()`` with refinement: its
    gradient steps cannot run on inference tensors."""
    import torch

    return torch.no_grad() if a.get("refine", 0) else torch.inference_mode()


def _worker_ours_b1(a: dict) -> dict:
    """Ours per pair, batch 1, end to end, with a stage breakdown and a cProfile of ``profile_pairs`` pairs."""
    import torch

    from .io import load_mask
    from .register import Registrar, _to_square, _unit, load_checked

    ids, pairs, root = _pairs(a)
    t0 = time.perf_counter()
    reg = Registrar(a["model"], seg_model=a["seg_model"], device=a["device"], refine_steps=a.get("refine", 0),
                    refine_mask_weight=a.get("refine_mask_weight", DEFAULT_MASK_WEIGHT))
    setup_s = time.perf_counter() - t0

    def one(mi: int, fi: int) -> tuple[list[float], dict]:
        t = [time.perf_counter()]
        fixed, moving = load_checked(root / "images" / f"{ids[fi]}.png"), load_checked(root / "images" / f"{ids[mi]}.png")
        fm, mm = load_mask(root / "masks" / f"{ids[fi]}.png"), load_mask(root / "masks" / f"{ids[mi]}.png")
        t.append(time.perf_counter())
        sq = torch.cat([_to_square(_unit(fixed), reg.size)[0], _to_square(_unit(moving), reg.size)[0]])
        f_lung, m_lung = reg.lung_mask(sq).split(1)  # both lung masks in one forward pass
        _sync(a["device"])
        t.append(time.perf_counter())
        res = reg(fixed, moving, fixed_lung=f_lung, moving_lung=m_lung)
        _sync(a["device"])
        t.append(time.perf_counter())
        met = _score(res["ddf"], fm, mm)
        t.append(time.perf_counter())
        return [1000 * (t[k + 1] - t[k]) for k in range(4)], met

    with _no_grad(a):
        one(*pairs[0])  # warm-up (first-call allocations, lazy initialisation), not timed
        stages, mets = [], []
        for mi, fi in pairs:
            s, m = one(mi, fi)
            stages.append(s)
            mets.append(m)
        prof, n_prof = cProfile.Profile(), min(len(pairs), a["profile_pairs"])
        prof.enable()
        for mi, fi in pairs[:n_prof]:
            one(mi, fi)
        prof.disable()
    st = np.asarray(stages)
    names = ["load images and masks", "lung masks (2 images)", "field on the fixed grid", "warp mask and metrics"]
    return {"times": time_stats(st.sum(1).tolist()), "setup_s": setup_s,
            "stages_median_ms": {n: float(np.median(st[:, k])) for k, n in enumerate(names)},
            "dsc_mean": float(np.mean([m["dsc"] for m in mets])), "profile": _top_functions(prof, max(n_prof, 1)),
            "profile_pairs": n_prof, "machine": machine_info(), "peak_rss_mib": peak_rss_mib()}


def _worker_ours_batched(a: dict) -> dict:
    """Ours on all ordered test pairs: each image's lung mask once, fields/warps/metrics in batches."""
    import torch

    from .data import all_ordered_pairs, load_split
    from .metrics import pair_metrics
    from .registration import OursMethod
    from .spatial import warp

    t0 = time.perf_counter()
    method = OursMethod(a["model"], seg_model=a["seg_model"], device=a["device"], refine_steps=a.get("refine", 0),
                        refine_weights={"w_mask": a.get("refine_mask_weight", DEFAULT_MASK_WEIGHT)})
    setup_s = time.perf_counter() - t0
    with _no_grad(a):
        # warm-up on a throw-away batch of random images (no data seen), not timed
        x = torch.rand(2, 1, 256, 256)
        method.attn = torch.ones(2, 1, 256, 256)
        method(x[:1], x[1:], None, None, fixed_index=torch.tensor([0]), moving_index=torch.tensor([1]))
        _sync(a["device"])
        t = [time.perf_counter()]
        data = load_split(a["dataset"], "test", a["data_dir"])
        t.append(time.perf_counter())
        method.setup(data)  # one lung mask per image
        _sync(a["device"])
        t.append(time.perf_counter())
        pairs = all_ordered_pairs(len(data))
        bs, field_s, score_s, per_batch, dsc = method.batch_size, 0.0, 0.0, [], []
        for b0 in range(0, len(pairs), bs):
            chunk = pairs[b0 : b0 + bs]
            mi, fi = torch.tensor([p[0] for p in chunk]), torch.tensor([p[1] for p in chunk])
            s0 = time.perf_counter()
            ddf = method(data.images[fi], data.images[mi], None, None, fixed_index=fi, moving_index=mi).float()
            _sync(a["device"])
            s1 = time.perf_counter()
            warped = warp(data.masks[mi], ddf, mode="nearest", padding_mode="zeros")
            dsc += pair_metrics(warped, data.masks[fi], ddf)["dsc"]
            s2 = time.perf_counter()
            field_s, score_s = field_s + s1 - s0, score_s + s2 - s1
            per_batch.append(1000 * (s2 - s0) / len(chunk))
        t.append(time.perf_counter())
    total = t[-1] - t[0]
    n = len(pairs)
    return {"n_pairs": n, "n_images": len(data), "batch_size": bs, "total_s": total, "ms_per_pair": 1000 * total / n,
            "pairs_per_s": n / total, "p90_batch_ms_per_pair": float(np.percentile(per_batch, 90)),
            "stages_s": {"load split": t[1] - t[0], "lung masks (once per image)": t[2] - t[1],
                         "fields": field_s, "warps and metrics": score_s},
            "setup_s": setup_s, "dsc_mean": float(np.mean(dsc)), "machine": machine_info(),
            "peak_rss_mib": peak_rss_mib()}


def _worker_classical(a: dict) -> dict:
    """elastix or SyN per pair through the same load/warp/score code as ours (fields from the stored grey values)."""
    from .baselines import elastix_register, syn_register
    from .io import load_mask
    from .register import load_checked

    fn = {"elastix": elastix_register, "syn": syn_register}[a["method"]]
    ids, pairs, root = _pairs(a)

    def one(mi: int, fi: int) -> tuple[float, dict]:
        t0 = time.perf_counter()
        fixed, moving = load_checked(root / "images" / f"{ids[fi]}.png"), load_checked(root / "images" / f"{ids[mi]}.png")
        fm, mm = load_mask(root / "masks" / f"{ids[fi]}.png"), load_mask(root / "masks" / f"{ids[mi]}.png")
        met = _score(fn(fixed, moving), fm, mm)
        return 1000 * (time.perf_counter() - t0), met

    one(*pairs[0])  # warm-up (library initialisation), not timed
    ms, mets = zip(*(one(mi, fi) for mi, fi in pairs))
    return {"times": time_stats(list(ms)), "dsc_mean": float(np.mean([m["dsc"] for m in mets])),
            "machine": machine_info(), "peak_rss_mib": peak_rss_mib()}


def _timed_bundle_run(config: Path, overrides: dict, warmup: int) -> dict:
    """Run a bundle's ``train#trainer`` (handlers as configured, no resume, no validation) and time the
    iterations after ``warmup``; returns iterations timed, seconds, and the data set-up seconds."""
    from ignite.engine import Events
    from monai.bundle import ConfigParser

    p = ConfigParser()
    p.read_config(str(config))
    p.update(overrides)
    t0 = time.perf_counter()
    trainer = p.get_parsed_content("train#trainer")
    setup_s = time.perf_counter() - t0
    stamps: list[float] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: stamps.append(time.perf_counter()))
    trainer.run()
    if len(stamps) <= warmup:
        raise RuntimeError(f"{config}: only {len(stamps)} iterations ran; need more than {warmup}")
    return {"iterations": len(stamps) - warmup, "seconds": stamps[-1] - stamps[warmup - 1], "setup_s": setup_s}


def _worker_train(a: dict) -> dict:
    """Training throughput of the registration (64 x 64) and segmentation bundles on ``dataset``'s train split."""
    import torch

    from .data import REPO_ROOT, load_split, train_val_ids

    cfg = REPO_ROOT / "configs"
    warm, iters = 2, a["train_iters"]
    out: dict = {"machine": machine_info()}
    with tempfile.TemporaryDirectory() as tmp:
        ae = a["ae_model"]
        no_ae = ae is None or str(ae).lower() == "none"
        reg_over = {"dataset": a["dataset"], "data_dir": str(a["data_dir"]), "output_dir": os.path.join(tmp, "reg"),
                    "seg_model": a["seg_model"], "ae_model": None if no_ae else ae, "work_size": 64,
                    "max_epochs": 1, "batches_per_epoch": warm + iters, "val_interval": 10**6, "resume": False,
                    "device": torch.device(a["device"])}
        if no_ae:
            reg_over["lambda_ae"] = 0.0
        r = _timed_bundle_run(cfg / "train.json", reg_over, warm)
        p = json.loads((cfg / "train.json").read_text())
        bs = p["batch_size"]
        out["registration"] = {**r, "batch_size": bs, "work_size": 64, "items_per_s": r["iterations"] * bs / r["seconds"],
                               "unit": "pairs/s"}

        n_train = len(train_val_ids(len(load_split(a["dataset"], "train", a["data_dir"])),
                                    json.loads((cfg / "segmentation" / "train.json").read_text())["val_fraction"], 0)[0])
        sp = json.loads((cfg / "segmentation" / "train.json").read_text())
        sbs = min(sp["batch_size"], n_train)
        per_epoch = n_train // sbs
        seg_over = {"dataset": a["dataset"], "data_dir": str(a["data_dir"]), "output_dir": os.path.join(tmp, "seg"),
                    "max_epochs": math.ceil((warm + iters) / per_epoch), "batch_size": sbs, "val_interval": 10**6,
                    "resume": False, "device": torch.device(a["device"])}
        s = _timed_bundle_run(cfg / "segmentation" / "train.json", seg_over, warm)
        out["segmentation"] = {**s, "batch_size": sbs, "work_size": sp["work_size"],
                               "items_per_s": s["iterations"] * sbs / s["seconds"], "unit": "images/s"}
    out["peak_rss_mib"] = peak_rss_mib()
    return out


WORKERS = {"ours_b1": _worker_ours_b1, "ours_batched": _worker_ours_batched, "classical": _worker_classical,
           "train": _worker_train}


def _spawn(kind: str, args: dict, timeout: float = 900) -> dict:
    """Run one worker in a fresh Python process; returns its result dict or ``{"error": one line}``."""
    from .data import REPO_ROOT

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "args.json", Path(tmp) / "result.json"
        src.write_text(json.dumps(args))
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
        t0 = time.perf_counter()
        try:
            r = subprocess.run([sys.executable, "-m", "bundle.benchmark", "--worker", kind, str(src), str(dst)],
                               capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        if r.returncode != 0 or not dst.is_file():
            lines = [ln for ln in (r.stderr or r.stdout).strip().splitlines() if ln.strip()]
            return {"error": (lines[-1] if lines else f"exit code {r.returncode}")[:300]}
        res = json.loads(dst.read_text())
        res["process_s"] = time.perf_counter() - t0
        return res


# ------------------------------------------------------------------------------------------ training history
def _tb_history(run: Path, tag: str = "val_mean_dice") -> list[dict]:
    """Validation history from a run's TensorBoard files: seconds from the first event of the run."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return []
    points, t0 = [], None
    for f in sorted(run.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        first = acc.FirstEventTimestamp()
        t0 = first if t0 is None else min(t0, first)
        if tag in acc.Tags().get("scalars", []):
            points += [(e.wall_time, e.step, e.value) for e in acc.Scalars(tag)]
    points.sort()
    return [{"epoch": s, "iteration": None, "seconds": w - t0, "metric": v} for w, s, v in points]


def training_history(dataset: str, runs_dir: str | os.PathLike, threshold: float = 0.95) -> list[dict]:
    """One row per ``runs_dir/registration_<dataset>*`` run: first validation with DSC >= ``threshold`` (epoch,
    minutes), best DSC, total minutes and where the history came from (RunSummary history or TensorBoard)."""
    from .workflow import first_reaching

    rows = []
    for run in sorted(Path(runs_dir).glob(f"registration_{dataset}*")):
        summ = run / "summary.json"
        s = json.loads(summ.read_text()) if summ.is_file() else {}
        hist, source = s.get("history") or [], "summary.json history"
        if not hist:
            hist, source = _tb_history(run), "TensorBoard wall times"
        if not hist:
            continue
        hit = first_reaching(hist, threshold)
        total = s.get("wall_seconds_total", s.get("wall_seconds_this_run"))
        rows.append({"run": run.name, "source": source, "validations": len(hist),
                     "best": max(h["metric"] for h in hist if h.get("metric") is not None),
                     "epoch": hit["epoch"] if hit else None,
                     "minutes": hit["seconds"] / 60 if hit else None,
                     "total_minutes": (total / 60) if total else hist[-1]["seconds"] / 60})
    return rows


def pipeline_minutes(dataset: str, runs_dir: str | os.PathLike) -> dict:
    """Training minutes of ``segmentation_<D>``, ``autoencoder_<D>``, ``registration_<D>`` from their
    ``summary.json`` (``None`` where a run has no summary)."""
    out = {}
    for kind in ("segmentation", "autoencoder", "registration"):
        p = Path(runs_dir) / f"{kind}_{dataset}" / "summary.json"
        s = json.loads(p.read_text()) if p.is_file() else {}
        sec = s.get("wall_seconds_total", s.get("wall_seconds_this_run"))
        out[kind] = sec / 60 if sec is not None else None
    return out


# -------------------------------------------------------------------------------------------------- driver
def run_benchmark(dataset: str = "JSRT", pairs: int = 20, data_dir=None, model=None, seg_model=None, ae_model=None,
                  device: str = "cpu", seed: int = 0, train_iters: int = 20, training: bool = True,
                  methods: tuple[str, ...] = CLASSICAL, profile_pairs: int = 5, runs_dir=None,
                  progress: bool = True, refine: int = 0, refine_mask_weight: float = DEFAULT_MASK_WEIGHT) -> dict:
    """Run every measurement (each in its own process) and return the results dict that
    :func:`render_markdown` and :func:`bar_chart` draw. ``refine`` > 0 times ours with that many test-time
    refinement steps per pair (``refine_mask_weight`` as ``cxreg register --refine-mask-weight``)."""
    from .data import REPO_ROOT, resolve_data_dir, split_ids

    data_dir = str(resolve_data_dir(data_dir))
    n_test = len(split_ids(dataset, "test", data_dir))
    if n_test < 2:
        raise ValueError(f"{dataset}: the test split needs at least 2 images, has {n_test}")
    if pairs < 1:
        raise ValueError(f"--pairs {pairs}: need at least 1")
    if refine < 0:
        raise ValueError(f"--refine {refine}: need 0 (off) or more steps")
    args = {"dataset": dataset, "data_dir": data_dir, "pairs": pairs, "seed": seed, "device": device,
            "model": str(model or dataset), "seg_model": str(seg_model or dataset),
            "ae_model": None if ae_model is None and dataset not in ("JSRT", "MONT", "SHEN") else (ae_model or dataset),
            "profile_pairs": profile_pairs, "train_iters": train_iters, "refine": int(refine),
            "refine_mask_weight": float(refine_mask_weight)}
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    res: dict = {"dataset": dataset, "pairs": pairs, "seed": seed, "device": device, "test_images": n_test,
                 "started": time.strftime("%Y-%m-%d %H:%M:%S"), "model": args["model"], "seg_model": args["seg_model"],
                 "refine": int(refine), "refine_mask_weight": float(refine_mask_weight)}
    t0 = time.perf_counter()
    say(f"benchmark: ours, batch 1, {pairs} pairs ...")
    res["ours_b1"] = _spawn("ours_b1", args)
    if "error" in res["ours_b1"]:
        raise RuntimeError(f"ours (batch 1) failed: {res['ours_b1']['error']}")
    say(f"benchmark: ours, batched, all {n_test * (n_test - 1)} ordered pairs ...")
    res["ours_batched"] = _spawn("ours_batched", args)
    for m in methods:
        say(f"benchmark: {m}, {pairs} pairs ...")
        res[m] = _spawn("classical", {**args, "method": m})
    if training:
        say(f"benchmark: training throughput ({train_iters} timed iterations per bundle) ...")
        res["train"] = _spawn("train", args)
    res["history"] = training_history(dataset, runs_dir or REPO_ROOT / "runs")
    res["pipeline_minutes"] = pipeline_minutes(dataset, runs_dir or REPO_ROOT / "runs")
    res["machine"] = res["ours_b1"]["machine"]
    res["speedup"] = speedups(res)
    res["wall_s"] = time.perf_counter() - t0
    return res


def speedups(res: dict) -> dict:
    """``{method: {"b1": median(method) / median(ours batch 1), "batched": median(method) / ms per pair of
    ours batched}}`` for each classical method measured."""
    out = {}
    b1 = res["ours_b1"]["times"]["median_ms"]
    bat = res.get("ours_batched", {}).get("ms_per_pair")
    for m in CLASSICAL:
        if m in res and "times" in res[m]:
            med = res[m]["times"]["median_ms"]
            out[m] = {"b1": med / b1, "batched": (med / bat) if bat else None}
    return out


# --------------------------------------------------------------------------------------------------- output
def _f(v, fmt="{:.1f}", none="not measured") -> str:
    return none if v is None else fmt.format(v)


def _yes(ok) -> str:
    return "not measured" if ok is None else ("met" if ok else "**not met**")


def render_markdown(res: dict, chart: str | None = None, command: str | None = None, note: str | None = None) -> str:
    """The report: header with the machine, inference table, speed-ups against the targets, stage breakdown,
    profile, training throughput and time to DSC 0.95, GPU status."""
    mc, ds = res["machine"], res["dataset"]
    L = [f"# Benchmark: ours against elastix and ANTs SyN ({ds}, 256 x 256)", ""]
    if note:
        L += [f"> **{note}**", ""]
    L += [f"Machine: {mc['cpu']}, {mc['cores']} cores ({mc['usable_cores']} usable), torch {mc['torch']} with "
          f"{mc['torch_threads']} threads, OMP_NUM_THREADS={mc.get('omp_num_threads') or 'unset'}, "
          f"ITK threads={mc.get('itk_threads') or 'ITK default'}, device {res['device']}"
          + (f" ({mc['gpu']})" if mc.get("gpu") else "") + f"; run started {res['started']}, took "
          f"{res['wall_s'] / 60:.1f} min.", ""]
    if "model" in res:  # reports before 0.5.4 did not record the settings
        ref = (f"{res['refine']} steps per pair at 128 x 128 (mask weight {res['refine_mask_weight']:g})"
               if res.get("refine") else "off")
        L += [f"Ours: registration model `{res['model']}`, lung masks `{res['seg_model']}`, test-time refinement: "
              f"{ref}.", ""]
    if command:
        L += ["Made with:", "", "```", command, "```", ""]
    b1, bat = res["ours_b1"], res.get("ours_batched", {})
    L += ["## Inference", "",
          f"Per-pair rows: the same {res['pairs']} seeded ordered test pairs (`--seed {res['seed']}`), one untimed "
          "warm-up pair first; each pair is timed end to end: load both PNGs and true masks, (ours: predict both lung "
          "masks,) compute the field on the fixed grid, warp the true moving mask, DSC/HD/ASSD/folding. Batched row: "
          "all ordered test pairs, whole wall time (load the split, one lung mask per image, fields, warps, metrics) "
          "divided by the pairs; its p90 is over batches (fields, warps and metrics only). Peak RSS is each "
          "measurement's own process.", "",
          "| method | pairs | median ms/pair | p90 ms/pair | pairs/s | peak RSS MiB | mean DSC |",
          "|---|---|---|---|---|---|---|"]
    t = b1["times"]
    L.append(f"| {LABELS['ours_b1']} | {t['n']} | {t['median_ms']:.1f} | {t['p90_ms']:.1f} | {t['pairs_per_s']:.2f} "
             f"| {b1['peak_rss_mib']:.0f} | {b1['dsc_mean']:.3f} |")
    if "error" in bat or not bat:
        L.append(f"| {LABELS['ours_batched']} | failed: {bat.get('error', 'not run')} | | | | | |")
    else:
        L.append(f"| {LABELS['ours_batched']} | {bat['n_pairs']} | {bat['ms_per_pair']:.2f} | "
                 f"{bat['p90_batch_ms_per_pair']:.2f} | {bat['pairs_per_s']:.1f} | {bat['peak_rss_mib']:.0f} | "
                 f"{bat['dsc_mean']:.3f} |")
    for m in CLASSICAL:
        if m not in res:
            continue
        r = res[m]
        if "error" in r:
            L.append(f"| {LABELS[m]} | failed: {r['error']} | | | | | |")
            continue
        t = r["times"]
        L.append(f"| {LABELS[m]} | {t['n']} | {t['median_ms']:.1f} | {t['p90_ms']:.1f} | {t['pairs_per_s']:.2f} | "
                 f"{r['peak_rss_mib']:.0f} | {r['dsc_mean']:.3f} |")
    if chart:
        L += ["", f"![median ms per pair, log scale]({chart})"]

    L += ["", "## Targets", "", "Speed-up = the classical method's median ms/pair divided by ours' (batch 1: its "
          "median; batched: its whole-run ms/pair).", "",
          "| target | measured | |", "|---|---|---|"]
    for m, sp in res["speedup"].items():
        L.append(f"| ours (batch 1) >= {TARGETS['b1']:.0f}x faster than {LABELS[m]} | {sp['b1']:.1f}x | "
                 f"{_yes(sp['b1'] >= TARGETS['b1'])} |")
        L.append(f"| ours (batched) >= {TARGETS['batched']:.0f}x faster than {LABELS[m]} | {_f(sp['batched'], '{:.1f}x')}"
                 f" | {_yes(None if sp['batched'] is None else sp['batched'] >= TARGETS['batched'])} |")
    for k in ("ours_b1", "ours_batched"):
        rss = res.get(k, {}).get("peak_rss_mib")
        L.append(f"| {LABELS[k]}: peak RSS < 1 GiB | {_f(rss, '{:.0f} MiB')} | "
                 f"{_yes(None if rss is None else rss < TARGETS['rss_mib'])} |")
    hits = [h["minutes"] for h in res.get("history", []) if h["minutes"] is not None]
    best = min(hits) if hits else None
    L.append(f"| registration bundle to validation DSC 0.95 in < 5 min | {_f(best, '{:.1f} min')} | "
             f"{_yes(None if best is None else best < TARGETS['minutes_to_095'])} |")
    pm = res.get("pipeline_minutes", {})
    tot = sum(pm.values()) if pm and all(v is not None for v in pm.values()) else None
    L.append(f"| whole pipeline of {ds} (segmentation + autoencoder + registration) < 60 min | "
             f"{_f(tot, '{:.1f} min', 'not recorded')} | {_yes(None if tot is None else tot < TARGETS['pipeline_minutes'])} |")

    L += ["", "## Where the time goes (profile)", "",
          "Ours, batch 1, median ms per stage:", "", "| stage | median ms |", "|---|---|"]
    L += [f"| {k} | {v:.1f} |" for k, v in b1["stages_median_ms"].items()]
    st = b1["stages_median_ms"]
    big = max(st, key=st.get)
    L += ["", f"Largest batch-1 stage: {big}, {100 * st[big] / max(sum(st.values()), 1e-9):.0f} % of the pair."]
    if bat and "stages_s" in bat:
        L += ["", f"Ours, batched ({bat['n_images']} images, {bat['n_pairs']} pairs, batch {bat['batch_size']}), "
              "seconds per stage:", "", "| stage | s |", "|---|---|"]
        L += [f"| {k} | {v:.2f} |" for k, v in bat["stages_s"].items()]
        sb = bat["stages_s"]
        big = max(sb, key=sb.get)
        L += ["", f"Largest batched stage: {big}, {100 * sb[big] / max(sum(sb.values()), 1e-9):.0f} % of the run."]
    L += ["", f"cProfile of the batch-1 pipeline over {b1['profile_pairs']} pairs, the functions with the most own "
          "time:", "", "| function | calls/pair | own ms/pair | cumulative ms/pair | share of own time |",
          "|---|---|---|---|---|"]
    L += [f"| `{r['function']}` | {r['calls_per_pair']:.0f} | {r['own_ms_per_pair']:.1f} | {r['cum_ms_per_pair']:.1f} "
          f"| {100 * r['own_share']:.0f} % |" for r in b1["profile"]]

    L += ["", "## Training", ""]
    tr = res.get("train")
    if not tr:
        L += ["Training throughput: not measured (run without `--no-training`)."]
    elif "error" in tr:
        L += [f"Training throughput: failed: {tr['error']}"]
    else:
        L += [f"Throughput of the bundles' own `SupervisedTrainer` on the {ds} train split (data loading, loss and "
              "optimiser step included), timed after 2 warm-up iterations:", "",
              "| bundle | work size | batch | timed iterations | throughput | data set-up s | peak RSS MiB |",
              "|---|---|---|---|---|---|---|"]
        for k in ("registration", "segmentation"):
            r = tr[k]
            L.append(f"| {k} | {r['work_size']} | {r['batch_size']} | {r['iterations']} | {r['items_per_s']:.1f} "
                     f"{r['unit']} | {r['setup_s']:.1f} | {tr['peak_rss_mib']:.0f} |")
    L += ["", f"Validation DSC of the registration runs in `runs/registration_{ds}*` (first validation at or above "
          "0.95; minutes from the start of training):", ""]
    if res.get("history"):
        L += ["| run | history from | validations | best DSC | first epoch >= 0.95 | minutes to 0.95 | total minutes |",
              "|---|---|---|---|---|---|---|"]
        L += [f"| {h['run']} | {h['source']} | {h['validations']} | {h['best']:.4f} | {_f(h['epoch'], '{}', 'never')} "
              f"| {_f(h['minutes'], '{:.1f}', 'never')} | {_f(h['total_minutes'], '{:.1f}')} |" for h in res["history"]]
    else:
        L += ["not recorded (no run with a validation history)."]
    L += ["", "Training minutes per bundle (`runs/<bundle>_" + ds + "/summary.json`): " + ", ".join(
        f"{k} {_f(v, '{:.1f}', 'not recorded')}" for k, v in pm.items()) + "."]
    L += ["", "## GPU", ""]
    if mc.get("gpu"):
        L += [f"The rows above were measured on {mc['gpu']} (`--device {res['device']}`)."]
    else:
        L += ["GPU figures (training throughput and inference pairs/s on a GPU) are still to be measured: this run had "
              "no GPU. On a GPU machine: `cxreg benchmark --device cuda`."]
    return "\n".join(L) + "\n"


def bar_chart(res: dict, path: str | os.PathLike) -> Path:
    """Horizontal bars of median ms/pair per method on a log scale (PIL), labelled with the values."""
    from PIL import Image, ImageDraw

    rows = [(LABELS["ours_b1"], res["ours_b1"]["times"]["median_ms"])]
    if "ms_per_pair" in res.get("ours_batched", {}):
        rows.append((LABELS["ours_batched"], res["ours_batched"]["ms_per_pair"]))
    rows += [(LABELS[m], res[m]["times"]["median_ms"]) for m in CLASSICAL if "times" in res.get(m, {})]
    W, left, right, bar, gap, top = 760, 190, 110, 26, 14, 40
    H = top + len(rows) * (bar + gap) + 40
    lo = math.floor(math.log10(min(v for _, v in rows)))
    hi = math.ceil(math.log10(max(v for _, v in rows)))
    hi = hi if hi > lo else lo + 1
    span = W - left - right
    x_of = lambda v: left + span * (math.log10(v) - lo) / (hi - lo)  # noqa: E731
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), f"median ms per pair, {res['dataset']} 256x256, log scale (shorter is faster)", fill=(0, 0, 0))
    base = top + len(rows) * (bar + gap)
    for e in range(lo, hi + 1):
        x = x_of(10**e)
        d.line([(x, top - 4), (x, base)], fill=(210, 210, 210))
        d.text((x - 10, base + 4), f"1e{e}", fill=(90, 90, 90))
    colours = [(31, 119, 180), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
    for k, (name, v) in enumerate(rows):
        y = top + k * (bar + gap)
        d.rectangle([left, y, max(x_of(v), left + 1), y + bar], fill=colours[k % len(colours)])
        d.text((10, y + bar / 2 - 6), name, fill=(0, 0, 0))
        d.text((max(x_of(v), left + 1) + 6, y + bar / 2 - 6), f"{v:.1f} ms" if v >= 1 else f"{v:.2f} ms", fill=(0, 0, 0))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    img.save(p)
    return p


# ------------------------------------------------------------------------------------------------------ CLI
def add_parser(sub) -> None:
    """Register the ``benchmark`` sub-command on the ``cxreg`` sub-parsers."""
    from .cli import non_negative, whole

    p = sub.add_parser("benchmark", help="time ours against elastix and ANTs SyN, and training throughput; "
                       "writes a Markdown report and a bar chart")
    p.add_argument("--dataset", default="JSRT", help="data set whose test split is registered (JSRT | MONT | SHEN)")
    p.add_argument("--pairs", type=whole(1), default=20, help="seeded ordered test pairs timed per method at batch 1")
    p.add_argument("--out", default="docs/benchmarks.md", help="Markdown report; the chart goes to "
                   "<out dir>/img/benchmark_<DATASET>.png")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--model", default=None, help="registration model (default: the --dataset weights)")
    p.add_argument("--seg-model", default=None, help="lung segmentation model (default: the --dataset weights)")
    p.add_argument("--ae-model", default=None, help="autoencoder for the training loss, or 'none' (default: --dataset)")
    p.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu",
                   help="cpu | cuda (default: cuda when a GPU is usable, else cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair sample (default %(default)s)")
    p.add_argument("--methods", default="elastix,syn", help="classical methods to time (comma list; '' for none)")
    p.add_argument("--train-iters", type=whole(1), default=20, help="timed training iterations per bundle")
    p.add_argument("--no-training", action="store_true", help="skip the training throughput")
    p.add_argument("--profile-pairs", type=whole(0), default=5, help="pairs profiled with cProfile")
    p.add_argument("--runs-dir", default=None, help="where training runs are (default: <repo>/runs)")
    p.add_argument("--refine", type=whole(0), default=0, help="time ours with this many test-time refinement steps per "
                   "pair (0 = off)")
    p.add_argument("--refine-mask-weight", type=non_negative, default=DEFAULT_MASK_WEIGHT,
                   help="weight of the refinement's lung-mask term (as cxreg register; default %(default)g)")
    p.add_argument("--note", default=None, help="a line printed in bold under the title")
    p.add_argument("--json", default=None, help="also write the raw results to this JSON file")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_benchmark)


def _cmd_benchmark(a: argparse.Namespace) -> int:
    methods = tuple(m for m in (a.methods or "").split(",") if m)
    bad = [m for m in methods if m not in CLASSICAL]
    if bad:
        raise ValueError(f"--methods: unknown {bad}; choose from {list(CLASSICAL)}")
    out = Path(a.out)
    if out.suffix.lower() != ".md":
        raise ValueError(f"--out {out}: expected a Markdown file path ending in .md")
    res = run_benchmark(a.dataset, a.pairs, a.data_dir, a.model, a.seg_model, a.ae_model, a.device, a.seed,
                        a.train_iters, not a.no_training, methods, a.profile_pairs, a.runs_dir, progress=not a.quiet,
                        refine=a.refine, refine_mask_weight=a.refine_mask_weight)
    chart = bar_chart(res, out.parent / "img" / f"benchmark_{a.dataset}.png")
    command = "cxreg benchmark " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["benchmark"] else None
    md = render_markdown(res, chart=os.path.relpath(chart, out.parent), command=command, note=a.note)
    write_text_atomic(out, md)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    sp = res["speedup"]
    print(f"ours batch 1: {res['ours_b1']['times']['median_ms']:.1f} ms/pair; "
          + "; ".join(f"{m}: {v['b1']:.1f}x (batch 1), {_f(v['batched'], '{:.1f}x')} (batched)" for m, v in sp.items()))
    print(f"wrote {out} and {chart}")
    return 0


def _worker_main(argv: list[str]) -> int:
    kind, src, dst = argv
    res = WORKERS[kind](json.loads(Path(src).read_text()))
    Path(dst).write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        sys.exit(_worker_main(sys.argv[2:]))
    sys.exit("usage: python -m bundle.benchmark --worker KIND ARGS.json RESULT.json (use `cxreg benchmark`)")
