"""Splitting a `--time-budget` between the search and the retraining.

Owns: `TimeBudget`, the wall-clock times after which no trial starts, at
which running trials stop, and at which the retraining ends. The retraining
reserves the time of `RESERVED_MEMBERS` full-length retrainings of the
first trial's configuration (the space's defaults on a fresh run), measured
on that trial; the search gets the rest, within `MIN_SEARCH_SHARE` and
`MAX_SEARCH_SHARE` of the budget. So a short budget goes mostly to training
the strong default well, and a long one mostly to searching. Until that
trial has ended, the search may use up to `MAX_SEARCH_SHARE`. Does not own:
what is retrained or how many seeds (`tuning.evaluate.plan_retraining`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Retrainings the budget keeps room for: a two-member ensemble is the largest single step an
# ensemble takes (see the README, "Budget split"), and needs two full-length members.
RESERVED_MEMBERS = 2
MIN_SEARCH_SHARE = 0.10
MAX_SEARCH_SHARE = 0.60
# Trials stop this share of the budget after the last one may start.
STOP_MARGIN = 0.05
# The share of the time left that a retraining plan fills (`tuning.evaluate.PLAN_MARGIN`).
PLAN_MARGIN = 0.9


@dataclass
class TimeBudget:
    """The times that a budget of `seconds` from `began` sets for a run.

    Args:
        began: `time.time()` when the run started.
        seconds: The whole budget.
        final_epochs: Epochs of one full-length retraining.
    """

    began: float
    seconds: float
    final_epochs: int
    search_share: float = field(default=MAX_SEARCH_SHARE)

    @classmethod
    def of_minutes(cls, minutes: float, final_epochs: int, began: float | None = None) -> "TimeBudget":
        """The budget of a run that started at `began` (default: now) with `--time-budget minutes`."""
        return cls(time.time() if began is None else began, minutes * 60, final_epochs)

    def observe(self, seconds_per_epoch: float) -> None:
        """Sets the split from the measured epoch time of the configuration the retraining will most likely train."""
        reserve = RESERVED_MEMBERS * self.final_epochs * seconds_per_epoch / PLAN_MARGIN
        share = (self.seconds - reserve) / self.seconds
        self.search_share = min(MAX_SEARCH_SHARE, max(MIN_SEARCH_SHARE, share))

    def start_by(self) -> float:
        """`time.time()` after which no trial starts."""
        return self.began + max(0.0, self.search_share - STOP_MARGIN) * self.seconds

    def stop_at(self) -> float:
        """`time.time()` at which running trials stop (after the epoch that ends past it)."""
        return self.began + self.search_share * self.seconds

    def end(self) -> float:
        """`time.time()` at which the retraining stops, keeping its best epoch."""
        return self.began + self.seconds

    def describe(self) -> str:
        """One line for the header."""
        return (f"time budget {self.seconds / 60:g} min: the search gets at most {MAX_SEARCH_SHARE:.0%} of it, less once "
                f"the first trial shows what {RESERVED_MEMBERS} full retrainings of {self.final_epochs} epochs cost; "
                "the retraining fills the rest")  # fmt: skip
