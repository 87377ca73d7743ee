"""What happens around a trial: each listener alone, over a stand-in tuner, and the order a search runs them in."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tuning.records import events
from tuning.search import trial_listeners
from tuning.search.budget import BudgetClock, TimeBudget
from tuning.search.trial_listeners import (
    BudgetSplit,
    CheckpointPruning,
    Forward,
    OptunaPruning,
    ProgressPrinter,
    Recycle,
    ReleaseGraphs,
    SessionWriter,
    WorkerRecycling,
    standard_listeners,
)  # fmt: skip


def ended(trial_id: str = "00", seconds: float = 3.0) -> events.TrialEnded:
    return events.TrialEnded(trial_id, "completed", 0.9, 2, seconds, time.time())


def stand_in_tuner(tmp_path: Path, ended_here: int = 1, best: str = "01", resumable=frozenset(),
                   per_epoch: float = 1.5) -> SimpleNamespace:  # fmt: skip
    """A tuner as listeners see it: its oracle, its counts and timings, its trial folders."""
    oracle = SimpleNamespace(end_order=["00", "01", "02"],
                             get_best_trials=lambda n: [SimpleNamespace(trial_id=best, status="COMPLETED")])  # fmt: skip
    return SimpleNamespace(
        oracle=oracle, trials_ended_here=ended_here, pruned_here={}, epochs_trained={"00": 2},
        seconds_per_epoch=lambda trial_id: per_epoch, get_trial_dir=lambda trial_id: str(tmp_path / f"trial_{trial_id}"),
        checkpoints_needed_to_resume=lambda: set(resumable),
    )  # fmt: skip


@pytest.mark.parametrize("keep, left", [("all", {"00", "01", "02"}), ("best", {"01", "02"}), ("none", {"02"})])
def test_checkpoints_are_kept_as_asked_and_what_resume_needs_always(tmp_path, keep, left):
    tuner = stand_in_tuner(tmp_path, best="01", resumable={"02"})
    for trial_id in ("00", "01", "02"):
        (tmp_path / f"trial_{trial_id}").mkdir()
        (tmp_path / f"trial_{trial_id}" / "checkpoint.weights.h5").write_bytes(b"w")
    CheckpointPruning(keep).trial_ended(tuner, None, ended())
    assert {p.parent.name[len("trial_"):] for p in tmp_path.glob("trial_*/checkpoint*")} == left


def test_a_worker_recycles_after_its_trials(tmp_path):
    recycling = WorkerRecycling(after=2)
    recycling.trial_ended(stand_in_tuner(tmp_path, ended_here=1), None, ended())
    with pytest.raises(Recycle):
        recycling.trial_ended(stand_in_tuner(tmp_path, ended_here=2), None, ended())


def test_the_budget_is_split_once_after_the_first_trial(tmp_path):
    clock = BudgetClock(TimeBudget(began=time.time(), seconds=3600.0, final_epochs=30, trial_epochs=10))
    said: list[str] = []
    split = BudgetSplit(clock, said.append)
    split.trial_ended(stand_in_tuner(tmp_path, ended_here=2, per_epoch=15.0), None, ended())  # not the first: nothing
    assert not said and clock.budget.search_share == 0.6
    split.trial_ended(stand_in_tuner(tmp_path, ended_here=1, per_epoch=15.0), None, ended())
    budget = clock.budget
    # Two members of 60 epochs (twice --final-epochs) at 15 s an epoch (2000 s with the planning margin)
    # and 72 s to finish leave the search (3600 - 2072) / 3600 of the hour: 25.5 minutes.
    assert budget.search_share == pytest.approx(1528 / 3600) and budget.search_pays
    assert said == ["time budget: the search gets 42% (25.5 min); the retraining keeps the rest, "
                    "at 15.0s an epoch"]


def test_pruning_stops_the_model_and_marks_the_trial(tmp_path):
    reports = []
    pruning = OptunaPruning(lambda trial_id, epoch, score: reports.append((trial_id, epoch, score)) or epoch >= 1)
    tuner, model, trial = stand_in_tuner(tmp_path), SimpleNamespace(stop_training=False), SimpleNamespace(trial_id="03")
    for epoch in (1, 2):
        pruning.epoch_ended(tuner, trial, model, events.EpochEnded("trial", "03", epoch, {"val_accuracy": 0.5}, 1.0, 0.0))
    assert reports == [("03", 0, 0.5), ("03", 1, 0.5)]  # Keras's 0-based epoch, as Optuna's step
    assert model.stop_training and tuner.pruned_here == {"03": 2}


def test_forward_hands_on_every_event(tmp_path):
    seen: list = []
    forward, tuner = Forward(seen.append), stand_in_tuner(tmp_path)
    started, epoch, end = (events.TrialStarted("00", 0.0), events.EpochEnded("trial", "00", 1, {}, 1.0, 0.0), ended())
    forward.trial_started(tuner, None, started)
    forward.epoch_ended(tuner, None, None, epoch)
    forward.trial_ended(tuner, None, end)
    assert seen == [started, epoch, end]


def kinds(listeners) -> list[type]:
    return [type(listener) for listener in listeners]


def test_a_search_runs_its_steps_in_order_and_a_worker_leaves_the_chiefs_to_the_chief(tmp_path):
    clock = BudgetClock(TimeBudget(began=0.0, seconds=60.0, final_epochs=3))
    local = standard_listeners(tmp_path, worker=False, say=print, total_trials=5, clock=clock, listen=print)
    assert kinds(local) == [ReleaseGraphs, SessionWriter, Forward, CheckpointPruning, ProgressPrinter, BudgetSplit]
    worker = standard_listeners(tmp_path, worker=True, say=print, total_trials=5, clock=clock, recycle_after=3)
    assert kinds(worker) == [ReleaseGraphs, SessionWriter, WorkerRecycling]
    assert kinds(trial_listeners.default_listeners(tmp_path)) == [ReleaseGraphs, SessionWriter]
