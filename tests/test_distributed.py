"""Work split across processes: ``--shard i/n``, rank-aware training batches, and the three bundles'
``multi_gpu_train.json`` run with torchrun on 2 CPU processes (gloo)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from bundle.distributed import drop_writers, parse_shard, rank_world, shard_items
from bundle.registration import RegistrationBatches

from .conftest import REPO, make_dataset


# ------------------------------------------------------------------------------------------------ --shard i/n
def test_parse_shard_and_torchrun_environment(monkeypatch):
    assert parse_shard("0/1") == (0, 1) and parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "1/0", "1/2/3"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert parse_shard(None) == rank_world() == (0, 1)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert parse_shard(None) == (2, 3) and shard_items(list(range(7))) == [2, 5]


@pytest.mark.parametrize("n_items,n", [(10, 3), (2, 4), (7, 7), (0, 2)])
def test_shards_partition_the_items(n_items, n):
    items = [f"p{k}" for k in range(n_items)]
    shards = [shard_items(items, f"{i}/{n}") for i in range(n)]
    assert sorted(sum(shards, [])) == sorted(items)  # every item in exactly one shard
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1


def test_evaluate_shards_cover_the_unsharded_pairs(tmp_path):
    from bundle.cli import main

    data = tmp_path / "data"
    make_dataset(data, "TOY", n=4, size=32)  # 12 ordered pairs

    def pairs(out):
        with open(out / "pairs.csv") as fh:
            return [(r["moving"], r["fixed"]) for r in csv.DictReader(fh)]

    common = ["evaluate", "--method", "identity", "--dataset", "TOY", "--data-dir", str(data), "--quiet"]
    assert main([*common, "--out", str(tmp_path / "all")]) == 0
    assert main([*common, "--out", str(tmp_path / "s0"), "--shard", "0/2"]) == 0
    assert main([*common, "--out", str(tmp_path / "s1"), "--shard", "1/2"]) == 0
    whole, s0, s1 = pairs(tmp_path / "all"), pairs(tmp_path / "s0"), pairs(tmp_path / "s1")
    assert len(whole) == 12 and len(s0) == len(s1) == 6
    assert sorted(s0 + s1) == sorted(whole) and not set(s0) & set(s1)
    assert json.loads((tmp_path / "s1" / "summary.json").read_text())["shard"] == "1/2"


def test_bad_shard_is_a_one_line_error(tmp_path, capsys):
    from bundle.cli import main

    data = tmp_path / "data"
    make_dataset(data, "TOY", n=3, size=32)
    out = tmp_path / "o"
    assert main(["evaluate", "--method", "identity", "--dataset", "TOY", "--data-dir", str(data), "--quiet",
                 "--out", str(out), "--shard", "2/2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--shard '2/2'" in err[0] and not out.exists()


def test_register_pairs_shards(tmp_path, monkeypatch):
    """``cxreg register --pairs P.csv --shard i/n`` registers exactly the i-th round-robin share of the rows."""
    import numpy as np
    from PIL import Image

    from bundle.cli import main
    from bundle.networks import LungSegNet, MultiScaleRegNet
    from bundle.registration import RegSettings

    from .conftest import lung_mask

    torch.manual_seed(0)
    torch.save({"model": MultiScaleRegNet().state_dict(), "settings": RegSettings(work_size=32).__dict__},
               tmp_path / "reg.pt")
    torch.save(LungSegNet(work_size=128).state_dict(), tmp_path / "seg.pt")
    names = []
    for k in range(3):
        m = lung_mask(48, shift=(k, -k))
        Image.fromarray((200 - 120 * m).astype(np.uint8)).save(tmp_path / f"i{k}.png")
        names.append(f"i{k}")
    rows = [(a, b) for a in names for b in names if a != b]  # 6 rows
    (tmp_path / "pairs.csv").write_text("moving,fixed\n" + "".join(f"{a}.png,{b}.png\n" for a, b in rows))
    # shards write into ONE output folder (as a cluster job would), each with its own summary file;
    # shard 1 comes from torchrun's environment (RANK/WORLD_SIZE) instead of --shard
    out = tmp_path / "out"
    common = ["register", "--pairs", str(tmp_path / "pairs.csv"), "--out", str(out), "--model",
              str(tmp_path / "reg.pt"), "--seg-model", str(tmp_path / "seg.pt"), "--quiet", "--device", "cpu"]
    assert main([*common, "--shard", "0/2"]) == 0
    first = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert first == sorted(f"{a}__{b}" for a, b in rows[0::2])
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(common) == 0
    done = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert done == sorted(f"{a}__{b}" for a, b in rows)  # every pair exactly once, nothing overwritten
    for i in range(2):
        summary = json.loads((out / f"summary_{i}of2.json").read_text())
        assert sorted(r["pair"] for r in summary) == sorted(f"{a}__{b}" for a, b in rows[i::2])
    assert main([*common, "--shard", "0/2"]) == 1  # its pair folders exist now: refused without --overwrite


# -------------------------------------------------------------------------------- rank-aware training batches
def test_registration_batches_rank_zero_is_the_single_process_stream():
    g = torch.Generator().manual_seed(0)
    imgs, masks = torch.rand(6, 1, 16, 16, generator=g), (torch.rand(6, 1, 16, 16, generator=g) > 0.5).float()
    single = RegistrationBatches(imgs, masks, masks, batches_per_epoch=2, batch_size=4, seed=3)
    r0 = RegistrationBatches(imgs, masks, masks, 2, 4, seed=3).for_rank(0)
    r1 = RegistrationBatches(imgs, masks, masks, 2, 4, seed=3, rank=1)
    for ds in (single, r0, r1):
        ds.set_epoch(2)
    for i in range(2):
        a, b, c = single[i], r0[i], r1[i]
        assert all(torch.equal(a[k], b[k]) for k in a)  # a 1-process run is unchanged by the rank option
        assert not torch.equal(a["moving"], c["moving"])  # another rank draws other pairs / affines
        assert c["moving"].shape == (4, 1, 16, 16)
    with pytest.raises(ValueError):
        single.for_rank(-1)


def test_drop_writers_keeps_only_non_writers_on_other_ranks(tmp_path):
    from monai.handlers import CheckpointLoader, LrScheduleHandler, StatsHandler

    from bundle.workflow import RunSummary

    net = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    lr, stats = LrScheduleHandler(torch.optim.lr_scheduler.StepLR(opt, 1)), StatsHandler()
    loader = CheckpointLoader(str(tmp_path / "x.pt"), {"model": net})
    summary = RunSummary(str(tmp_path / "s.json"))
    hs = [lr, None, stats, loader, summary]
    assert drop_writers(hs, rank=0) == [lr, stats, loader, summary]
    assert drop_writers(hs, rank=1) == [lr, loader]
    assert drop_writers(None, rank=1) == []


# --------------------------------------------------------------------------- torchrun, 2 processes, gloo, CPU
@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp") / "data"
    make_dataset(d, "TOY", n=6, size=64)
    return d


TINY = {
    "registration": ["--seg_model", "truth", "--lambda_ae", "0", "--attention", "False", "--work_size", "32",
                     "--batches_per_epoch", "3", "--batch_size", "4", "--val_pairs", "4"],
    "segmentation": ["--work_size", "32", "--batch_size", "2"],
    "autoencoder": ["--batch_size", "2"],
}


@pytest.mark.parametrize("name", ["registration", "segmentation", "autoencoder"])
def test_multi_gpu_train_on_two_cpu_processes(toy, tmp_path, name):
    cfg = REPO / "configs" / ("" if name == "registration" else name)
    out, dumps, epochs = tmp_path / "run", tmp_path / "ranks", 2
    dumps.mkdir()
    # test-only override: each rank saves the weights it holds after training, before the group is destroyed
    dump = tmp_path / "dump_ranks.json"
    dump.write_text(json.dumps({"finalize": [
        "$bundle.workflow.save_atomic({k: v.detach().cpu() for k, v in @network.module.state_dict().items()}, "
        f"os.path.join({str(dumps)!r}, 'rank%d.pt' % dist.get_rank()))",
        "$dist.is_initialized() and dist.destroy_process_group()"]}))
    files = [str(cfg / "train.json"), str(cfg / "multi_gpu_train.json"), str(dump)]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
           "run", "training", "--config_file", str(files), "--dataset", "TOY", "--data_dir", str(toy),
           "--output_dir", str(out), "--model_path", str(tmp_path / "model.pt"), "--max_epochs", str(epochs),
           "--val_interval", "1", "--val_fraction", "0.34", "--num_workers", "0", *TINY[name]]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=170)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-4000:]

    w0, w1 = (torch.load(dumps / f"rank{k}.pt", weights_only=True) for k in (0, 1))
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)  # DDP kept the ranks in step
    ck = torch.load(out / f"checkpoint_epoch={epochs}.pt", weights_only=True)
    assert all(torch.equal(ck["model"][k], w0[k]) for k in w0)  # rank 0's checkpoint holds those weights, unprefixed
    steps = {int(s["step"]) for s in ck["optimizer"]["state"].values()}
    # optimiser steps per epoch: registration draws 3 batches on each rank; segmentation and autoencoder split the 4
    # training images 2 per rank (DistributedSampler), so batch size 2 gives 1 step where one process takes 2
    n_train = {"registration": 3, "segmentation": 1, "autoencoder": 1}[name]
    assert steps == {epochs * n_train}

    # only rank 0 saves checkpoints and prints the validation metrics
    assert log.count("Saved checkpoint at epoch") == epochs
    assert log.count("Metrics -- ") == epochs * (2 if name != "registration" else 1)  # (train +) val per epoch
    assert (tmp_path / "model.pt").is_file()
    if name == "registration":
        s = json.loads((out / "summary.json").read_text())
        assert [h["epoch"] for h in s["history"]] == [1, 2] and all(0 < h["metric"] <= 1 for h in s["history"])
