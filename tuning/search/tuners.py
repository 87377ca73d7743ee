"""Composing Keras Tuner tuners for a run.

Owns: the tuner registry (`hyperband`, `bayesian`, `random`, and the Optuna
samplers `tpe`, `cmaes`, `gp` over `tuning.search.optuna_oracle`), the trial cap
that holds for every tuner (Hyperband included), `ServiceTuner` (feeding
each trial from the shared `tf.data` feeders at the batch size the trial
chose, per-trial seeds, timing, events and HParams sessions), and the
budget's gate on new trials. The project directory layout under
`checkpoints/RUN/` is Keras Tuner's own (`trial_*/`, `oracle.json`,
`tuner0.json`). Does not own: Hyperband's brackets and rung schedules
(`tuning.search.hyperband`), what is retrained (`tuning.search.selection`), the progress
line's text (`tuning.search.progress`), the search space (`search_spaces/`), the
callbacks' settings (`tuning.training.callbacks`), or what happens after the search.
"""

from __future__ import annotations

import contextlib
import gc
import io
import math
import time
from pathlib import Path
from typing import Callable, Protocol

import keras
import keras_tuner as kt

from search_spaces.base import SearchSpace, every_branch
from tuning.errors import raise_if_stopped
from tuning.records import events, hparams, state, trial_times
from tuning.records.events import Listener, Say
from tuning.registry import Registry
from tuning.search import optuna_oracle, proposals
from tuning.search.budget import BudgetClock
from tuning.search.hyperband import (
    HYPERBAND_FACTOR,
    MIN_RUNG_EXAMPLES,
    FittedHyperbandOracle,
    HyperbandOverOracle,
    fit_schedule_to_rung,
    lowest_rung,
)
from tuning.search.plan import OPTUNA_TUNERS, SearchPlan
from tuning.search.proposals import LocalSearch
from tuning.search.selection import pruned_trials
from tuning.search.trial_listeners import OptunaPruning, TrialListener, default_listeners, standard_listeners
from tuning.training import callbacks
from tuning.training.callbacks import OBJECTIVE
from tuning.training.pipeline import EVAL_BATCH_SIZE, DatasetFeeder


