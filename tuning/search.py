"""The search, behind one door: `SearchPlan` in, `run_search` or `run_worker`, `SearchOutcome` out.

Owns: running a search (its `SearchPlan`, in `tuning.plan`, is built from the
command line by `tuning.service` and sent to worker processes as JSON) in one
process or as a chief serving workers, a worker's side of it (`join`: from
its `WorkerSpec` to its last trial, for `--role worker` on any host and for
the local worker processes of `tuning.worker`), turning the
stop after too many failed trials in a row into one line, and choosing, after the
search, the configuration to retrain (`SearchOutcome`). The pieces are
`tuning.tuners` (the tuners), `tuning.optuna_oracle`, `tuning.distributed`
(the chief's loop and the local worker pool), `tuning.proposals` and
`tuning.budget`. Like them, it never imports `tuning.config`, `tuning.run`
or `tuning.service`. Does not own: the data, the space, or what happens after
the search.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, replace
from typing import Any, Optional

import search_spaces
import tensorflow as tf
from search_spaces.base import SpaceContext
from tuning import callbacks, datasets, distributed, events, failures, hparams, selection, trial_listeners, trial_times, tuners
from tuning.budget import BudgetClock
from tuning.errors import RunError, TuningError, UsageError
from tuning.events import Listener, Say
from tuning.lock import RunLock
from tuning.pipeline import DatasetFeeder
from tuning.plan import SearchPlan, WorkerSpec
from tuning.run_files import choose_seed

__all__ = ["SearchPlan", "SearchOutcome", "WorkerResult", "run_search", "run_worker", "join"]


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

    @property
    def score(self) -> float:
        return float(self.trial.score)

    @property
    def mean_trial_seconds(self) -> Optional[float]:
        times = [s for s in self.trial_seconds if s]
        return round(sum(times) / len(times), 2) if times else None


@dataclass(frozen=True)
class WorkerResult:
    """What a worker of a distributed search did.

    Args:
        worker_id: Its name.
        trials_run: Trials it ran to the end (a retried one counts once).
        recycled: It stopped after `--recycle-after` trials, to be replaced.
    """

    worker_id: str
    trials_run: int
    recycled: bool = False


def run_search(plan: SearchPlan, hypermodel, feeder, seed: int, say: Say = print,
               listen: Optional[Listener] = None) -> SearchOutcome:  # fmt: skip
    """Runs the search of `plan` in this process, or as a chief serving its workers, and chooses what to retrain.

    Args:
        plan: The search; `plan.role` is `local` or `chief`.
        hypermodel: The search space, bound to the dataset.
        feeder: The train and validation feeders.
        seed: Seed of the oracle and of every trial.
        say: Where progress lines go. Defaults to `print`.
        listen: Receives each trial's events (`tuning.events`). Defaults to None.
    """
    clock = BudgetClock(plan.budget) if plan.budget is not None else None
    tuner = _make_tuner(plan, hypermodel, feeder, seed, say, listen, clock)
    finished_before = len(tuner.oracle.end_order)
    if finished_before:
        say(f"resuming {plan.study_name}: {finished_before} trial(s) already finished")
    say(f"searching {plan.space} with {plan.tuner}: {tuners.describe_fidelity(tuner.oracle, plan.trials, plan.max_epochs)}; "
        f"TensorBoard: tensorboard --logdir {plan.files.log_dir}")  # fmt: skip
    hparams.write_experiment(plan.files.log_dir, tuner.session_table)
    started = time.monotonic()
    _reconcile_study(tuner.oracle, say, ending=False)
    with _failures_in_a_row(tuner.oracle, plan.max_failures):
        if plan.role == "chief":
            _serve_workers(plan, tuner, seed, say, clock)
        else:
            tuner.search(epochs=plan.max_epochs, callbacks=_trial_callbacks(plan, clock), verbose=0)
    _reconcile_study(tuner.oracle, say, ending=True)
    return _outcome(tuner, plan, time.monotonic() - started, feeder.val.size, say, clock)


def _reconcile_study(oracle, say: Say, ending: bool) -> None:
    """Settles the Optuna trials an earlier process left RUNNING (`OptunaOracle.reconcile`); Keras Tuner's oracles have none."""
    reconcile = getattr(oracle, "reconcile", None)
    settled = reconcile(ending=ending) if reconcile is not None else 0
    if settled:
        say(f"settled {settled} Optuna trial(s) that {'no process was running' if ending else 'an earlier process left running'}")


def run_worker(plan: SearchPlan, hypermodel, feeder, seed: int, say: Say = print) -> WorkerResult:
    """Runs the trials the chief at `plan.oracle_address` hands out, until it says stop.

    Args:
        plan: The search; `plan.role` is `worker` and `plan.worker_id` names it.
        hypermodel: The search space, bound to the dataset.
        feeder: The train and validation feeders.
        seed: The chief's seed, so that trial `i` gets the same seed on any worker.
        say: Where messages go. Defaults to `print`.
    """
    distributed.set_tuner_environment(plan.worker_id, plan.oracle_host, plan.oracle_port)
    distributed.set_chief_timeout(plan.chief_timeout)
    # A worker's trials are its own to log: it appends their events to its host's events.jsonl.
    clock = BudgetClock(plan.budget) if plan.budget is not None else None
    tuner = _make_tuner(plan, hypermodel, feeder, seed, say, events.JsonLinesLog(plan.files.log_dir / events.EVENTS_FILE), clock)
    say(f"asking the chief at {plan.oracle_address} for trials")
    trials_run, recycled = distributed.work(
        tuner, plan, epochs=plan.max_epochs, callbacks=_trial_callbacks(plan, clock), verbose=0
    )
    return WorkerResult(plan.worker_id, trials_run, recycled)


