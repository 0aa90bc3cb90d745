"""Training-run summaries (validation history) and ``cxreg benchmark``."""

from __future__ import annotations

import json
import time

import pytest
import torch
from ignite.engine import Engine, Events
from ignite.metrics import Average

from bundle.workflow import RunSummary, first_reaching


def _engines(metric_of_epoch):
    """A trainer (3 iterations per epoch) that validates after every epoch; the evaluator's key metric is
    ``metric_of_epoch(trainer epoch)``."""
    trainer = Engine(lambda e, b: time.sleep(0.01))
    evaluator = Engine(lambda e, b: torch.tensor(metric_of_epoch(trainer.state.epoch)))
    Average().attach(evaluator, "val_mean_dice")
    evaluator.state.key_metric_name = "val_mean_dice"
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: evaluator.run([0, 1]))
    return trainer, evaluator


def test_run_summary_records_validation_history(tmp_path):
    path = tmp_path / "summary.json"
    trainer, evaluator = _engines(lambda ep: 0.3 * ep)
    RunSummary(str(path), evaluator, extra={"dataset": "TOY"}).attach(trainer)
    trainer.run([0, 1, 2], max_epochs=4)
    s = json.loads(path.read_text())
    assert s["completed"] is True and s["epochs"] == 4 and s["iterations"] == 12 and s["dataset"] == "TOY"
    assert s["key_metric"] == "val_mean_dice"
    h = s["history"]
    assert [e["epoch"] for e in h] == [1, 2, 3, 4] and [e["iteration"] for e in h] == [3, 6, 9, 12]
    assert [round(e["metric"], 6) for e in h] == [0.3, 0.6, 0.9, 1.2]
    secs = [e["seconds"] for e in h]
    assert all(b > a for a, b in zip(secs, secs[1:])) and 0.03 <= secs[0] < secs[-1] <= s["wall_seconds_total"]
    assert first_reaching(h, 0.95)["epoch"] == 4 and first_reaching(h, 2.0) is None


def test_run_summary_written_after_each_validation_and_continued_on_resume(tmp_path):
    path = tmp_path / "summary.json"
    seen = []
    trainer, evaluator = _engines(lambda ep: ep / 10)
    RunSummary(str(path), evaluator).attach(trainer)
    # after the first validation the file already holds it (an interrupted run keeps its history)
    trainer.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: seen.append(json.loads(path.read_text())))
    trainer.run([0, 1, 2], max_epochs=2)
    assert seen[0]["completed"] is False and len(seen[0]["history"]) == 1
    first = json.loads(path.read_text())

    # a resumed run: a checkpoint loader restores epoch 2 when the trainer starts, the history goes on from there
    trainer, evaluator = _engines(lambda ep: ep / 10)
    trainer.add_event_handler(Events.STARTED, lambda e: e.load_state_dict(
        {"epoch": 2, "max_epochs": 3, "epoch_length": 3}))
    RunSummary(str(path), evaluator).attach(trainer)
    trainer.run([0, 1, 2], max_epochs=3)
    s = json.loads(path.read_text())
    assert [e["epoch"] for e in s["history"]] == [1, 2, 3]
    assert s["history"][:2] == first["history"]
    assert s["history"][2]["seconds"] > first["wall_seconds_total"]
    assert s["wall_seconds_total"] > s["wall_seconds_this_run"]


