# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""The ``cxreg`` command line: ``cxreg <subcommand> --help``."""

from __future__ import annotations

import argparse
import sys

from . import __version__

__all__ = ["main"]


def _eval_options(a) -> dict:
    """The options of ``cxreg evaluate`` that decide its numbers, for ``summary.json``."""
    if a.method != "ours":
        return {"method": a.method}
    return {"method": a.method, "model": a.model or a.dataset, "seg_model": a.seg_model or "(the model's own)",
            "refine": a.refine, "refine_size": a.refine_size, "refine_mask_weight": a.refine_mask_weight,
            "refine_distance_weight": a.refine_distance_weight, "fix_folds": a.fix_folds or "(the model's setting)"}


def _on_off(v: str | None) -> bool | None:
    """``--fix-folds on|off`` -> True/False; not given -> None (the registration model's own setting)."""
    return None if v is None else v == "on"


FIX_FOLDS_HELP = ("ours: remove the output field's folds by local smoothing (bundle.spatial.remove_folds): "
                  "on | off (default: the registration model's setting; on for the shipped models)")


def _cmd_evaluate(a) -> int:
    from .evaluate import evaluate, table_row

    spacing = (a.spacing, a.spacing) if a.spacing else None
    method_fn = None
    if not a.overwrite:  # before any model or data is loaded
        from .io import check_writable

        check_writable(a.out)
    if a.fix_folds is not None and a.method != "ours":
        raise ValueError(f"--fix-folds applies to --method ours, not {a.method}")
    from .data import check_split

    check_split(a.dataset, a.split, a.data_dir)  # named before any model is loaded (its name defaults to the dataset's)
    if a.method == "ours":
        from .registration import OursMethod

        method_fn = OursMethod(a.model or a.dataset, seg_model=a.seg_model, device=a.device, refine_steps=a.refine,
                               refine_size=a.refine_size, fix_folds=_on_off(a.fix_folds),
                               refine_weights={"w_mask": a.refine_mask_weight,
                                               "w_dist": a.refine_distance_weight})
    s = evaluate(a.method, a.dataset, a.out, split=a.split, data_dir=a.data_dir, max_pairs=a.max_pairs,
                 seed=a.seed, spacing=spacing, progress=not a.quiet, method_fn=method_fn, shard=a.shard,
                 overwrite=a.overwrite, options=_eval_options(a))
    m = s["metrics"]
    print(f"{a.method} on {a.dataset}/{a.split}: {s['n_pairs']} pairs in {s['wall_seconds']:.1f} s")
    h95 = f"HD95 {m['hd95']['mean']:.3f}  " if "hd95" in m else ""
    print(f"DSC {m['dsc']['mean']:.4f}  HD {m['hd']['mean']:.3f}  {h95}ASSD {m['assd']['mean']:.3f}  "
          f"JAC {m['jac']['mean']:.2f} ({s['units']})")
    print(table_row(s, a.method))
    print(f"wrote {a.out}/pairs.csv, summary.json, table.md")
    return 0


def read_pairs_csv(path) -> list[dict]:
    """Rows of a pairs CSV (moving,fixed[,moving_mask,fixed_mask], any case); relative paths are relative to the
    CSV; each row gets its output folder ``name`` (:func:`bundle.register.pair_names`)."""
    import csv
    from pathlib import Path

    from .io import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: pairs file not found")
    rows = []
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, skipinitialspace=True)
            cols = {(c or "").strip().lower() for c in (reader.fieldnames or [])}  # Moving,Fixed too
            for r in reader:  # csv skips blank lines; line_num is the file line of this row
                rows.append((reader.line_num, {(k or "").strip().lower(): v for k, v in r.items()}))
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{p}: not a UTF-8 CSV file ({str(e).splitlines()[0][:120]})") from None
    if not {"moving", "fixed"} <= cols:
        raise InputError(f"{p}: needs the columns moving,fixed (found {sorted(c for c in cols if c)})")
    pairs = []
    for n, r in rows:
        val = {k: (r.get(k) or "").strip() if isinstance(r.get(k), str) else "" for k in
               ("moving", "fixed", "moving_mask", "fixed_mask")}
        if not val["moving"] and not val["fixed"]:
            continue  # an empty row (",,")
        if not (val["moving"] and val["fixed"]):
            raise InputError(f"{p}: line {n}: a row lacks its moving or fixed path")
        d = {k: str(v if Path(v).is_absolute() else p.parent / v) for k, v in val.items() if v}
        if d not in pairs:  # duplicate rows are registered once
            pairs.append(d)
    if not pairs:
        raise InputError(f"{p}: no pairs in this file")
    from .register import pair_names

    for pr, name in zip(pairs, pair_names(pairs)):  # before any --shard, so every shard names a pair alike
        pr["name"] = name
    return pairs


