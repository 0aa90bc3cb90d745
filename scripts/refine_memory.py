#!/usr/bin/env python
"""Peak memory and time of batched test-time refinement against its sub-batch size (``max_batch`` of
:func:`bundle.refine.refine_residual`), and whether the scores change.

Each setting runs in its own process (so its peak RSS is its own): ``cxreg evaluate``'s harness with the
shipped universal model, its lung masks, ``--refine STEPS`` (mask weight 40), the harness's batch of 32 pairs,
on a seeded sample of ``--pairs`` JSRT test pairs. ``none`` = no refinement (the baseline), ``all`` = the 32
pairs of a batch refined at once (what 0.5.4 did), a number = that many at a time (0.5.5 default 8).

    python scripts/refine_memory.py [--pairs 64] [--steps 20] [--settings none all 8 4]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
import bundle.refine as R
from bundle.evaluate import evaluate
from bundle.registration import OursMethod
mb, steps, pairs, out, ds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
if mb != "none":  # predict_field looks refine_residual up in bundle.refine at each call
    _orig, _mb = R.refine_residual, None if mb == "all" else int(mb)
    R.refine_residual = lambda *a, **k: _orig(*a, **{**k, "max_batch": _mb})
fn = OursMethod("universal", refine_steps=0 if mb == "none" else steps, refine_weights={"w_mask": 40.0})
t = time.perf_counter()
s = evaluate("ours", ds, out, max_pairs=pairs, seed=0, progress=False, method_fn=fn)
print(json.dumps({"wall_s": time.perf_counter() - t, "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "ms_pair": 1000 * s["metrics"]["seconds"]["mean"], "dsc": s["metrics"]["dsc"]["mean"], "hd": s["metrics"]["hd"]["mean"]}))
"""


def _rows(p: Path) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from bundle.io import read_pairs_csv

    return list(read_pairs_csv(p).values())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--dataset", default="JSRT")
    p.add_argument("--settings", nargs="+", default=["none", "all", "8", "4"])
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args(argv)
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mb in a.settings:
            out = Path(tmp) / f"mb_{mb}"
            r = subprocess.run([sys.executable, "-c", CHILD, mb, str(a.steps), str(a.pairs), str(out), a.dataset],
                               capture_output=True, text=True, cwd=ROOT)
            if r.returncode != 0:
                raise SystemExit(f"refine_memory: error: max_batch {mb}: {r.stderr.strip()[-500:]}")
            res[mb] = json.loads(r.stdout.strip().splitlines()[-1])
            res[mb]["rows"] = _rows(out / "pairs.csv")
    ref = next((k for k in a.settings if k == "all"), None)
    print(f"{a.dataset}, {a.pairs} seeded test pairs, universal model, refine {a.steps} steps (mask weight 40), "
          "harness batch 32")
    print("| max_batch | peak RSS GiB | wall s (with setup) | ms/pair (registration) | DSC | HD | largest per-pair |diff| vs all (DSC / HD / ASSD) |")
    print("|---|---|---|---|---|---|---|")
    for mb, v in res.items():
        diff = ""
        if ref and mb not in ("none", ref):
            d = {k: max(abs(float(x[k]) - float(y[k])) for x, y in zip(v["rows"], res[ref]["rows"]))
                 for k in ("dsc", "hd", "assd")}
            diff = f"{d['dsc']:.2e} / {d['hd']:.2e} / {d['assd']:.2e}"
            v["max_diff"] = d
        print(f"| {mb} | {v['rss_gib']:.2f} | {v['wall_s']:.1f} | {v['ms_pair']:.0f} | "
              f"{v['dsc']:.4f} | {v['hd']:.2f} | {diff} |")
    if a.json:
        Path(a.json).write_text(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "rows"}
                                            for k, v in res.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
