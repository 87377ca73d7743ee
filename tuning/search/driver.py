"""The search, behind one door: `SearchPlan` in, `run_search`, `SearchOutcome` out.

Owns: running a search in this process (its `SearchPlan`, in
`tuning.search.plan`, is built from the command line by `tuning.service`),
with the trials driven here or, for a chief, by whoever serves them to
workers (`drive`, from `tuning.distributed.chief`); turning the stop after
too many failed trials in a row into one line; and what the search found
(`SearchOutcome`, with the configuration `tuning.search.selection` chose to
retrain). The pieces are `tuning.search.tuners` (the tuners),
`tuning.search.optuna_oracle`, `tuning.search.proposals` and
`tuning.search.budget`. Like them, it never imports the command line,
`tuning.config`, `tuning.service` or `tuning.distributed` (the layer above
it). Does not own: the data, the space, or what happens after the search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from tuning.errors import RunError, TuningError, first_line
from tuning.records import hparams, trial_times
from tuning.records.events import Listener, Say
from tuning.search import failures, selection, tuners
from tuning.search.budget import BudgetClock
from tuning.search.plan import SearchPlan
from tuning.training import callbacks

# How a chief runs its trials instead of this process: `drive(tuner, clock)` (`tuning.distributed.chief`).
Drive = Callable[[Any, Optional[BudgetClock]], None]

__all__ = ["SearchPlan", "SearchOutcome", "Drive", "run_search", "make_tuner", "trial_callbacks"]


@dataclass(frozen=True)
class SearchOutcome:
    """What a search found, and what the retraining, the card and the dashboard need of it.

    Args:
        trial: The trial whose configuration is retrained.
        hyperparameters: Its hyperparameters (Keras Tuner's, with the space).
        kept_defaults: Why the defaults were kept over a better-scoring trial, or None.
        counts: Trials by status, e.g. `{"COMPLETED": 7, "PRUNED": 2}`.
        seconds_per_epoch: A steady epoch of the chosen trial, when this process ran it.
        wall_seconds: The search's wall time in this process.
        fidelity: What the search ran, in words.
        trial_epochs: The fewest and most epochs the trials trained.
        trial_scores: Each ended trial's score in end order; None when it failed.
        trial_seconds: Each of those trials' wall time.
        session_table: The HParams columns of the space.
        search_paid: Under a time budget, whether the search could pay for
            trials beyond the first (`TimeBudget.search_pays`); None without one.
        defaults_to_compare: The space's defaults' trial when the search chose another configuration
            (`selection.defaults_to_compare`), for the retraining's final rung; None otherwise.
        costly_share: The share of trial time spent on configurations whose
            epochs cost more than `selection.COSTLY` times the first trial's (the
            defaults' on a fresh run), over the trials this process timed; None when unknown.
    """

    trial: Any
    hyperparameters: Any
    kept_defaults: Optional[str]
    counts: dict
    seconds_per_epoch: Optional[float]
    wall_seconds: float
    fidelity: str
    trial_epochs: Optional[dict]
    trial_scores: list
    trial_seconds: list
    session_table: list
    search_paid: Optional[bool] = None
    costly_share: Optional[float] = None
    defaults_to_compare: Any = None

    @property
    def score(self) -> float:
        return float(self.trial.score)

    @property
    def mean_trial_seconds(self) -> Optional[float]:
        times = [s for s in self.trial_seconds if s]
        return round(sum(times) / len(times), 2) if times else None


def run_search(plan: SearchPlan, hypermodel, feeder, seed: int, say: Say = print,
               listen: Optional[Listener] = None, drive: Optional[Drive] = None,
               freeze_setup: bool = False) -> SearchOutcome:  # fmt: skip
    """Runs the search of `plan` in this process, or as a chief serving its workers, and chooses what to retrain.

    Args:
        plan: The search; `plan.role` is `local` or `chief`.
        hypermodel: The search space, bound to the dataset.
        feeder: The train and validation feeders.
        seed: Seed of the oracle and of every trial.
        say: Where progress lines go. Defaults to `print`.
        listen: Receives each trial's events (`tuning.records.events`). Defaults to None.
        drive: Runs the trials instead of this process, as a chief serving
            workers does (`tuning.distributed.chief.serve_workers`). Defaults
            to None (this process runs them).
        freeze_setup: Once the tuner is built, exempt every object alive from
            garbage collection (`tuners.exempt_setup_from_gc`), so that each
            trial's collections stay short. Process-wide: a run's process asks
            for it, a test or a notebook need not. Defaults to False.
    """
    clock = BudgetClock(plan.budget) if plan.budget is not None else None
    tuner = make_tuner(plan, hypermodel, feeder, seed, say, listen, clock)
    if freeze_setup:
        tuners.exempt_setup_from_gc()
    finished_before = len(tuner.oracle.end_order)
    if finished_before:
        say(f"resuming {plan.study_name}: {finished_before} trial(s) already finished")
    say(f"searching {plan.space} with {plan.tuner}: {tuners.describe_fidelity(tuner.oracle, plan.trials, plan.max_epochs)}; "
        f"TensorBoard: tensorboard --logdir {plan.files.log_dir}")  # fmt: skip
    hparams.write_experiment(plan.files.log_dir, tuner.session_table)
    started = time.monotonic()
    _reconcile_study(tuner.oracle, say, ending=False)
    with _failures_in_a_row(tuner.oracle, plan.max_failures):
        if drive is not None:
            drive(tuner, clock)
        else:
            tuner.search(epochs=plan.max_epochs, callbacks=trial_callbacks(plan, clock), verbose=0)
    _reconcile_study(tuner.oracle, say, ending=True)
    return _outcome(tuner, plan, time.monotonic() - started, feeder.val.size, say, clock)


def _reconcile_study(oracle, say: Say, ending: bool) -> None:
    """Settles the Optuna trials an earlier process left RUNNING (`OptunaOracle.reconcile`); Keras Tuner's oracles have none."""
    reconcile = getattr(oracle, "reconcile", None)
    settled = reconcile(ending=ending) if reconcile is not None else 0
    if settled:
        say(f"settled {settled} Optuna trial(s) that {'no process was running' if ending else 'an earlier process left running'}")


def make_tuner(plan: SearchPlan, hypermodel, feeder, seed: int, say: Say, listen: Optional[Listener] = None,
               clock: Optional[BudgetClock] = None):  # fmt: skip
    """The run's tuner (`tuning.search.tuners.make_tuner`); a space that cannot build its defaults is one line."""
    try:
        return tuners.make_tuner(plan, hypermodel, feeder, seed, say, listen, clock)
    except (TuningError, KeyboardInterrupt):
        raise
    except Exception as error:  # Keras Tuner builds the default configuration to learn the space
        raise RunError(
            f"search space {plan.space!r} cannot build its default configuration: {first_line(error)}"
        ) from error


def trial_callbacks(plan: SearchPlan, clock: Optional[BudgetClock]) -> list:
    """Every trial's callbacks; under a budget, running trials stop at the clock's `stop_at()`, on workers too."""
    return callbacks.search_callbacks(plan.patience, plan.files.log_dir, clock.stop_at if clock is not None else None)


class _failures_in_a_row:
    """Turns the stop after `--max-failures` failed trials in a row into one line that says what to do.

    Keras Tuner raises a `RuntimeError` from `end_trial` when a run of failures
    reaches the limit; whether that is what happened is read from the oracle's
    record (`tuning.search.failures`), not from the error's wording.
    """

    def __init__(self, oracle, limit: int) -> None:
        self.oracle = oracle
        self.limit = limit

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is not None and issubclass(kind, RuntimeError) and failures.reached(self.oracle, self.limit):
            raise failures.error(self.oracle, self.limit) from None
        return False


def _outcome(tuner, plan: SearchPlan, seconds: float, validation_size: int, say: Say,
             clock: Optional[BudgetClock]) -> SearchOutcome:  # fmt: skip
    counts = selection.trial_counts(tuner.oracle)
    if not counts.get("COMPLETED"):
        raise RunError(f"no trial completed ({counts}); see the reasons above")
    chosen, kept_defaults = selection.choose_final(tuner.oracle, validation_size)
    if kept_defaults:
        say(kept_defaults)
    ended = [tuner.oracle.trials[t] for t in tuner.oracle.end_order]
    times = trial_times.read_all(plan.files.run_dir)
    return SearchOutcome(
        trial=chosen, hyperparameters=chosen.hyperparameters, kept_defaults=kept_defaults, counts=counts,
        seconds_per_epoch=tuner.seconds_per_epoch(chosen.trial_id), wall_seconds=seconds,
        fidelity=tuners.describe_fidelity(tuner.oracle, plan.trials, plan.max_epochs),
        trial_epochs=selection.trial_epochs(tuner, ended),
        trial_scores=[t.score if t.status == "COMPLETED" else None for t in ended],
        trial_seconds=[times.get(t.trial_id, 0.0) for t in ended], session_table=tuner.session_table,
        search_paid=None if clock is None else clock.budget.search_pays,
        costly_share=selection.costly_share(tuner, [t.trial_id for t in ended], [times.get(t.trial_id, 0.0) for t in ended]),
        defaults_to_compare=None if kept_defaults else selection.defaults_to_compare(tuner.oracle, chosen),
    )  # fmt: skip