def _cmd_register(a) -> int:
    from .register import register_files, status_line, write_summary

    if a.pairs:
        if a.moving or a.fixed:
            raise ValueError("give either MOVING FIXED or --pairs, not both")
        pairs = read_pairs_csv(a.pairs)
    else:
        if not (a.moving and a.fixed):
            raise ValueError("give MOVING FIXED (or --pairs PAIRS.csv)")
        if a.shard:
            raise ValueError(f"--shard {a.shard}: splits the pairs of a --pairs CSV; one pair (MOVING FIXED) has "
                             "nothing to split")
        pairs = [{"moving": a.moving, "fixed": a.fixed, "moving_mask": a.moving_mask, "fixed_mask": a.fixed_mask}]
    single = not a.pairs
    from .distributed import parse_shard, shard_items

    shard_i, shard_n = parse_shard(a.shard) if not single else (0, 1)  # --shard i/n, else torchrun's rank/world
    if shard_n > 1:
        pairs = shard_items(pairs, f"{shard_i}/{shard_n}")
    # shards share the output folder: each pair folder is still refused if it exists (unless --overwrite)
    status = register_files(pairs, a.out, model=a.model, device=a.device, overwrite=a.overwrite,
                            progress=not a.quiet and not single, refine_steps=a.refine, single=single,
                            seg_model=a.seg_model, strict=a.debug, check_out=shard_n == 1,
                            fix_folds=_on_off(a.fix_folds), refine_mask_weight=a.refine_mask_weight,
                            refine_distance_weight=a.refine_distance_weight, mask_labels=a.mask_labels)
    ok = [s for s in status if s["ok"]]
    for s in status:
        if s["ok"]:
            print(status_line(s))
        elif single:
            print(f"cxreg register: error: {s['error']}", file=sys.stderr)
        else:
            print(f"{s['pair']}: FAILED: {s['error']}", file=sys.stderr)
    if not single:
        name = "summary.json" if shard_n == 1 else f"summary_{shard_i}of{shard_n}.json"
        write_summary(a.out, status, name)
        failed = "".join(f"\n  failed: {s['pair']}: {s['error']}" for s in status if not s["ok"])
        print(f"{len(ok)} of {len(status)} pairs registered; summary in {a.out}/{name}{failed}")
    return 0 if len(ok) == len(status) else 1


def _cmd_prepare(a) -> int:
    from .prepare import prepare

    counts = prepare(a.dataset, a.source, a.out, size=a.size, overwrite=a.overwrite)
    print(f"{a.dataset}: wrote {counts['images']} images and masks to {a.out}/{a.dataset}")
    return 0


