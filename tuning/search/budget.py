"""Splitting a `--time-budget` between the search and the retraining.

Owns: `TimeBudget`, the wall-clock times after which no trial starts, at
which running trials stop, at which the retraining ends, and the time kept
after it for the test evaluation and the export. The retraining reserves
the time of `RESERVED_MEMBERS` members of `MEMBER_STRETCH` times
`--final-epochs` of the first trial's configuration (the space's defaults
on a fresh run), measured on that trial;
the search gets the rest, within `MIN_SEARCH_SHARE` and `MAX_SEARCH_SHARE`
of the budget. So a short budget goes mostly to training the strong default
well, and a long one mostly to searching. Until that trial has ended, the
search may use up to `MAX_SEARCH_SHARE`. When the search's share cannot pay
for `SEARCH_PAYS_TRIALS` full-length trials of that configuration, the
search ends with that first trial and its time goes to the retraining
(`search_pays`). A `TimeBudget` is frozen: the split after the first trial
is a new one (`observed`), and `BudgetClock` is the one mutable holder the
search reads the current split from. Does not own: what is retrained, or
how many members of how many epochs (`tuning.final.retraining.next_member_epochs`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Optional

# Retrainings the budget keeps room for: a two-member ensemble is the largest single step an
# ensemble takes, and needs two members of the length members aim for (`MEMBER_STRETCH`).
RESERVED_MEMBERS = 2
MIN_SEARCH_SHARE = 0.10
MAX_SEARCH_SHARE = 0.60
# The most members the retraining trains under a budget (`--final-seeds` unless given).
MAX_MEMBERS = 8
# Under a budget a member aims for `MEMBER_STRETCH` times `--final-epochs` before the time goes to more
# members, and is stretched to at most `MAX_STRETCH` times (`tuning.final.retraining` plans with both).
# On CIFAR-10 at 20 minutes one member of 53-60 epochs beat two of 22-35 in the same time, on
# validation (65.3-65.5% against 63.1-63.8%) and on test (64.4-65.2% against 63.0-64.3%; 4 runs of the
# defaults against 2 of them and 3 of the strong guess, `bench/results/accuracy-cifar10-*.json`), so a
# member of twice `--final-epochs` comes before two of it. Between one and two members' time, the one is
# stretched rather than split.
MEMBER_STRETCH = 2
MAX_STRETCH = 3

# Trials stop this share of the budget after the last one may start.
STOP_MARGIN = 0.05
# The share of the time left that the split reserves for the retraining's members; the rest
# covers building and tracing each member.
PLAN_MARGIN = 0.9
# A search must afford this many full-length trials of the first trial's configuration to run on:
# about one Hyperband bracket at --max-epochs 10 (12x2 -> 4x4 -> 2x10 epochs is 44 epochs), the least
# that takes any configuration to the top rung. Below that the winner would be judged after 2-4
# epochs, which ranks configurations unlike their retraining (bench/results/rungs-mnist.json), and
# the time is a tax on the retraining: the 20-minute CIFAR-10 search of 2 trials lost 1.6 points
# to the strong guess (bench/results/accuracy-cifar10-tuning-seed0.json, 49e38fd).
SEARCH_PAYS_TRIALS = 4
# What the split keeps for the test evaluation (MC dropout included) and the export; the
# retraining plans its own from measured times (`tuning.final.retraining.MemberPlanner`).
FINISH_SHARE = 0.02
MIN_FINISH_SECONDS = 15.0


def aimed_member_seconds(final_epochs: int, seconds_per_epoch: float) -> float:
    """A member of the aimed length as the planner guesses it before timing one: its epochs, an epoch and 2 s more."""
    return MEMBER_STRETCH * final_epochs * seconds_per_epoch + seconds_per_epoch + 2.0  # + building, tracing


@dataclass(frozen=True)
class TimeBudget:
    """The times that a budget of `seconds` from `began` sets for a run.

    Args:
        began: `time.time()` when the run started.
        seconds: The whole budget.
        final_epochs: Epochs of one full-length retraining.
        trial_epochs: Epochs of one full-length trial (`--max-epochs`). Defaults to 10.
        search_share: The share of the budget the search may use. Defaults
            to `MAX_SEARCH_SHARE` until the first trial's epoch time is known.
        search_pays: False once the first trial showed that the search's
            share cannot pay for `SEARCH_PAYS_TRIALS` full trials. Defaults to True.
        members: The most members the retraining trains. Defaults to `MAX_MEMBERS`.
    """

    began: float
    seconds: float
    final_epochs: int
    trial_epochs: int = 10
    search_share: float = field(default=MAX_SEARCH_SHARE)
    search_pays: bool = True
    members: int = MAX_MEMBERS

    @classmethod
    def of_minutes(cls, minutes: float, final_epochs: int, trial_epochs: int = 10,
                   began: float | None = None, members: int = MAX_MEMBERS) -> "TimeBudget":  # fmt: skip
        """The budget of a run that started at `began` (default: now) with `--time-budget minutes`."""
        return cls(time.time() if began is None else began, minutes * 60, final_epochs, trial_epochs, members=members)

    def observed(self, seconds_per_epoch: float, now: Optional[float] = None) -> "TimeBudget":
        """The split set from the measured epoch time of the configuration the retraining will most likely train.

        Args:
            seconds_per_epoch: A steady epoch of the first trial (its configuration).
            now: `time.time()` when the first trial ended. Defaults to now.
        """
        now = time.time() if now is None else now
        member = MEMBER_STRETCH * self.final_epochs * seconds_per_epoch
        reserve = RESERVED_MEMBERS * member / PLAN_MARGIN + self.finish_seconds
        share = min(self.most_search_share(seconds_per_epoch), max(MIN_SEARCH_SHARE, (self.seconds - reserve) / self.seconds))
        split = replace(self, search_share=share)
        affordable = (split.stop_at() - now) / (self.trial_epochs * seconds_per_epoch)
        if affordable < SEARCH_PAYS_TRIALS:
            return replace(split, search_pays=False, search_share=max(0.0, (now - self.began) / self.seconds))
        return split

    def most_search_share(self, seconds_per_epoch: float) -> float:
        """`MAX_SEARCH_SHARE`, or more when the retraining could not use the rest.

        The retraining trains at most `members` members (and a final rung's
        one more), each aiming for `MEMBER_STRETCH` times `final_epochs`; time
        beyond that would only stretch them further, so the search gets it.
        A 10-minute run on 4,000 rows of 40 numbers ended after 263 s: its search had its 60%,
        and 8 members of 60 epochs took 103 s (mnist1d, 144f8fd).

        Args:
            seconds_per_epoch: A steady epoch of the first trial (its configuration).
        """
        most = (self.members + 1) * aimed_member_seconds(self.final_epochs, seconds_per_epoch) / PLAN_MARGIN
        most += self.finish_seconds
        return max(MAX_SEARCH_SHARE, min(1.0 - MIN_SEARCH_SHARE, 1.0 - most / self.seconds))

    @property
    def finish_seconds(self) -> float:
        """Seconds the split keeps for the test evaluation and the export."""
        return max(MIN_FINISH_SECONDS, FINISH_SHARE * self.seconds)

    def start_by(self) -> float:
        """`time.time()` after which no trial starts."""
        margin = STOP_MARGIN if self.search_pays else 0.0
        return self.began + max(0.0, self.search_share - margin) * self.seconds

    def stop_at(self) -> float:
        """`time.time()` at which running trials stop (after the epoch that ends past it)."""
        return self.began + self.search_share * self.seconds

    def end(self) -> float:
        """`time.time()` at which the whole run should have ended."""
        return self.began + self.seconds

    def describe(self, default: bool = False) -> str:
        """One line for the header: how long the run may take and how the time is split.

        Args:
            default: Whether the budget is the default one, not the user's `--time-budget`.
        """
        origin = " (the default; --time-budget MINUTES changes it, --time-budget none lifts it)" if default else ""
        return (f"time budget {self.seconds / 60:g} min{origin}: the run ends by "
                f"{time.strftime('%H:%M', time.localtime(self.end()))}; the search gets at most {MAX_SEARCH_SHARE:.0%} "
                f"of it (more when the retraining could not use the rest), less once the first trial shows what "
                f"{RESERVED_MEMBERS} retrainings of {MEMBER_STRETCH * self.final_epochs} epochs cost, and none if it cannot afford "
                f"{SEARCH_PAYS_TRIALS} full trials; the retraining fills the rest")  # fmt: skip


class BudgetClock:
    """The search's current split of its time budget: the one thing about the budget that changes, and only once.

    The tuner's gate on new trials, the trials' deadlines and the split after
    the first trial all read and set the budget here, so the `SearchPlan`
    that carries the budget stays frozen.

    Args:
        budget: The budget as the run started.
    """

    def __init__(self, budget: TimeBudget) -> None:
        self.budget = budget

    def observe(self, seconds_per_epoch: float, now: Optional[float] = None) -> None:
        """Sets the split from the first trial's epoch time (`TimeBudget.observed`)."""
        self.budget = self.budget.observed(seconds_per_epoch, now)

    def start_by(self) -> float:
        """`time.time()` after which no trial starts, under the current split."""
        return self.budget.start_by()

    def stop_at(self) -> float:
        """`time.time()` at which running trials stop, under the current split."""
        return self.budget.stop_at()
