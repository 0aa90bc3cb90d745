"""Fine-tuning vs training from scratch on few images: test DSC / HD against training minutes (issue 11).

For each number of training images N and each start (``--init JSRT`` or random weights), trains the
registration bundle (``configs/train.json`` + the shipped ``diffeo`` preset, the same loss, optimiser and
schedule for both starts) on the first N images of the dataset's seeded training part and scores the whole
test split (all ordered pairs, 256 x 256, the same metrics as ``cxreg evaluate``) every ``--eval-every``
iterations. The clock counts training only (the test scoring is paused out). Attention and the shape prior are
the dataset's shipped segmentation and autoencoder models for both starts, so only the registration network's
start differs.

    python scripts/finetune_curve.py --dataset MONT --init JSRT --images 10 25 99 --iters 400 --eval-every 50

Writes docs/results/finetune/<DATASET>/curve.csv, summary.json and docs/img/finetune_<DATASET>.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bundle.data import load_split  # noqa: E402
from bundle.metrics import pair_metrics  # noqa: E402
from bundle.registration import attention_masks, predict_field  # noqa: E402
from bundle.spatial import warp  # noqa: E402


def scorer(dataset: str):
    d = load_split(dataset, "test")
    attn = attention_masks(d.images, dataset)
    n = len(d)
    pairs = [(m, f) for m in range(n) for f in range(n) if m != f]

    @torch.no_grad()
    def score(net, settings, batch=34):
        net.eval()
        vals = {"dsc": [], "hd": [], "assd": [], "jac": []}
        for b0 in range(0, len(pairs), batch):
            ch = pairs[b0:b0 + batch]
            mi, fi = torch.tensor([p[0] for p in ch]), torch.tensor([p[1] for p in ch])
            ddf = predict_field(net, settings, d.images[mi], d.images[fi], attn[mi], attn[fi])["ddf"]
            w = warp(d.masks[mi], ddf, mode="nearest", padding_mode="zeros")
            met = pair_metrics(w, d.masks[fi], ddf)
            for k in vals:
                vals[k] += list(met[k])
        net.train()
        return {k: float(np.mean(v)) for k, v in vals.items()}, len(pairs)

    return score


def run_arm(dataset, init, n_images, iters, eval_every, score, out_root, lr):
    from ignite.engine import Events
    from monai.bundle import ConfigParser
    from monai.utils import set_determinism

    name = f"{init or 'scratch'}_{n_images}"
    out = out_root / name
    p = ConfigParser()
    p.read_config([str(REPO / "configs" / "train.json"), str(REPO / "configs" / "presets" / "diffeo.json")])
    bpe = 25
    over = {"dataset": dataset, "init": init, "max_images": n_images, "output_dir": str(out),
            "model_path": str(out / "final.pt"), "batches_per_epoch": bpe, "max_epochs": iters // bpe,
            "val_interval": 10**6, "learning_rate": lr}
    for k, v in over.items():
        p[k] = v
    set_determinism(seed=0)
    t0 = time.perf_counter()
    trainer = p.get_parsed_content("train#trainer")
    net, settings = p.get_parsed_content("network"), p.get_parsed_content("settings")
    n_train = len(p.get_parsed_content("data")[0].images)
    rows, paused = [], [0.0]

    def evaluate(engine=None):
        te = time.perf_counter()
        m, npairs = score(net, settings)
        it = engine.state.iteration if engine else 0
        minutes = (te - t0 - paused[0]) / 60
        rows.append({"start": init or "scratch", "images": n_images, "train_images": n_train, "iteration": it,
                     "train_minutes": round(minutes, 3), **{k: round(v, 4) for k, v in m.items()}, "pairs": npairs})
        print(f"{name}: it {it:4d}  {minutes:5.2f} min  DSC {m['dsc']:.4f}  HD {m['hd']:.2f}  JAC {m['jac']:.2f}",
              flush=True)
        paused[0] += time.perf_counter() - te

    evaluate()
    trainer.add_event_handler(Events.ITERATION_COMPLETED(every=eval_every), evaluate)
    trainer.run()
    if rows[-1]["iteration"] != trainer.state.iteration:
        evaluate(trainer)
    return rows


def plot(rows, dataset, init, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colours = {}
    for (start, n) in sorted({(r["start"], r["images"]) for r in rows}, key=lambda x: (x[1], x[0])):
        rs = [r for r in rows if r["start"] == start and r["images"] == n]
        c = colours.setdefault(n, f"C{len(colours)}")
        ls = "-" if start != "scratch" else "--"
        lab = f"{'from ' + start if start != 'scratch' else 'scratch'}, {rs[0]['train_images']} images"
        for ax, k in zip(axes, ("dsc", "hd")):
            ax.plot([r["train_minutes"] for r in rs], [r[k] for r in rs], ls, color=c, marker="o", ms=3, label=lab)
    axes[0].set_ylabel(f"{dataset} test DSC (all ordered pairs, 256 px)")
    axes[1].set_ylabel(f"{dataset} test HD (px)")
    for ax in axes:
        ax.set_xlabel("training minutes (2 CPU cores)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Registration on {dataset}: fine-tuning from {init} (solid) vs from scratch (dashed)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="MONT")
    ap.add_argument("--init", default="JSRT")
    ap.add_argument("--images", type=int, nargs="+", default=[10, 25, 99])
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    out = Path(a.out or REPO / "docs" / "results" / "finetune" / a.dataset)
    runs = REPO / "runs" / f"finetune_{a.dataset}"
    score = scorer(a.dataset)
    rows = []
    for n in a.images:
        for init in (a.init, None):
            rows += run_arm(a.dataset, init, n, a.iters, a.eval_every, score, runs, a.learning_rate)
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "curve.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
    (out / "summary.json").write_text(json.dumps({
        "command": "python scripts/finetune_curve.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
                   f"{torch.get_num_threads()}",
        "final": [r for r in rows if r["iteration"] == max(x["iteration"] for x in rows
                                                             if x["start"] == r["start"] and x["images"] == r["images"])],
    }, indent=1))
    plot(rows, a.dataset, a.init, REPO / "docs" / "img" / f"finetune_{a.dataset}.png")


if __name__ == "__main__":
    main()
