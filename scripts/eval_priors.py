"""Measure Tables 2 and 3 (segmentation and autoencoder, CE only vs CE + contour) on the test splits.

    python scripts/eval_priors.py [--datasets JSRT MONT SHEN] [--out docs/results/priors.json]

Shipped models: models/{segmentation,autoencoder}_<DS>.pt (CE + contour; segmentation trained 240/240/60
epochs, SHEN keeps 60: 120 gave 0.9586 < 0.9594); CE-only ablations: runs/{segmentation,autoencoder}_<DS>_ce/final.pt, and 60-epoch CE + contour
segmentation runs/segmentation_<DS>_contour60/final.pt (all made by scripts/train_priors.sh).
Prints Markdown tables and writes all per-image numbers to --out.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from bundle.priors import evaluate_autoencoder, evaluate_segmentation, load_autoencoder, load_segmentation

PAPER_T2 = {"JSRT": (0.961, 0.972), "MONT": (0.965, 0.971), "SHEN": (0.951, 0.962)}
PAPER_T3 = {"JSRT": ((0.955, 22.607, 2.794), (0.956, 15.686, 2.652)),
            "MONT": ((0.928, 38.978, 4.718), (0.950, 18.161, 2.962)),
            "SHEN": ((0.962, 101.989, 17.085), (0.968, 93.529, 14.716))}

p = argparse.ArgumentParser()
p.add_argument("--datasets", nargs="+", default=["JSRT", "MONT", "SHEN"])
p.add_argument("--out", default="docs/results/priors.json")
a = p.parse_args()


def m(v):
    return float(np.nanmean(v))


res = {}
t2 = ["| Dataset | Loss | DSC raw | DSC cleaned | HD cleaned | ASSD cleaned | blobs/image raw | blobs/image cleaned | paper DSC |",
      "|---|---|---|---|---|---|---|---|---|"]
t3 = ["| Dataset | Loss | input | DSC | HD | ASSD | paper DSC / HD / ASSD |", "|---|---|---|---|---|---|---|"]
for ds in a.datasets:
    # tags are the keys of --out (bundle/export.py reads "CE + contour" = the shipped models)
    for tag, seg_path, ae_path, k in (("CE only", f"runs/segmentation_{ds}_ce/final.pt", f"runs/autoencoder_{ds}_ce/final.pt", 0),
                                      ("CE + contour, 60 epochs", f"runs/segmentation_{ds}_contour60/final.pt", "-", 1),
                                      ("CE + contour", ds, ds, 1)):
        if Path(seg_path).is_file() or seg_path == ds:
            r = evaluate_segmentation(load_segmentation(seg_path), ds, "test")
            res[f"segmentation/{ds}/{tag}"] = r
            t2.append(f"| {ds} | {tag} | {m(r['raw']['dsc']):.4f} | {m(r['clean']['dsc']):.4f} | {m(r['clean']['hd']):.2f} | "
                      f"{m(r['clean']['assd']):.3f} | {m(r['raw']['components']):.2f} | {m(r['clean']['components']):.2f} | "
                      f"{PAPER_T2[ds][k]:.3f} |")
        if Path(ae_path).is_file() or ae_path == ds:
            net = load_autoencoder(ae_path)
            for corrupted in (False, True):
                r = evaluate_autoencoder(net, ds, "test", corrupted=corrupted, seed=0)
                res[f"autoencoder/{ds}/{tag}/{'corrupted' if corrupted else 'clean'}"] = r
                pp = PAPER_T3[ds][k]
                t3.append(f"| {ds} | {tag} | {'corrupted' if corrupted else 'clean'} | {m(r['dsc']):.4f} | {m(r['hd']):.2f} | "
                          f"{m(r['assd']):.3f} | {pp[0]:.3f} / {pp[1]:.2f} / {pp[2]:.2f} |")
print("\n".join(t2))
print()
print("\n".join(t3))
Path(a.out).parent.mkdir(parents=True, exist_ok=True)
Path(a.out).write_text(json.dumps(res))
