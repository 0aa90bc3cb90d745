# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""The ``cxreg`` command line: ``cxreg <subcommand> --help``."""

from __future__ import annotations

import argparse
import sys

from . import __version__

__all__ = ["main"]


def _cmd_evaluate(a) -> int:
    from .evaluate import evaluate, table_row

    spacing = (a.spacing, a.spacing) if a.spacing else None
    method_fn = None
    if a.method == "ours":
        from .registration import OursMethod

        method_fn = OursMethod(a.model or a.dataset, seg_model=a.seg_model, device=a.device, refine_steps=a.refine,
                               refine_size=a.refine_size)
    s = evaluate(a.method, a.dataset, a.out, split=a.split, data_dir=a.data_dir, max_pairs=a.max_pairs,
                 seed=a.seed, spacing=spacing, progress=not a.quiet, method_fn=method_fn)
    m = s["metrics"]
    print(f"{a.method} on {a.dataset}/{a.split}: {s['n_pairs']} pairs in {s['wall_seconds']:.1f} s")
    print(f"DSC {m['dsc']['mean']:.4f}  HD {m['hd']['mean']:.3f}  ASSD {m['assd']['mean']:.3f}  "
          f"JAC {m['jac']['mean']:.2f} ({s['units']})")
    print(table_row(s, a.method))
    print(f"wrote {a.out}/pairs.csv, summary.json, table.md")
    return 0


def _cmd_prepare(a) -> int:
    from .prepare import prepare

    counts = prepare(a.dataset, a.source, a.out, size=a.size, overwrite=a.overwrite)
    print(f"{a.dataset}: wrote {counts['images']} images and masks to {a.out}/{a.dataset}")
    return 0


def _cmd_info(a) -> int:
    from .data import DATASETS, load_splits, resolve_data_dir

    d = resolve_data_dir(a.data_dir)
    splits = load_splits(d)
    print(f"cxreg {__version__}; data: {d}")
    for ds in DATASETS:
        if ds in splits:
            print(f"  {ds}: " + ", ".join(f"{k} {len(v)}" for k, v in splits[ds].items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cxreg", description="Deformable registration of 2D chest X-rays (MONAI bundles).")
    p.add_argument("--version", action="version", version=f"cxreg {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    e = sub.add_parser("evaluate", help="register ordered test pairs with a method and write metrics")
    e.add_argument("--method", default="identity", help="identity | elastix | syn | ours")
    e.add_argument("--model", default=None, help="ours: JSRT|MONT|SHEN or a registration model file (default: --dataset)")
    e.add_argument("--seg-model", default=None, help="ours: segmentation model for the lung masks (default: --model)")
    e.add_argument("--refine", type=int, default=0, help="ours: test-time refinement steps per pair (0 = off)")
    e.add_argument("--refine-size", type=int, default=128, help="ours: grid of the refinement (pixels)")
    e.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu")
    e.add_argument("--dataset", default="JSRT", help="JSRT | MONT | SHEN")
    e.add_argument("--split", default="test")
    e.add_argument("--data-dir", default=None, help="data directory (default ../shared/data or $CXREG_DATA_DIR)")
    e.add_argument("--max-pairs", type=int, default=None, help="seeded sample of this many ordered pairs")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--spacing", type=float, default=None, help="pixel spacing in mm (distances in mm)")
    e.add_argument("--out", required=True, help="output folder (replaced if it exists)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=_cmd_evaluate)

    r = sub.add_parser("prepare-data", help="convert an official JSRT/MONT/SHEN download into cxreg's layout")
    r.add_argument("--dataset", required=True, choices=["JSRT", "MONT", "SHEN"])
    r.add_argument("--source", required=True, help="folder of the official download")
    r.add_argument("--out", required=True, help="data directory to write <out>/<DATASET>/{images,masks}")
    r.add_argument("--size", type=int, default=256)
    r.add_argument("--overwrite", action="store_true")
    r.set_defaults(func=_cmd_prepare)

    i = sub.add_parser("info", help="show version and the datasets found")
    i.add_argument("--data-dir", default=None)
    i.set_defaults(func=_cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "func", None):
        parser.print_help()
        return 2
    try:
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
