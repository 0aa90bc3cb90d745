"""bundle.handlers.ValidateAtEnd on a bare ignite Engine: when the extra validation after the last epoch runs."""
import json

import pytest

ignite = pytest.importorskip("ignite")
from ignite.engine import Engine, Events  # noqa: E402

from bundle.handlers import ValidateAtEnd  # noqa: E402


class Validator(Engine):
    """An evaluator that records the epochs it is run for (MONAI's ``Evaluator.run(global_epoch)`` ends with
    ``state.epoch == global_epoch``)."""

    def __init__(self):
        super().__init__(lambda e, b: None)
        self.calls = []

    def run(self, epoch):
        self.calls.append(epoch)
        self.state.epoch = epoch
        self.fire_event(Events.COMPLETED)


def _trainer(validator, interval, terminate_at=None, resume_finished=False, key_metric_file=None):
    eng = Engine(lambda e, b: None)
    ValidateAtEnd(validator, interval, key_metric_file).attach(eng)
    if terminate_at:
        eng.add_event_handler(Events.ITERATION_COMPLETED(once=terminate_at), lambda e: e.terminate())
    if resume_finished:  # what MONAI's CheckpointLoader does for a finished run: state restored at STARTED
        eng.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "epoch", e.state.max_epochs))
    return eng


@pytest.mark.parametrize("max_epochs,interval,calls", [(2, 5, [2]), (3, 2, [3]), (4, 2, []), (4, 1, [])])
def test_validates_after_a_last_epoch_that_was_not_a_validation_epoch(max_epochs, interval, calls):
    v = Validator()
    _trainer(v, interval).run(range(4), max_epochs=max_epochs)
    assert v.calls == calls  # 4 % 2 == 0: ValidationHandler already validated epoch 4


def test_not_after_a_terminated_run_nor_a_resumed_finished_one(tmp_path):
    v = Validator()
    _trainer(v, 5, terminate_at=6).run(range(4), max_epochs=2)  # stopped inside the last epoch
    assert v.calls == []
    _trainer(v, 5, resume_finished=True).run(range(4), max_epochs=2)  # nothing left to train
    assert v.calls == []
    # stopped inside the last epoch before any validation wrote the best model: still not validated
    _trainer(v, 5, terminate_at=6, key_metric_file=tmp_path / "model.pt").run(range(4), max_epochs=2)
    assert v.calls == []


def test_a_resumed_finished_run_without_its_best_model_is_validated(tmp_path):
    """Killed during its final validation, a run has its last checkpoint but no ``model.pt``: the rerun (nothing
    left to train) validates to write it, instead of failing at the export; with the file there it does not."""
    best = tmp_path / "model.pt"
    v = Validator()
    _trainer(v, 5, resume_finished=True, key_metric_file=best).run(range(4), max_epochs=2)
    assert v.calls == [2]
    best.write_bytes(b"x")
    _trainer(v, 5, resume_finished=True, key_metric_file=best).run(range(4), max_epochs=2)
    assert v.calls == [2]
    # a fresh run's own last-epoch validation happens once, file or not
    _trainer(v, 5, key_metric_file=tmp_path / "none.pt").run(range(4), max_epochs=2)
    assert v.calls == [2, 2]


def test_a_rerun_validates_a_last_epoch_that_an_earlier_best_model_does_not_cover(tmp_path):
    """``model.pt`` from epoch 5's validation, killed during the final validation of epoch 7 (7 % 5 != 0): the
    rerun validates epoch 7 instead of exporting epoch 5's model as the run's best; once
    ``final_validation.json`` names epoch 7 a further rerun validates nothing."""
    best, rec = tmp_path / "model.pt", tmp_path / "final_validation.json"
    v = Validator()
    _trainer(v, 5, key_metric_file=best).run(range(4), max_epochs=5)  # ValidationHandler's epoch: not ours
    assert v.calls == []
    v.run(5)  # what MONAI's ValidationHandler does at epoch 5
    best.write_bytes(b"epoch 5")
    assert json.loads(rec.read_text()) == {"epoch": 5}
    _trainer(v, 5, resume_finished=True, key_metric_file=best).run(range(4), max_epochs=7)
    assert v.calls == [5, 7] and json.loads(rec.read_text()) == {"epoch": 7}
    _trainer(v, 5, resume_finished=True, key_metric_file=best).run(range(4), max_epochs=7)
    assert v.calls == [5, 7]
    # without key_metric_file nothing is recorded and a rerun validates nothing (the 0.5.7 behaviour)
    rec.unlink()
    _trainer(v, 5, resume_finished=True).run(range(4), max_epochs=7)
    assert v.calls == [5, 7] and not rec.exists()