def join(spec: WorkerSpec, say: Say = print) -> WorkerResult:
    """Joins the chief's search as one worker and runs its trials until it says stop.

    Waits for the chief's run file, checks that this worker may join (the
    same options and seed), loads the data, builds the space with the
    chief's learning-rate bounds, and runs the trials (`run_worker`).

    Args:
        spec: The worker's plan, its chief's data and space, its seed and threads.
        say: Where messages go. Defaults to `print`.
    """
    plan, template = spec.plan, spec.template
    files = plan.files
    files.wait_for_run_file(plan.chief_timeout, say)
    previous = files.previous(template.identity, overwrite=False, worker=True)
    if plan.budget is not None and previous.get("budget_began"):  # the chief's clock, not this worker's start
        plan = replace(plan, budget=replace(plan.budget, began=float(previous["budget_began"])))
    seed = choose_seed(None, previous, overwrite=False)
    if spec.seed is not None and spec.seed != seed:
        raise UsageError(f"--seed must match the chief's seed {seed}, but got seed={spec.seed}; drop --seed on workers")
    if spec.threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(spec.threads)
        tf.config.threading.set_inter_op_parallelism_threads(spec.threads)
    dataset = datasets.load_dataset(template.dataset, template.data_dir)
    lr_bounds = previous.get("learning_rate_bounds")
    with RunLock(files.run_dir, name=f".worker-{plan.worker_id}.lock"):
        context = SpaceContext.for_dataset(
            dataset, batch_size=template.batch_size, epochs=plan.max_epochs,
            learning_rate_bounds=tuple(lr_bounds) if lr_bounds else None,
            regularization_floor=bool(template.identity.get("regularization_floor")),
        )  # fmt: skip
        return run_worker(plan, search_spaces.get(template.space)(context), DatasetFeeder(dataset), seed, say)


def _make_tuner(plan: SearchPlan, hypermodel, feeder, seed: int, say: Say, listen: Optional[Listener] = None,
                clock: Optional[BudgetClock] = None):  # fmt: skip
    try:
        return tuners.make_tuner(plan, hypermodel, feeder, seed, say, listen, clock)
    except (TuningError, KeyboardInterrupt):
        raise
    except Exception as error:  # Keras Tuner builds the default configuration to learn the space
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise RunError(
            f"search space {plan.space!r} cannot build its default configuration: {type(error).__name__}: {first}"
        ) from error


def _trial_callbacks(plan: SearchPlan, clock: Optional[BudgetClock]) -> list:
    """Every trial's callbacks; under a budget, running trials stop at the clock's `stop_at()`, on workers too."""
    return callbacks.search_callbacks(plan.patience, plan.files.log_dir, clock.stop_at if clock is not None else None)


class _failures_in_a_row:
    """Turns the stop after `--max-failures` failed trials in a row into one line that says what to do.

    Keras Tuner raises a `RuntimeError` from `end_trial` when a run of failures
    reaches the limit; whether that is what happened is read from the oracle's
    record (`tuning.failures`), not from the error's wording.
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


def _serve_workers(plan: SearchPlan, tuner, seed: int, say: Say, clock: Optional[BudgetClock]) -> None:
    """Serves the search to workers (started here with `plan.workers`), then tidies the checkpoints."""
    port = plan.oracle_port or distributed.free_port(plan.oracle_host)
    distributed.set_tuner_environment(distributed.CHIEF_ID, plan.oracle_host, port)
    served = dataclasses.replace(plan, oracle_port=port)
    pool = None
    if plan.workers:
        pool = distributed.WorkerPool(
            plan.workers, lambda worker_id, threads: _worker_spec(served, worker_id, threads, seed),
            plan.oracle_host, port, say, recycle_after=plan.recycle_after,
        )  # fmt: skip
    else:
        say(f"chief serving on {plan.oracle_host}:{port}; start workers with --role worker --oracle {plan.oracle_host}:{port}")
    distributed.serve(tuner, plan.oracle_host, port, say, plan.trials, pool,
                      start_by=clock.start_by if clock is not None else None)  # fmt: skip
    failures.check(tuner.oracle, plan.max_failures)
    trial_listeners.CheckpointPruning(plan.keep_checkpoints).prune(tuner)  # workers leave this to the chief


def _worker_spec(plan: SearchPlan, worker_id: str, threads: int, seed: int) -> str:
    """The JSON a local worker process starts from (`python -m tuning.worker SPEC`)."""
    worker_plan = dataclasses.replace(plan, role="worker", workers=None, worker_id=worker_id, worker_template=None)
    return WorkerSpec(worker_plan, plan.worker_template, seed, threads).to_json()


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
    )  # fmt: skip
