"""The search's contract, which every registered tuner must honour (after Optuna's sampler contract suites).

- ended trials never exceed the cap;
- a resumed search runs only new trials;
- with a time budget, no trial starts after the start-by time (the first
  one always runs) and running trials stop at the stop-at time, in one
  process and with 2 worker processes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import search_spaces
from search_spaces.base import SpaceContext
from tests.conftest import make_dataset, run_cli
from tuning import search
from tuning.records.run_files import RunFiles
from tuning.search import tuners
from tuning.search.budget import TimeBudget
from tuning.training.pipeline import DatasetFeeder

try:
    import torch  # noqa: F401

    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False


def every_tuner():
    for name in tuners.TUNERS.names():
        marks = [pytest.mark.skip(reason="Optuna's GPSampler needs PyTorch (pip install -e '.[gp]')")] if (
            name == "gp" and not HAVE_TORCH) else []
        yield pytest.param(name, marks=marks)


def plan_for(tmp_path: Path, tuner: str, trials: int, budget: TimeBudget | None = None) -> search.SearchPlan:
    files = RunFiles(tmp_path / "checkpoints" / "run", tmp_path / "logs" / "run")
    files.run_dir.mkdir(parents=True, exist_ok=True)
    return search.SearchPlan(
        tuner=tuner, trials=trials, max_epochs=3, patience=3, max_failures=5, keep_checkpoints="best",
        local_share=0.75, files=files, study_name="run", budget=budget,
    )  # fmt: skip


def searched(plan: search.SearchPlan) -> search.SearchOutcome:
    dataset = make_dataset()
    space = search_spaces.get("dense")(SpaceContext.for_dataset(dataset, batch_size=32, epochs=plan.max_epochs))
    return search.run_search(plan, space, DatasetFeeder(dataset), seed=1, say=lambda line: None, freeze_setup=True)


def ended_trials(plan: search.SearchPlan) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in plan.files.run_dir.glob("trial_*/trial.json")
            if json.loads(p.read_text())["status"] in ("COMPLETED", "FAILED")}  # fmt: skip


@pytest.mark.parametrize("tuner", every_tuner())
def test_ended_trials_never_exceed_the_cap(tuner, tmp_path):
    plan = plan_for(tmp_path, tuner, trials=3)
    outcome = searched(plan)
    assert sum(outcome.counts.values()) == 3
    assert len(ended_trials(plan)) == 3


@pytest.mark.parametrize("tuner", every_tuner())
def test_a_resumed_search_runs_only_new_trials(tuner, tmp_path):
    searched(plan_for(tmp_path, tuner, trials=2))
    first = ended_trials(plan_for(tmp_path, tuner, trials=2))
    outcome = searched(plan_for(tmp_path, tuner, trials=3))
    again = ended_trials(plan_for(tmp_path, tuner, trials=3))
    assert sum(outcome.counts.values()) == 3 and len(again) == 3
    assert {k: again[k] for k in first} == first  # the first two were not run again


@pytest.mark.parametrize("tuner", every_tuner())
def test_under_a_spent_budget_one_trial_starts_and_stops_after_its_first_epoch(tuner, tmp_path):
    spent = TimeBudget(began=time.time() - 1000, seconds=100, final_epochs=1)  # start-by and stop-at have passed
    plan = plan_for(tmp_path, tuner, trials=5, budget=spent)
    outcome = searched(plan)
    assert sum(outcome.counts.values()) == 1  # the first trial always runs; no other starts
    assert outcome.trial_epochs == {"min": 1, "max": 1}  # it stopped at its first epoch's end, not at 3


@pytest.mark.parametrize("tuner", ["random", pytest.param("tpe", marks=pytest.mark.slow)])
def test_with_two_workers_trials_stop_at_the_budget_too(tuner, tmp_path):
    # --time-budget 0.02 is 1.2 s: spent before the workers start, so one trial runs and
    # its worker stops it after its first epoch (the worker once ran it to --max-epochs).
    done = run_cli(["digits", "--tuner", tuner, "--workers", "2", "--trials", "4", "--max-epochs", "3",
                    "--time-budget", "0.02", "--seed", "0", "--final-epochs", "1", "--mc-passes", "2"],
                   tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = tmp_path / "checkpoints" / f"digits-{tuner}"
    trials = [json.loads(p.read_text()) for p in run_dir.glob("trial_*/trial.json")]
    assert len(trials) == 1
    observations = trials[0]["metrics"]["metrics"]["val_accuracy"]["observations"]
    assert [o["step"] for o in observations] == [0]  # one epoch