def _cmd_info(a) -> int:
    from .data import DATASETS, load_splits, resolve_data_dir
    from .owndata import is_own_data, own_name, scan_own_data

    d = resolve_data_dir(a.data_dir)
    if is_own_data(d):  # the layout of docs/own-data.md: images/ (+ masks/), or a CSV image,mask
        items = scan_own_data(d)  # checks it as training would
        n_masks = sum(it[2] is not None for it in items)
        print(f"cxreg {__version__}; data: {d}")
        print(f"  own data '{own_name(d)}': {len(items)} images, {n_masks} with a lung mask (docs/own-data.md: "
              f"train with --data_dir {d})")
        return 0
    splits = load_splits(d)
    print(f"cxreg {__version__}; data: {d}")
    for ds in DATASETS:
        if ds in splits:
            print(f"  {ds}: " + ", ".join(f"{k} {len(v)}" for k, v in splits[ds].items()))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``cxreg register: error: argument --refine: ...``, exit status 2) instead
    of the usage block; every subcommand's parser is one of these."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def whole(lo: int):
    """argparse type: a whole number >= ``lo``."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {lo}, not {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {lo}, not {v}")
        return v

    return parse


def _finite_number(text: str, zero_ok: bool) -> float:
    import math

    bound = ">= 0" if zero_ok else "> 0"
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number {bound}, not {text!r}") from None
    if not (math.isfinite(v) and (v >= 0 if zero_ok else v > 0)):
        raise argparse.ArgumentTypeError(f"expected a finite number {bound}, not {text}")
    return v


def positive(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _finite_number(text, zero_ok=False)


def non_negative(text: str) -> float:
    """argparse type: a finite number >= 0 (the refinement's term weights)."""
    return _finite_number(text, zero_ok=True)


def build_parser() -> argparse.ArgumentParser:
    from .refine import DEFAULT_MASK_WEIGHT

    p = _Parser(prog="cxreg", description="Deformable registration of 2D chest X-rays (MONAI bundles).")
    p.add_argument("--version", action="version", version=f"cxreg {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    e = sub.add_parser("evaluate", help="register ordered test pairs with a method and write metrics")
    e.add_argument("--method", default="identity", type=str.lower, choices=["identity", "elastix", "syn", "ours"],
                   help="identity (no registration; the default) | elastix | syn | ours")
    e.add_argument("--model", default=None, help="ours: JSRT|MONT|SHEN|universal or a registration model file (default: --dataset)")
    e.add_argument("--seg-model", default=None, help="ours: segmentation model for the lung masks (default: --model); "
                   "universal256 = the universal model at 256 x 256 (more accurate, ~2x slower lung masks); A+B averages "
                   "two models, e.g. JSRT+universal; a trailing @tta averages 5 shifted passes, e.g. JSRT256@tta; truth = the true "
                   "masks (oracle)")
    e.add_argument("--refine", type=whole(0), default=0, help="ours: test-time refinement steps per pair (0 = off)")
    e.add_argument("--refine-size", type=whole(8), default=128, help="ours: grid of the refinement (pixels)")
    e.add_argument("--refine-mask-weight", type=non_negative, default=DEFAULT_MASK_WEIGHT, help="ours: weight of the "
                   "lung-mask overlap term of the refinement (image similarity 1, smoothness 0.5; default %(default)g, "
                   "1 before 0.5.3)")
    e.add_argument("--refine-distance-weight", type=non_negative, default=0.0, help="ours: weight of the refinement's "
                   "boundary term (mismatched lung weighted by its distance to the fixed mask's border; 0 = off)")
    e.add_argument("--fix-folds", choices=["on", "off"], default=None, help=FIX_FOLDS_HELP)
    e.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu",
                   help="cpu | cuda | cuda:N (default: cuda when a GPU is usable, else cpu)")
    e.add_argument("--dataset", default="JSRT", help="JSRT | MONT | SHEN")
    e.add_argument("--split", default="test", help="the splits.json split whose ordered pairs are scored (default %(default)s)")
    e.add_argument("--data-dir", default=None, help="data directory (default ../shared/data or $CXREG_DATA_DIR)")
    e.add_argument("--max-pairs", type=whole(1), default=None, help="seeded sample of this many ordered pairs")
    e.add_argument("--seed", type=int, default=0, help="seed of the --max-pairs sample (default %(default)s)")
    e.add_argument("--spacing", type=positive, default=None, help="pixel spacing in mm (distances in mm)")
    e.add_argument("--out", required=True, help="output folder (refused if it exists and is not empty)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("--shard", default=None, help="i/n: score only every n-th pair from the i-th (merge the CSVs after)")
    e.set_defaults(func=_cmd_evaluate)

    g = sub.add_parser("register", help="register MOVING onto FIXED (PNG/NIfTI/DICOM) with the shipped models")
    g.add_argument("moving", nargs="?", help="moving image (PNG, NIfTI or DICOM)")
    g.add_argument("fixed", nargs="?", help="fixed image (PNG, NIfTI or DICOM)")
    g.add_argument("--pairs", help="CSV with columns moving,fixed[,moving_mask,fixed_mask] (many pairs)")
    g.add_argument("--out", required=True, help="output folder (one sub-folder per pair with --pairs)")
    g.add_argument("--model", default="universal", help="universal (default; trained on all three datasets) | JSRT | "
                   "MONT | SHEN or a registration model file")
    g.add_argument("--seg-model", default=None, help="lung segmentation model (default: the --model's own, else "
                   "universal); universal256 = the universal model at 256 x 256 (more accurate, ~2x slower lung masks); "
                   "A+B averages two models' lung probabilities, e.g. JSRT+universal; a trailing @tta averages 5 shifted passes "
                   "(smoother lung borders, 5x the mask time), e.g. JSRT256@tta")
    g.add_argument("--moving-mask", default=None, help="lung mask of the moving image (else predicted)")
    g.add_argument("--fixed-mask", default=None, help="lung mask of the fixed image (else predicted)")
    g.add_argument("--mask-labels", default=None, help="which values of label-map masks are lung, e.g. 1,2 (left "
                   "and right lung of a 0/1/2/3 map); without it a mask with one or two values is lung where it has "
                   "the higher one, one with 3-8 values is refused, a soft mask is lung above half its maximum")
    g.add_argument("--refine", type=whole(0), default=0, help="test-time refinement steps (0 = off)")
    g.add_argument("--refine-mask-weight", type=non_negative, default=DEFAULT_MASK_WEIGHT,
                   help="weight of the lung-mask overlap term of the refinement (image similarity 1, smoothness "
                   "0.5; default %(default)g, 1 before 0.5.3)")
    g.add_argument("--refine-distance-weight", type=non_negative, default=0.0,
                   help="weight of the refinement's boundary term (mismatched lung weighted by its distance to "
                   "the fixed mask's border; 0 = off)")
    g.add_argument("--fix-folds", choices=["on", "off"], default=None, help=FIX_FOLDS_HELP[6:])
    g.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu",
                   help="cpu | cuda | cuda:N (default: cuda when a GPU is usable, else cpu)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no per-pair lines")
    g.add_argument("--shard", default=None, help="i/n: with --pairs, register only every n-th pair from the i-th "
                   "(one process or GPU per shard)")
    g.set_defaults(func=_cmd_register)

    r = sub.add_parser("prepare-data", help="convert an official JSRT/MONT/SHEN download into cxreg's layout")
    r.add_argument("--dataset", required=True, choices=["JSRT", "MONT", "SHEN"])
    r.add_argument("--source", required=True, help="folder of the official download")
    r.add_argument("--out", required=True, help="data directory to write <out>/<DATASET>/{images,masks}")
    r.add_argument("--size", type=whole(32), default=256, help="side of the square images and masks written (default %(default)s)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing <out>/<DATASET> folder")
    r.set_defaults(func=_cmd_prepare)

    i = sub.add_parser("info", help="show version and the datasets found")
    i.add_argument("--data-dir", default=None, help="data directory (default ../shared/data or $CXREG_DATA_DIR)")
    i.set_defaults(func=_cmd_info)

    # sub-commands that live in their own modules: each defines add_parser(subparsers)
    import importlib

    for mod in ("warp", "points", "pairs", "export", "benchmark"):
        importlib.import_module(f".{mod}", __package__).add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "func", None):
        parser.print_help()
        return 2
    try:
        if getattr(a, "device", None) is not None:
            from .workflow import check_device

            check_device(a.device)
        return a.func(a)
    except KeyboardInterrupt:
        print("cxreg: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line unless --debug
        if a.debug:
            raise
        print(f"cxreg {a.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
