"""The time budget's split: the retraining keeps room for two full-length members of the first trial's configuration."""

from __future__ import annotations

import copy

import pytest

from tuning import budget as budget_module
from tuning.budget import TimeBudget
from tuning.callbacks import Deadline


def test_before_the_first_trial_the_search_may_use_its_largest_share():
    budget = TimeBudget(began=1000.0, seconds=1200.0, final_epochs=30)
    assert budget.stop_at() == pytest.approx(1000 + 0.60 * 1200)
    assert budget.start_by() == pytest.approx(1000 + 0.55 * 1200)
    assert budget.end() == 2200.0


@pytest.mark.parametrize("seconds_per_epoch, share", [
    (10.0, (1200 - 2 * 30 * 10 / 0.9) / 1200),  # 667 s kept for two 30-epoch members: the search gets 44%
    (1.0, 0.60),                                 # cheap epochs: the search gets its largest share
    (30.0, 0.10),                                # costly epochs: the search still gets its smallest share
])  # fmt: skip
def test_the_first_trials_epoch_time_sets_the_split(seconds_per_epoch, share):
    budget = TimeBudget(began=0.0, seconds=1200.0, final_epochs=30)
    budget.observe(seconds_per_epoch)
    assert budget.search_share == pytest.approx(share)
    assert budget.end() - budget.stop_at() >= min(1200 * 0.4, 2 * 30 * seconds_per_epoch / 0.9) - 1e-6


def test_a_trials_deadline_follows_the_budget_it_was_copied_with():
    budget = TimeBudget(began=0.0, seconds=1200.0, final_epochs=30)
    deadline = Deadline(budget.stop_at)
    budget.observe(10.0)
    later = copy.deepcopy(deadline)  # Keras Tuner deep-copies callbacks at every trial's start
    assert later.at() == pytest.approx(budget.stop_at())
    assert budget_module.RESERVED_MEMBERS == 2
