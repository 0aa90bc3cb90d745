"""Training-run summaries (validation history) and ``cxreg benchmark``."""

from __future__ import annotations

import json
import time

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
