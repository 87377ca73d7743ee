"""The time budget's split: the retraining keeps room for two members of twice --final-epochs of the first
trial's configuration, and a search that cannot pay for itself ends with its first trial."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from tuning.search import budget as budget_module
from tuning.search.budget import BudgetClock, TimeBudget
from tuning.training.callbacks import Deadline


def test_before_the_first_trial_the_search_may_use_its_largest_share():
    budget = TimeBudget(began=1000.0, seconds=1200.0, final_epochs=30)
    assert budget.stop_at() == pytest.approx(1000 + 0.60 * 1200)
    assert budget.start_by() == pytest.approx(1000 + 0.55 * 1200)
    assert budget.end() == 2200.0
    assert budget.search_pays


@pytest.mark.parametrize("seconds_per_epoch, share", [
    (5.0, (1200 - 2 * 60 * 5 / 0.9 - 24) / 1200),    # 667 s kept for two members of 60 epochs, 24 s to finish: 42%
    (1.0, 0.60),                                      # cheap epochs: the search gets its largest share
])  # fmt: skip
def test_the_first_trials_epoch_time_sets_the_split(seconds_per_epoch, share):
    budget = TimeBudget(began=0.0, seconds=1200.0, final_epochs=30)
    budget = budget.observed(seconds_per_epoch, now=30.0)
    assert budget.search_pays
    assert budget.search_share == pytest.approx(share)
    assert budget.end() - budget.stop_at() >= min(1200 * 0.4, 2 * 60 * seconds_per_epoch / 0.9) - 1e-6


def test_a_search_that_cannot_afford_four_full_trials_ends_with_the_first():
    # CIFAR-10 under 20 minutes: 20 s an epoch, so two members of 60 epochs need twice the budget;
    # the search's 10% floor (120 s) holds 6 epochs, not 4 trials of 10.
    budget = TimeBudget(began=0.0, seconds=1200.0, final_epochs=30, trial_epochs=10)
    budget = budget.observed(20.0, now=45.0)
    assert not budget.search_pays
    assert budget.start_by() == pytest.approx(45.0) and budget.stop_at() == pytest.approx(45.0)


def test_the_threshold_is_four_full_trials_of_the_first_trials_cost():
    # 60% of 3600 s is 2160 s; from 100 s on, 2060 s hold 4 trials of 10 epochs at 51.5 s an epoch.
    pays = TimeBudget(began=0.0, seconds=3600.0, final_epochs=3, trial_epochs=10)
    pays = pays.observed(51.4, now=100.0)
    assert pays.search_pays and pays.search_share == pytest.approx(0.60)
    short = TimeBudget(began=0.0, seconds=3600.0, final_epochs=3, trial_epochs=10)
    short = short.observed(51.6, now=100.0)
    assert not short.search_pays
    assert budget_module.SEARCH_PAYS_TRIALS == 4


def test_a_trials_deadline_follows_the_clock_it_was_copied_with():
    clock = BudgetClock(TimeBudget(began=0.0, seconds=1200.0, final_epochs=30))
    deadline = Deadline(clock.stop_at)
    clock.observe(10.0, now=30.0)
    later = copy.deepcopy(deadline)  # Keras Tuner deep-copies callbacks at every trial's start
    assert later.at() == pytest.approx(clock.stop_at()) and clock.stop_at() < 0.6 * 1200


def test_a_budget_is_frozen_and_its_split_is_a_new_one():
    budget = TimeBudget(began=0.0, seconds=1200.0, final_epochs=30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.search_share = 0.1  # type: ignore[misc]
    split = budget.observed(10.0, now=30.0)
    assert budget.search_share == 0.60 and split.search_share < 0.60
    assert budget_module.RESERVED_MEMBERS == 2


def test_the_header_says_when_the_run_ends_and_how_to_lift_a_default_budget():
    budget = TimeBudget.of_minutes(55, final_epochs=30, trial_epochs=10, began=0.0)
    line = budget.describe(default=True)
    assert line.startswith("time budget 55 min (the default; --time-budget MINUTES changes it, --time-budget none lifts it)")
    assert "none if it cannot afford 4 full trials" in line
    assert "(the default" not in TimeBudget.of_minutes(20, 30, began=0.0).describe()


def test_the_search_gets_the_time_the_retraining_could_not_use():
    # mnist1d-like: 0.15 s an epoch, 8 members of at most 60 epochs (and a final rung's one more) take about 140 s of 600.
    cheap = TimeBudget(began=0.0, seconds=600.0, final_epochs=30).observed(0.15, now=5.0)
    members = 9 * (2 * 30 * 0.15 + 0.15 + 2.0) / budget_module.PLAN_MARGIN + cheap.finish_seconds
    assert cheap.search_pays and cheap.search_share == pytest.approx(1 - members / 600.0)
    assert cheap.search_share > 0.75
    # CIFAR-10-like epochs: the retraining could use far more than 40%, so the share stays at most 60%.
    dear = TimeBudget(began=0.0, seconds=1200.0, final_epochs=30).observed(1.0, now=5.0)
    assert dear.search_share == pytest.approx(0.60)
    # Fewer members (--final-seeds 2) leave the search more.
    few = TimeBudget(began=0.0, seconds=600.0, final_epochs=30, members=2).observed(0.5, now=5.0)
    assert few.search_share > TimeBudget(began=0.0, seconds=600.0, final_epochs=30).observed(0.5, now=5.0).search_share