# ------------------------------------------------------------------------------------------ cxreg benchmark
def test_benchmark_tiny_run_table_is_consistent(tmp_path):
    """``cxreg benchmark --pairs 2`` on a synthetic data set with untrained models: every number in the report
    comes from the measured times (speed-up = ratio of the reported medians), and the chart is written."""
    pytest.importorskip("ants")
    import re

    from PIL import Image

    from bundle.cli import main
    from bundle.networks import LungSegNet, MultiScaleRegNet
    from bundle.registration import RegSettings

    from .conftest import make_dataset

    data = tmp_path / "data"
    make_dataset(data, "TOY", n=6, size=64)
    torch.manual_seed(0)
    torch.save({"model": MultiScaleRegNet().state_dict(), "settings": RegSettings(work_size=32).__dict__},
               tmp_path / "reg.pt")
    torch.save(LungSegNet(work_size=128).state_dict(), tmp_path / "seg.pt")
    out, raw, runs = tmp_path / "docs" / "benchmarks.md", tmp_path / "res.json", tmp_path / "runs"
    # a finished run whose RunSummary history crosses 0.95 at its 3rd validation, after 150 s
    hist = [{"epoch": e, "iteration": 10 * e, "seconds": 50.0 * e, "metric": m}
            for e, m in ((1, 0.90), (2, 0.94), (3, 0.951), (4, 0.96))]
    (runs / "registration_TOY").mkdir(parents=True)
    (runs / "registration_TOY" / "summary.json").write_text(json.dumps({"history": hist, "wall_seconds_total": 200.0}))

    assert main(["benchmark", "--dataset", "TOY", "--data-dir", str(data), "--pairs", "2", "--model",
                 str(tmp_path / "reg.pt"), "--seg-model", str(tmp_path / "seg.pt"), "--ae-model", "none",
                 "--device", "cpu", "--train-iters", "2", "--profile-pairs", "1", "--runs-dir", str(runs),
                 "--methods", "syn", "--out", str(out), "--json", str(raw), "--note", "placeholder", "--quiet"]) == 0
    r = json.loads(raw.read_text())
    md = out.read_text()

    def row(label):
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {label} |"))
        return [c.strip() for c in line.strip("|").split("|")]

    b1 = r["ours_b1"]["times"]
    assert b1["n"] == 2 and b1["median_ms"] > 0 and b1["p90_ms"] >= b1["median_ms"]
    cells = row("ours, batch 1")
    assert float(cells[2]) == round(b1["median_ms"], 1) and 0 < float(cells[5]) == round(r["ours_b1"]["peak_rss_mib"])
    # the four timed stages of a pair (its end-to-end time is their sum, by construction), each taking time
    assert list(r["ours_b1"]["stages_median_ms"]) == ["load images and masks", "lung masks (2 images)",
                                                      "field on the fixed grid", "warp mask and metrics"]
    assert all(v > 0 for v in r["ours_b1"]["stages_median_ms"].values())
    bat = r["ours_batched"]
    assert bat["n_pairs"] == 30 and bat["n_images"] == 6  # all ordered pairs of the 6 test images
    assert abs(bat["pairs_per_s"] * bat["ms_per_pair"] - 1000) < 1e-6
    # elastix runs through the same per-pair worker as SyN; it is left out here only because importing ITK and its
    # fixed iteration counts cost ~30 s even on 64 x 64 images (the elastix wrapper is tested in test_baselines.py)
    assert "elastix" not in r and "elastix (B-spline)" not in md
    for m, label in (("syn", "ANTs SyN"),):
        t = r[m]["times"]
        assert t["n"] == 2 and 0 <= r[m]["dsc_mean"] <= 1
        med = float(row(label)[2])
        assert med == round(t["median_ms"], 1)
        sp = r["speedup"][m]
        assert sp["b1"] == t["median_ms"] / b1["median_ms"] and sp["batched"] == t["median_ms"] / bat["ms_per_pair"]
        shown = re.search(rf"\| ours \(batch 1\) >= 50x faster than {re.escape(label)} \| ([0-9.]+)x \| (.*) \|", md)
        assert float(shown.group(1)) == round(sp["b1"], 1)
        assert ("not met" in shown.group(2)) == (sp["b1"] < 50)
    tr = r["train"]
    assert tr["registration"]["iterations"] == 2 and tr["registration"]["items_per_s"] > 0
    assert tr["registration"]["items_per_s"] == pytest.approx(2 * 32 / tr["registration"]["seconds"])
    assert tr["segmentation"]["iterations"] >= 2 and tr["segmentation"]["unit"] == "images/s"
    h = r["history"]
    assert [x["run"] for x in h] == ["registration_TOY"] and h[0]["epoch"] == 3 and h[0]["minutes"] == 2.5
    assert "| registration bundle to validation DSC 0.95 in < 5 min | 2.5 min | met |" in md
    assert md.splitlines()[2] == "> **placeholder**" and "Machine: " in md and "torch" in md
    png = out.parent / "img" / "benchmark_TOY.png"
    assert Image.open(png).size[0] == 760 and "img/benchmark_TOY.png" in md


def test_benchmark_bad_options_are_one_line_errors(tmp_path, capsys):
    from bundle.cli import main

    assert main(["benchmark", "--methods", "elastix,foo", "--out", str(tmp_path / "b.md")]) == 1
    assert main(["benchmark", "--out", str(tmp_path / "b.txt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "foo" in err[0] and "b.txt" in err[1]
    assert not (tmp_path / "b.md").exists()


def test_benchmark_times_refinement_at_batch_1(tmp_path):
    """``--refine N`` reaches the batch-1 and batched workers (gradient steps cannot run under
    ``torch.inference_mode``, which the timings without refinement use) and changes the fields they time."""
    from bundle.benchmark import _worker_ours_b1, _worker_ours_batched, render_markdown
    from bundle.networks import LungSegNet, MultiScaleRegNet
    from bundle.registration import RegSettings

    from .conftest import make_dataset

    data = tmp_path / "data"
    make_dataset(data, "TOY", n=4, size=256)  # at 256 the refined fields move by whole pixels
    torch.manual_seed(0)
    torch.save({"model": MultiScaleRegNet().state_dict(), "settings": RegSettings(work_size=32).__dict__},
               tmp_path / "reg.pt")
    torch.save(LungSegNet(work_size=128).state_dict(), tmp_path / "seg.pt")
    args = {"dataset": "TOY", "data_dir": str(data), "pairs": 2, "seed": 0, "device": "cpu",
            "model": str(tmp_path / "reg.pt"), "seg_model": str(tmp_path / "seg.pt"), "profile_pairs": 1}
    plain, refined = _worker_ours_b1(args), _worker_ours_b1({**args, "refine": 10, "refine_mask_weight": 40.0})
    assert plain["times"]["n"] == refined["times"]["n"] == 2
    assert refined["dsc_mean"] != plain["dsc_mean"]  # the refinement ran and moved the fields
    bat = _worker_ours_batched({**args, "refine": 3, "refine_mask_weight": 40.0})
    assert bat["n_pairs"] == 12 and 0 <= bat["dsc_mean"] <= 1
    assert bat["dsc_mean"] != _worker_ours_batched(args)["dsc_mean"]  # the batched worker refines too
    res = {"dataset": "TOY", "pairs": 2, "seed": 0, "device": "cpu", "started": "now", "wall_s": 1.0,
           "machine": refined["machine"], "model": "reg.pt", "seg_model": "seg.pt", "refine": 10,
           "refine_mask_weight": 40.0, "ours_b1": refined, "ours_batched": bat, "speedup": {}}
    md = render_markdown(res)
    assert ("Ours: registration model `reg.pt`, lung masks `seg.pt`, test-time refinement: 10 steps per pair at "
            "128 x 128 (mask weight 40).") in md
    assert "test-time refinement: off." in render_markdown({**res, "refine": 0})