class ServiceTuner:
    """Mixin over a Keras Tuner tuner: runs trials, fed, seeded and timed, and hands their events to listeners.

    Args:
        feeder: Train and validation feeders, built once per process.
        trial_seed: Trial `i` seeds Keras and its shuffle with `trial_seed + i`.
        log_dir: `logs/RUN`; each trial's TensorBoard run goes to `trials/ID/execution0` below it.
        listeners: What happens around each trial, in order (`tuning.search.trial_listeners`).
            Defaults to None: releasing graphs and writing the HParams sessions.
        session_table: The HParams columns each trial's session fills (`tuning.records.hparams.columns`).
            Defaults to None: those of the hypermodel.
        clock: The search's budget clock: no trial starts after its `start_by()`. Defaults to None.
        max_epochs: The epochs a trial's schedule is built to span (Hyperband's top rung). Defaults to 1.
        **kwargs: Passed to the Keras Tuner tuner.
    """

    def __init__(self, *args, feeder: DatasetFeeder, trial_seed: int, log_dir: Path,
                 listeners: list[TrialListener] | None = None, session_table: list | None = None,
                 clock: BudgetClock | None = None, max_epochs: int = 1, **kwargs):  # fmt: skip
        self._feeder = feeder
        self._seed = trial_seed
        self._log_dir = log_dir
        self.listeners = list(listeners) if listeners is not None else default_listeners(log_dir)
        self.session_table = session_table
        self._clock = clock
        self._max_epochs = max_epochs
        self._ended_here = 0
        self._trial_started = 0.0
        self._epoch_started = 0.0
        self.pruned_here: dict[str, int] = {}  # trial id -> epochs trained when this process pruned it
        self.epochs_trained: dict[str, int] = {}  # trial id -> epochs this process trained in it
        self.epoch_seconds: dict[str, list[float]] = {}  # trial id -> wall time of each of those epochs
        with contextlib.redirect_stdout(io.StringIO()):  # Keras Tuner prints "Reloading Tuner from ..."
            super().__init__(*args, **kwargs)
        if self.session_table is None:
            self.session_table = session_columns(self.hypermodel)
        if self._is_worker():
            self.oracle.create_trial = _patient(self.oracle.create_trial)

    def run_trial(self, trial, *args, **kwargs):
        raise_if_stopped()
        hp = trial.hyperparameters
        trial_seed = self._seed + int(trial.trial_id)
        keras.utils.set_random_seed(trial_seed)
        train = self._feeder.train.batches(hp.get("batch_size"), shuffle=True, seed=trial_seed)
        val = self._feeder.val.batches(EVAL_BATCH_SIZE)
        histories = super().run_trial(trial, train, *args, validation_data=val, **kwargs)
        for history in histories:
            losses = getattr(history, "history", {}).get("loss", [])
            if any(not math.isfinite(loss) for loss in losses):
                raise kt.errors.FailedTrialError(
                    f"training diverged: the loss became {losses[-1]} in epoch {len(losses)}"
                )
        return histories

    def _build_hypermodel(self, hp):
        model = super()._build_hypermodel(hp)  # Hyperband loads a promoted trial's weights here
        # Before the trial's first checkpoint: a full disk would crash inside HDF5's native code, not raise.
        state.check_room(Path(self.project_dir), state.weights_bytes(model.count_params()), "a trial's checkpoint")
        if isinstance(self.hypermodel, SearchSpace):  # a user's build_model keeps its own schedule as it compiled it
            fit_schedule_to_rung(model, hp, self._feeder.train.size, self._max_epochs)
        return model

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # Keras Tuner's own version also adds TensorBoard's `KerasCallback`, whose session
        # logs only the active hyperparameters; `SessionWriter` writes a complete one instead.
        for callback in callbacks:
            if callback.__class__.__name__ == "TensorBoard":
                callback.log_dir = str(hparams.trial_session_dir(self._log_dir, trial.trial_id))

    def pre_create_trial(self):
        super().pre_create_trial()
        if self._clock is not None and not self._is_worker() and time.time() >= self._clock.start_by():
            stop_starting_trials(self.oracle)

    def on_trial_begin(self, trial):
        self._trial_started = time.monotonic()
        started = events.TrialStarted(trial.trial_id, time.time())
        for listener in self.listeners:
            listener.trial_started(self, trial, started)
        super().on_trial_begin(trial)

    def on_epoch_begin(self, trial, model, epoch, logs=None):
        super().on_epoch_begin(trial, model, epoch, logs=logs)
        self._epoch_started = time.monotonic()

    def on_epoch_end(self, trial, model, epoch, logs=None):
        raise_if_stopped()
        super().on_epoch_end(trial, model, epoch, logs=logs)
        self.epochs_trained[trial.trial_id] = self.epochs_trained.get(trial.trial_id, 0) + 1
        self.epoch_seconds.setdefault(trial.trial_id, []).append(time.monotonic() - self._epoch_started)
        ended = events.EpochEnded("trial", trial.trial_id, epoch + 1, dict(logs or {}),
                                  self.epoch_seconds[trial.trial_id][-1], time.time())  # fmt: skip
        for listener in self.listeners:
            listener.epoch_ended(self, trial, model, ended)

    def on_trial_end(self, trial):
        seconds = time.monotonic() - self._trial_started
        # Recorded before the oracle hears of the end, so a chief reporting the trial finds its time.
        trial_times.record(Path(self.project_dir), self.tuner_id, trial.trial_id, seconds)
        super().on_trial_end(trial)
        self._ended_here += 1
        ended = self._ended_event(trial.trial_id, seconds)
        for listener in self.listeners:
            listener.trial_ended(self, trial, ended)

    def _ended_event(self, trial_id: str, seconds: float) -> events.TrialEnded:
        """How a trial ended, with the status and score the oracle settled on."""
        ended = self.oracle.get_trial(trial_id)
        pruned = trial_id in self.pruned_here or trial_id in pruned_trials(self.oracle)
        completed = ended.status == "COMPLETED" and ended.score is not None
        outcome = "pruned" if pruned and completed else ("completed" if completed else "failed")
        return events.TrialEnded(trial_id, outcome, ended.score if completed else None,
                                 self.epochs_trained.get(trial_id, 0), seconds, time.time())  # fmt: skip

    @property
    def trials_ended_here(self) -> int:
        """Trials this process has run to their end (a worker counts only its own)."""
        return self._ended_here

    def seconds_per_epoch(self, trial_id: str) -> float | None:
        """A steady epoch's wall time (validation included) in a trial this process ran, or None.

        See `tuning.training.callbacks.steady_epoch_seconds`.
        """
        return callbacks.steady_epoch_seconds(self.epoch_seconds.get(trial_id) or [])

    def checkpoints_needed_to_resume(self) -> set[str]:
        """Trials whose weights the tuner may still continue from; none but for Hyperband."""
        return set()


def stop_starting_trials(oracle: kt.Oracle) -> None:
    """Makes the oracle answer STOPPED from now on, through its own `max_trials` check.

    A search always gets its first trial, so a run with a tiny budget still
    has a configuration to retrain.
    """
    started = max(1, len(oracle.trials))
    oracle.max_trials = min(oracle.max_trials or started, started)


