# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Does an exported registration bundle deliver the numbers of the results row it was exported with?

    python scripts/check_bundle_row.py dist/cxreg_registration_jsrt_accurate_v0.5.5.zip JSRT \\
        universal_df1_segDS256tta_refine20_mw80 --pairs 8

unpacks the bundle into a temporary folder, runs its ``inference`` (``python -m monai.bundle run inference
--pairs_csv``, lung masks predicted by the bundle, as for a user's pair) on ``--pairs`` seeded pairs of
``docs/results/registration/<DATASET>_<ROW>/pairs.csv``, warps each true moving mask with the bundle's
``ddf.nii.gz`` (nearest neighbour, as ``cxreg evaluate``) and scores it against the true fixed mask. Prints each
pair's DSC / HD / ASSD from the bundle and from the row, and the largest differences. Exit status 1 when a
pair's DSC differs by more than ``--dsc-tol`` (default 0.001).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", help="exported zip")
    p.add_argument("dataset")
    p.add_argument("row")
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dsc-tol", type=float, default=0.001)
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import itk
    import torch

    from bundle.data import resolve_data_dir
    from bundle.io import InputError, load_mask
    from bundle.io import read_pairs_csv
    from bundle.metrics import score_field

    rows_path = ROOT / "docs" / "results" / "registration" / f"{a.dataset}_{a.row}" / "pairs.csv"
    try:
        rows = list(read_pairs_csv(rows_path).values())
    except InputError as e:
        raise SystemExit(f"check_bundle_row: error: {e}") from None
    pick = np.random.default_rng(a.seed).choice(len(rows), min(a.pairs, len(rows)), replace=False)
    rows = [rows[i] for i in sorted(pick)]
    data = resolve_data_dir(a.data_dir) / a.dataset
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with zipfile.ZipFile(a.bundle) as z:
            z.extractall(tmp / "b")
        (bdir,) = [d for d in (tmp / "b").iterdir() if d.is_dir()]
        pairs_csv = tmp / "pairs.csv"
        pairs_csv.write_text("moving,fixed\n" + "".join(
            f"{data / 'images' / (r['moving'] + '.png')},{data / 'images' / (r['fixed'] + '.png')}\n" for r in rows))
        out = tmp / "out"
        r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file",
                            "configs/inference.json", "--pairs_csv", str(pairs_csv), "--output_dir", str(out)],
                           cwd=bdir, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        if r.returncode != 0:
            raise SystemExit(f"check_bundle_row: error: the bundle's inference failed: {r.stderr.strip()[-500:]}")
        opts = None
        print(f"{Path(a.bundle).name} against {rows_path.relative_to(ROOT)}, {len(rows)} seeded pairs:")
        print("| moving | fixed | DSC bundle / row | HD bundle / row | ASSD bundle / row |")
        print("|---|---|---|---|---|")
        diffs = []
        for row in rows:
            d = out / f"{row['moving']}__{row['fixed']}"
            vec = itk.array_from_image(itk.imread(str(d / "ddf.nii.gz")))  # (H, W, 2): physical (x, y) of a PNG
            ddf = torch.from_numpy(np.stack([vec[..., 1], vec[..., 0]]).astype(np.float32))[None]
            mm = torch.from_numpy(load_mask(data / "masks" / f"{row['moving']}.png").astype(np.float32))[None, None]
            fm = torch.from_numpy(load_mask(data / "masks" / f"{row['fixed']}.png").astype(np.float32))[None, None]
            m = score_field(ddf, mm, fm)
            got = {k: float(m[k][0]) for k in ("dsc", "hd", "assd")}
            want = {k: float(row[k]) for k in ("dsc", "hd", "assd")}
            diffs.append({k: got[k] - want[k] for k in got})
            opts = opts or json.loads((d / "metrics.json").read_text())["options"]
            print(f"| {row['moving']} | {row['fixed']} | " + " | ".join(
                f"{got[k]:.4f} / {want[k]:.4f}" for k in ("dsc", "hd", "assd")) + " |")
    worst = {k: max(abs(x[k]) for x in diffs) for k in ("dsc", "hd", "assd")}
    print(f"largest |bundle - row|: DSC {worst['dsc']:.5f}, HD {worst['hd']:.3f}, ASSD {worst['assd']:.4f}")
    print(f"bundle options: {json.dumps(opts)}")
    if worst["dsc"] > a.dsc_tol:
        print(f"check_bundle_row: DSC differs by more than {a.dsc_tol}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