class HyperbandTuner(ServiceTuner, HyperbandOverOracle):
    """Keras Tuner's Hyperband, fed and reported by the service."""

    def checkpoints_needed_to_resume(self) -> set[str]:
        # A trial in an unfinished bracket may still be promoted and continued from its weights.
        return {info["id"] for bracket in self.oracle._brackets for rung in bracket["rounds"] for info in rung}


class BayesianTuner(ServiceTuner, kt.BayesianOptimization):
    """Keras Tuner's Gaussian-process Bayesian optimization."""


class RandomTuner(ServiceTuner, kt.RandomSearch):
    """Keras Tuner's random search."""


class TunerFactory(Protocol):
    def __call__(self, plan: SearchPlan, common: dict, oracle_args: dict) -> kt.Tuner: ...


class OptunaTuner(ServiceTuner, kt.Tuner):
    """A Keras Tuner tuner driven by an `OptunaOracle`; it reports each epoch to the study, for pruning."""

    def __init__(self, *args, oracle, log_dir: Path, listeners: list[TrialListener] | None = None, **kwargs):
        listeners = [*(listeners if listeners is not None else default_listeners(log_dir)),
                     OptunaPruning(optuna_oracle.EpochReporter(oracle.study, oracle.storage))]  # fmt: skip
        super().__init__(*args, oracle=oracle, log_dir=log_dir, listeners=listeners, **kwargs)


def _hyperband(plan: SearchPlan, common: dict, oracle_args: dict) -> kt.Tuner:
    # Hyperband has no max_trials: let it sweep as often as it likes and cap
    # it through the oracle's generic max_trials check in create_trial.
    oracle = FittedHyperbandOracle(
        max_epochs=plan.max_epochs, factor=HYPERBAND_FACTOR, hyperband_iterations=10_000,
        trial_cap=plan.trials, lowest_epochs=lowest_rung(common["feeder"].train.size, plan.max_epochs), **oracle_args,
    )  # fmt: skip
    oracle.max_trials = plan.trials
    return HyperbandTuner(oracle=oracle, **common)


# Keras Tuner's default is 3 points per hyperparameter: over 100 for `dense`, so a
# 50-trial Bayesian search would never leave its random start.
BAYESIAN_INITIAL_SHARE = 0.2
# The random start of a search whose cap is high because a time budget ends it: as for a 50-trial search.
BAYESIAN_MOST_INITIAL = 10


def _bayesian(plan: SearchPlan, common: dict, oracle_args: dict) -> kt.Tuner:
    initial = max(3, min(BAYESIAN_MOST_INITIAL, int(BAYESIAN_INITIAL_SHARE * plan.trials)))
    return BayesianTuner(max_trials=plan.trials, num_initial_points=initial, **oracle_args, **common)


def _random(plan: SearchPlan, common: dict, oracle_args: dict) -> kt.Tuner:
    return RandomTuner(max_trials=plan.trials, **oracle_args, **common)


def _optuna(sampler_name: str) -> TunerFactory:
    def factory(plan: SearchPlan, common: dict, oracle_args: dict) -> kt.Tuner:
        sampler = optuna_oracle.SAMPLERS.get(sampler_name)(common["trial_seed"])
        pruner = optuna_oracle.PRUNERS.get(plan.pruner)(plan.max_epochs)
        oracle = optuna_oracle.OptunaOracle(
            max_trials=plan.trials, sampler=sampler, pruner=pruner,
            storage=plan.storage, study_name=plan.study_name, **oracle_args,
        )  # fmt: skip
        return OptunaTuner(oracle=oracle, **common)

    return factory


TUNERS: Registry[TunerFactory] = Registry("tuner")
TUNERS.register("hyperband", _hyperband)
TUNERS.register("bayesian", _bayesian)
TUNERS.register("random", _random)
for _sampler in OPTUNA_TUNERS:  # each Optuna sampler is a tuner of its own name
    TUNERS.register(_sampler, _optuna(_sampler))


def make_tuner(plan: SearchPlan, hypermodel: kt.HyperModel, feeder: DatasetFeeder, seed: int, say: Say,
               listen: Listener | None = None, clock: BudgetClock | None = None) -> kt.Tuner:  # fmt: skip
    """Builds the plan's tuner over `checkpoints/RUN/`, resuming what is there.

    Args:
        plan: The search (`tuning.search.plan.SearchPlan`).
        hypermodel: The search space, bound to the dataset.
        feeder: The train and validation feeders.
        seed: Seed of the oracle and of every trial.
        say: Where progress lines go.
        listen: Receives each epoch's and trial's end (`tuning.records.events`). Defaults to None.
        clock: The search's budget clock. Defaults to None: a new one over `plan.budget`, if any.

    The oracle's first trial is the space's defaults, and a growing share of
    later ones are local moves of the best so far (`tuning.search.proposals`,
    `plan.local_share`). Changes nothing process-wide: the Keras Tuner patches
    (`tuning.search.kt_patches.apply`) and `exempt_setup_from_gc` are the
    caller's steps.
    """
    factory = TUNERS.get(plan.tuner)
    if clock is None and plan.budget is not None:
        clock = BudgetClock(plan.budget)
    oracle_args = dict(
        objective=kt.Objective(OBJECTIVE, direction="max"),
        # Keras Tuner's Oracle reads `seed or random.randint(...)`, so seed 0 would
        # silently mean "unseeded"; shift by one to keep every seed reproducible.
        seed=seed + 1,
        max_consecutive_failed_trials=plan.max_failures,
    )
    common = dict(
        hypermodel=hypermodel,
        directory=str(plan.files.run_dir.parent),
        project_name=plan.files.run_dir.name,
        overwrite=False,  # the service clears the run itself, keeping its lock
        feeder=feeder,
        trial_seed=seed,
        log_dir=plan.files.log_dir,
        listeners=standard_listeners(
            plan.files.log_dir, worker=plan.role == "worker", say=say, total_trials=plan.trials,
            keep_checkpoints=plan.keep_checkpoints, clock=clock, recycle_after=plan.recycle_after, listen=listen,
        ),
        clock=clock,
        max_epochs=plan.max_epochs,
    )
    tuner = factory(plan, common, oracle_args)
    proposals.install(tuner.oracle, LocalSearch(share=plan.local_share, seed=seed))
    return tuner


def describe_fidelity(oracle: kt.Oracle, trials: int, max_epochs: int) -> str:
    """What the search will really run, for the header: the trial cap and the epochs trials get.

    For Hyperband, the first bracket's rounds as configurations × epochs,
    e.g. "up to 50 trials; Hyperband brackets from 12×2 → 4×4 → 2×10 epochs".
    """
    if isinstance(oracle, FittedHyperbandOracle):
        brackets = oracle._get_num_brackets()
        plan = " → ".join(f"{n}×{e}" for n, e in oracle.bracket_plan(brackets - 1))
        order = ", then less aggressive ones" if brackets > 1 else ""
        floor = (f"; no rung under {oracle.lowest_epochs} epochs, so that each sees {MIN_RUNG_EXAMPLES:,}+ examples"
                 if oracle.lowest_epochs > 1 else "")  # fmt: skip
        return f"up to {trials} trials; Hyperband brackets from {plan} epochs (configurations × epochs){order}{floor}"
    pruning = " unless pruned" if hasattr(oracle, "pruned") else ""
    return f"up to {trials} trials of up to {max_epochs} epochs each (early stopping{pruning and ', pruning'})"


_COLUMNS_CACHE: dict[tuple, list] = {}


def session_columns(hypermodel: kt.HyperModel) -> list:
    """The HParams columns of a space: every hyperparameter it can declare, found once per space and data shape."""
    context = getattr(hypermodel, "context", None)
    key = (type(hypermodel).__name__, None if context is None else (
        tuple(context.input_shape), context.n_classes, context.mirror_invariant, context.batch_size,
        context.learning_rate_bounds))  # fmt: skip
    if key not in _COLUMNS_CACHE:
        _COLUMNS_CACHE[key] = hparams.columns(every_branch(hypermodel))
    return _COLUMNS_CACHE[key]


def exempt_setup_from_gc() -> None:
    """Collects garbage once, then moves every object alive into the collector's permanent generation.

    Keras Tuner calls `clear_session()` and `gc.collect()` before each trial's
    build: two full collections, each walking every object TensorFlow, Keras
    and the data have made (about 0.25 s each on 2 cores, half a second per
    trial). Objects alive once the tuner is built live for the whole run, so
    `gc.freeze()` leaves them out, and later collections walk only what
    trials allocate.
    """
    gc.collect()
    gc.freeze()


IDLE_WAIT_SECONDS = 1.0


def _patient(create_trial: Callable) -> Callable:
    """Wraps a worker's `create_trial` so that waiting for the chief is not a busy loop.

    The chief answers IDLE while Hyperband waits for a bracket's other
    trials, and Keras Tuner's search loop asks again at once.
    """

    def patient_create_trial(tuner_id):
        trial = create_trial(tuner_id)
        if trial.status == kt.engine.trial.TrialStatus.IDLE:
            time.sleep(IDLE_WAIT_SECONDS)
        return trial

    return patient_create_trial


