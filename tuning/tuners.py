"""Composing Keras Tuner tuners for a run.

Owns: the tuner registry (`hyperband`, `bayesian`, `random`, and the Optuna
samplers `tpe`, `cmaes`, `gp` over `tuning.optuna_oracle`), the trial cap
that holds for every tuner (Hyperband included), feeding each trial from the
shared `tf.data` feeders at the batch size the trial chose, per-trial seeds,
and the one-line progress report. The project directory layout under
`checkpoints/RUN/` is Keras Tuner's own (`trial_*/`, `oracle.json`,
`tuner0.json`). Does not own: the search space (`search_spaces/`), the
callbacks' settings (`tuning.callbacks`), or what happens after the search.
"""

from __future__ import annotations

import contextlib
import gc
import io
import math
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import keras
import keras_tuner as kt

from search_spaces._optimizers import ANNEALING_SCHEDULES, StepOffset, StepScale, steps_per_epoch
from search_spaces.base import default_values, every_branch
from tuning.budget import RESERVED_MEMBERS, SEARCH_PAYS_TRIALS, TimeBudget
from tuning.callbacks import OBJECTIVE
from tuning.pipeline import EVAL_BATCH_SIZE, DatasetFeeder
from tuning.registry import Registry
from tuning import events, graph_memory, hparams, kt_patches, optuna_oracle, proposals, trial_times
from tuning.events import Listener
from tuning.proposals import LocalSearch
from tuning.text import format_values



if TYPE_CHECKING:
    from tuning.search import SearchPlan

Say = Callable[[str], None]
HYPERBAND_FACTOR = 3


class ServiceTuner:
    """Mixin over a Keras Tuner tuner: batches data per trial, seeds it, prunes it, reports it.

    Args:
        feeder: Train and validation feeders, built once per process.
        trial_seed: Trial `i` seeds Keras and its shuffle with `trial_seed + i`.
        say: Where progress lines go.
        total_trials: The trial cap, for "trial 3/50".
        log_dir: `logs/RUN`; each trial's run and HParams session go to `trials/ID/execution0` below it.
        session_table: The HParams columns each trial's session fills (`tuning.hparams.columns`).
            Defaults to None: those of the hypermodel.
        budget: The run's time budget: no trial starts after its `start_by()`,
            and the first trial's epoch time sets its split. Defaults to None.
        max_epochs: The epochs a trial's schedule is built to span (Hyperband's top rung). Defaults to 1.
        listen: Receives each epoch's and each trial's end (`tuning.events`). Defaults to None.
        **kwargs: Passed to the Keras Tuner tuner.
    """

    def __init__(self, *args, feeder: DatasetFeeder, trial_seed: int, say: Say, total_trials: int,
                 log_dir: Path, session_table: list | None = None, keep_checkpoints: str = "best", reporter: Callable | None = None,
                 budget: TimeBudget | None = None, recycle_after: int | None = None, max_epochs: int = 1,
                 listen: Listener | None = None, **kwargs):  # fmt: skip
        self._budget = budget
        self._max_epochs = max_epochs
        self._listen = listen
        self._recycle_after = recycle_after
        self._ended_here = 0
        self._feeder = feeder
        self._reporter = reporter
        self._keep_checkpoints = keep_checkpoints
        self._seed = trial_seed
        self._say = say
        self._total_trials = total_trials
        self._log_dir = log_dir
        self.session_table = session_table
        self._pruned_here: dict[str, int] = {}  # trial id -> epochs trained when this process pruned it
        self._parameters: dict[str, int] = {}  # trial id -> parameter count of its model
        self._trial_started = 0.0
        self.epochs_trained: dict[str, int] = {}  # trial id -> epochs this process trained in it
        self.epoch_seconds: dict[str, list[float]] = {}  # trial id -> wall time of each of those epochs
        self._epoch_started = 0.0
        with contextlib.redirect_stdout(io.StringIO()):  # Keras Tuner prints "Reloading Tuner from ..."
            super().__init__(*args, **kwargs)
        if self.session_table is None:
            self.session_table = session_columns(self.hypermodel)
        if self._is_worker():
            self.oracle.create_trial = _patient(self.oracle.create_trial)

    def run_trial(self, trial, *args, **kwargs):
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
        fit_schedule_to_rung(model, hp, self._feeder.train.size, self._max_epochs)
        return model

    def on_epoch_begin(self, trial, model, epoch, logs=None):
        super().on_epoch_begin(trial, model, epoch, logs=logs)
        self._epoch_started = time.monotonic()

    def on_epoch_end(self, trial, model, epoch, logs=None):
        super().on_epoch_end(trial, model, epoch, logs=logs)
        self.epochs_trained[trial.trial_id] = self.epochs_trained.get(trial.trial_id, 0) + 1
        self.epoch_seconds.setdefault(trial.trial_id, []).append(time.monotonic() - self._epoch_started)
        if self._listen is not None:
            self._listen(events.EpochEnded("trial", trial.trial_id, epoch + 1, dict(logs or {}),
                                           self.epoch_seconds[trial.trial_id][-1], time.time()))  # fmt: skip
        self._parameters.setdefault(trial.trial_id, int(model.count_params()))
        if self._reporter is not None and self._reporter(trial.trial_id, epoch, (logs or {}).get(OBJECTIVE)):
            model.stop_training = True
            self._pruned_here[trial.trial_id] = epoch + 1

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # Keras Tuner's own version also adds TensorBoard's `KerasCallback`, whose session
        # logs only the active hyperparameters; `_write_session` writes a complete one instead.
        for callback in callbacks:
            if callback.__class__.__name__ == "TensorBoard":
                callback.log_dir = str(hparams.trial_session_dir(self._log_dir, trial.trial_id))

    def _write_session(self, trial_id: str, seconds: float) -> events.TrialEnded:
        """The HParams session of an ended trial, with the score and status the oracle settled on; returns its end as an event."""
        ended = self.oracle.get_trial(trial_id)
        pruned = trial_id in self._pruned_here or trial_id in getattr(self.oracle, "pruned", {})
        completed = ended.status == "COMPLETED" and ended.score is not None
        outcome = "pruned" if pruned and completed else ("completed" if completed else "failed")
        metrics = {"score": ended.score if completed else None, "epochs": self.epochs_trained.get(trial_id, 0),
                   "val_loss": _at_best_step(ended, "val_loss"), "seconds": seconds,
                   "parameters": self._parameters.get(trial_id)}  # fmt: skip
        values = {k: v for k, v in ended.hyperparameters.values.items() if not k.startswith("tuner/")}
        hparams.write_session(hparams.trial_session_dir(self._log_dir, trial_id), self.session_table, values,
                              outcome, metrics, group=f"trial {trial_id}")  # fmt: skip
        return events.TrialEnded(trial_id, outcome, metrics["score"], metrics["epochs"], seconds, time.time())

    @property
    def trials_ended_here(self) -> int:
        """Trials this process has run to their end (a worker counts only its own)."""
        return self._ended_here

    def pre_create_trial(self):
        super().pre_create_trial()
        if self._budget is not None and not self._is_worker() and time.time() >= self._budget.start_by():
            stop_starting_trials(self.oracle)

    def on_trial_begin(self, trial):
        self._trial_started = time.monotonic()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        seconds = time.monotonic() - self._trial_started
        # The trial's model is finished with; without this TensorFlow keeps its weights for good.
        graph_memory.release_finished_graphs()
        # Recorded before the oracle hears of the end, so a chief reporting the trial finds its time.
        trial_times.record(Path(self.project_dir), self.tuner_id, trial.trial_id, seconds)
        super().on_trial_end(trial)
        self._ended_here += 1
        ended = self._write_session(trial.trial_id, seconds)
        if self._listen is not None:
            self._listen(ended)
        if self._is_worker():
            # The chief reports progress and keeps the checkpoints tidy.
            if self._recycle_after is not None and self._ended_here >= self._recycle_after:
                raise Recycle(self._ended_here)
            return
        self._drop_checkpoints()
        self._say(progress_line(self.oracle, trial.trial_id, self._total_trials, seconds,
                                self.epochs_trained.get(trial.trial_id)))  # fmt: skip
        self._split_budget(trial)

    def seconds_per_epoch(self, trial_id: str) -> float | None:
        """A steady epoch's wall time (validation included) in a trial this process ran, or None.

        The median of the epochs after the first, which also traces the
        training step; the first alone when it is the only one.
        """
        times = self.epoch_seconds.get(trial_id) or []
        steady = times[1:] or times
        return statistics.median(steady) if steady else None

    def _split_budget(self, trial) -> None:
        """After the first trial this process ran (the defaults, on a fresh run), sets the budget's split from its epoch time."""
        per_epoch = self.seconds_per_epoch(trial.trial_id)
        if self._budget is None or self._ended_here != 1 or not per_epoch:
            return
        self._budget.observe(per_epoch)
        minutes = (self._budget.stop_at() - self._budget.began) / 60
        if not self._budget.search_pays:
            self._say(f"time budget: at {per_epoch:.1f}s an epoch the search cannot afford {SEARCH_PAYS_TRIALS} full "
                      f"trials beside {RESERVED_MEMBERS} full retrainings, so it ends here ({minutes:.1f} min) "
                      "and the retraining of the defaults gets the time")  # fmt: skip
            return
        self._say(f"time budget: the search gets {self._budget.search_share:.0%} ({minutes:.1f} min); the retraining keeps "
                  f"the rest for full-length retrainings at {per_epoch:.1f}s an epoch")  # fmt: skip

    def _checkpoints_to_keep(self) -> set[str]:
        best = self.oracle.get_best_trials(1)
        return {t.trial_id for t in best if t.status == "COMPLETED"}

    def _drop_checkpoints(self) -> None:
        """Deletes the weights of ended trials that neither resume nor export will read.

        The export never reads them (the best configuration is retrained), so
        `best` keeps only the best trial's, plus whatever the tuner may still
        continue from (Hyperband's open brackets), and `none` keeps only the latter.
        """
        if self._keep_checkpoints == "all":
            return
        keep = self._checkpoints_needed_to_resume()
        if self._keep_checkpoints == "best":
            keep |= self._checkpoints_to_keep()
        for trial_id in self.oracle.end_order:
            if trial_id not in keep:
                for path in Path(self.get_trial_dir(trial_id)).glob("checkpoint*"):
                    path.unlink()

    def _checkpoints_needed_to_resume(self) -> set[str]:
        return set()


def _at_best_step(trial, metric: str) -> float | None:
    """A metric's value at the epoch the trial's score comes from, if Keras Tuner recorded it."""
    history = trial.metrics.get_history(metric) if trial.metrics.exists(metric) else []
    at_best = [o.value for o in history if o.step == trial.best_step]
    values = at_best[-1] if at_best else None
    return float(values[0] if isinstance(values, (list, tuple)) else values) if values is not None else None


class Recycle(Exception):
    """Raised by a worker's tuner after `recycle_after` trials, so that a fresh process replaces it."""


def fit_schedule_to_rung(model: keras.Model, hp: kt.HyperParameters, train_size: int, max_epochs: int) -> None:
    """Makes a Hyperband trial's learning-rate schedule span the epochs of its own rung.

    A trial's model is built with a schedule spanning `max_epochs`, the top
    rung. Judged at a 2-epoch rung, a warm-up-then-cosine schedule would
    still be near its peak there, while a constant small rate would not: the
    rung would rank schedules, not configurations (seen: the defaults at
    0.9724 after 2 of 10 epochs, behind a 16-layer net at a constant 1e-4).
    So an annealing schedule (`ANNEALING_SCHEDULES`) is compressed to span
    the epochs this round trains: a fresh trial anneals over its rung's
    epochs, and a promoted one, which Keras Tuner continues from its
    parent's weights with a new optimizer, warms up and anneals again over
    the epochs it adds (a warm restart). Other schedules are continued where
    the previous round left them (Keras Tuner's new optimizer would start
    them again at step 0). (Adam's moments restart either way; Keras Tuner
    keeps no optimizer state between rounds.)

    Args:
        model: The compiled model of the trial.
        hp: The trial's hyperparameters, with Hyperband's `tuner/epochs` and `tuner/initial_epoch`.
        train_size: Examples per epoch.
        max_epochs: The epochs the model's schedule was built to span.
    """
    optimizer = getattr(model, "optimizer", None)
    schedule = getattr(optimizer, "_learning_rate", None)  # Keras keeps the schedule object here
    if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return
    initial_epoch = int(hp.values.get("tuner/initial_epoch") or 0)
    last_epoch = int(hp.values.get("tuner/epochs") or max_epochs)
    if hp.values.get("lr_schedule") in ANNEALING_SCHEDULES:
        span = max(1, last_epoch - initial_epoch)
        if span != max_epochs:
            optimizer.learning_rate = StepScale(schedule, max_epochs / span)
    elif initial_epoch:
        optimizer.learning_rate = StepOffset(schedule, initial_epoch * steps_per_epoch(train_size, int(hp.get("batch_size"))))


def stop_starting_trials(oracle: kt.Oracle) -> None:
    """Makes the oracle answer STOPPED from now on, through its own `max_trials` check.

    A search always gets its first trial, so a run with a tiny budget still
    has a configuration to retrain.
    """
    started = max(1, len(oracle.trials))
    oracle.max_trials = min(oracle.max_trials or started, started)


class FittedHyperbandOracle(kt.oracles.HyperbandOracle):
    """Keras Tuner's Hyperband oracle, with brackets that fit the trial cap and best trials ranked at equal training.

    Keras Tuner always opens with its most aggressive bracket: for
    `max_epochs=10` that is 12 configurations of 2 epochs, 4 promoted to 4
    epochs and 2 to 10, 18 trials. Under a cap of 10 trials no promotion
    would ever happen and every trial would be judged after 2 epochs. Here
    the brackets start at the most aggressive one whose trials all fit
    under the cap, so promotions happen; and `get_best_trials` ranks trials
    trained for more epochs first (by score within the same epochs), so a
    configuration that needs 10 epochs never loses to one that only leads
    after 2.

    Args:
        trial_cap: The run's trial cap.
        **kwargs: Passed to `keras_tuner.oracles.HyperbandOracle`.
    """

    def __init__(self, *args, trial_cap: int, **kwargs) -> None:
        self._trial_cap = trial_cap
        super().__init__(*args, **kwargs)

    def _get_num_brackets(self) -> int:
        most = super()._get_num_brackets()
        for brackets in range(most, 1, -1):
            if self.bracket_trials(brackets - 1) <= self._trial_cap:
                return brackets
        return 1

    def bracket_trials(self, bracket_num: int) -> int:
        """Trials one bracket runs: its first round's configurations plus every promotion."""
        return sum(self._get_size(bracket_num, r) for r in range(self._get_num_rounds(bracket_num)))

    def bracket_plan(self, bracket_num: int) -> list[tuple[int, int]]:
        """`(configurations, epochs)` of each round of a bracket."""
        return [(self._get_size(bracket_num, r), self._get_epochs(bracket_num, r))
                for r in range(self._get_num_rounds(bracket_num))]  # fmt: skip

    def get_best_trials(self, num_trials: int = 1):
        ranked = super().get_best_trials(len(self.trials))
        # A stable sort: most epochs first, the oracle's score order within the same epochs.
        return sorted(ranked, key=lambda t: -int(t.hyperparameters.values.get("tuner/epochs") or 0))[:num_trials]


class _HyperbandOverOracle(kt.Hyperband):
    """Keras Tuner's Hyperband tuner (epochs per trial, weights of promoted trials) over a given oracle."""

    def __init__(self, oracle: kt.Oracle, **kwargs) -> None:
        kt.Tuner.__init__(self, oracle=oracle, **kwargs)


class HyperbandTuner(ServiceTuner, _HyperbandOverOracle):
    """Keras Tuner's Hyperband, fed and reported by the service."""

    def _checkpoints_needed_to_resume(self) -> set[str]:
        # A trial in an unfinished bracket may still be promoted and continued from its weights.
        return {info["id"] for bracket in self.oracle._brackets for rung in bracket["rounds"] for info in rung}


class BayesianTuner(ServiceTuner, kt.BayesianOptimization):
    """Keras Tuner's Gaussian-process Bayesian optimization."""


class RandomTuner(ServiceTuner, kt.RandomSearch):
    """Keras Tuner's random search."""


class TunerFactory(Protocol):
    def __call__(self, plan: "SearchPlan", common: dict, oracle_args: dict) -> kt.Tuner: ...


class OptunaTuner(ServiceTuner, kt.Tuner):
    """A Keras Tuner tuner driven by an `OptunaOracle`; it reports each epoch to the study, for pruning."""

    def __init__(self, *args, oracle, **kwargs):
        kwargs.setdefault("reporter", optuna_oracle.EpochReporter(oracle.study, oracle.storage))
        super().__init__(*args, oracle=oracle, **kwargs)


def _hyperband(plan: "SearchPlan", common: dict, oracle_args: dict) -> kt.Tuner:
    # Hyperband has no max_trials: let it sweep as often as it likes and cap
    # it through the oracle's generic max_trials check in create_trial.
    oracle = FittedHyperbandOracle(
        max_epochs=plan.max_epochs, factor=HYPERBAND_FACTOR, hyperband_iterations=10_000,
        trial_cap=plan.trials, **oracle_args,
    )  # fmt: skip
    oracle.max_trials = plan.trials
    return HyperbandTuner(oracle=oracle, **common)


# Keras Tuner's default is 3 points per hyperparameter: over 100 for `dense`, so a
# 50-trial Bayesian search would never leave its random start.
BAYESIAN_INITIAL_SHARE = 0.2


def _bayesian(plan: "SearchPlan", common: dict, oracle_args: dict) -> kt.Tuner:
    initial = max(3, int(BAYESIAN_INITIAL_SHARE * plan.trials))
    return BayesianTuner(max_trials=plan.trials, num_initial_points=initial, **oracle_args, **common)


def _random(plan: "SearchPlan", common: dict, oracle_args: dict) -> kt.Tuner:
    return RandomTuner(max_trials=plan.trials, **oracle_args, **common)


def _optuna(sampler_name: str) -> TunerFactory:
    def factory(plan: "SearchPlan", common: dict, oracle_args: dict) -> kt.Tuner:
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
for _sampler in optuna_oracle.SAMPLERS.names():  # each Optuna sampler is a tuner of its own name
    TUNERS.register(_sampler, _optuna(_sampler))


def make_tuner(plan: "SearchPlan", hypermodel: kt.HyperModel, feeder: DatasetFeeder, seed: int, say: Say,
               listen: Listener | None = None) -> kt.Tuner:  # fmt: skip
    """Builds the plan's tuner over `checkpoints/RUN/`, resuming what is there.

    Args:
        plan: The search (`tuning.search.SearchPlan`).
        hypermodel: The search space, bound to the dataset.
        feeder: The train and validation feeders.
        seed: Seed of the oracle and of every trial.
        say: Where progress lines go.
        listen: Receives each epoch's and trial's end (`tuning.events`). Defaults to None.

    The oracle's first trial is the space's defaults, and a growing share of
    later ones are local moves of the best so far (`tuning.proposals`,
    `plan.local_share`); objects alive at the end are exempted from garbage
    collection (`exempt_setup_from_gc`), so each trial's collections stay short.
    """
    factory = TUNERS.get(plan.tuner)
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
        say=say,
        total_trials=plan.trials,
        log_dir=plan.files.log_dir,
        keep_checkpoints=plan.keep_checkpoints,
        budget=plan.budget,
        recycle_after=plan.recycle_after,
        max_epochs=plan.max_epochs,
        listen=listen,
    )
    tuner = factory(plan, common, oracle_args)
    proposals.install(tuner.oracle, LocalSearch(share=plan.local_share, seed=seed))
    exempt_setup_from_gc()
    return tuner


# An epoch costing more than this many times the defaults' counts as costly (`costly_share`).
COSTLY = 3.0


def costly_share(tuner, trial_ids: list[str], seconds: list[float]) -> float | None:
    """The share of the trials' time spent on those whose epochs cost over `COSTLY` times the first trial's.

    Args:
        tuner: The tuner, with the epoch times this process measured.
        trial_ids: The ended trials, in end order (the first is the space's defaults on a fresh run).
        seconds: Each one's wall time.
    """
    per_epoch = {t: tuner.seconds_per_epoch(t) for t in trial_ids}
    timed = [(per_epoch[t], s) for t, s in zip(trial_ids, seconds) if per_epoch[t] and s]
    reference = per_epoch.get(trial_ids[0]) if trial_ids else None
    if not timed or not reference:
        return None
    return round(sum(s for e, s in timed if e > COSTLY * reference) / sum(s for _, s in timed), 4)


def trial_epochs(tuner, ended: list) -> dict | None:
    """The fewest and most epochs the ended trials trained (counted in this process, else as planned)."""
    counts = [tuner.epochs_trained.get(t.trial_id) or t.hyperparameters.values.get("tuner/epochs") for t in ended]
    counts = [int(c) for c in counts if c]
    return {"min": min(counts), "max": max(counts)} if counts else None


def choose_final(oracle: kt.Oracle, validation_size: int) -> tuple[kt.engine.trial.Trial, str | None]:
    """The trial whose configuration is retrained: the best, unless the defaults are as good within the noise.

    The validation split measures accuracy with a binomial standard error of
    `sqrt(p (1 - p) / n)` (0.13 points at 99% on 5,000 images). A search of
    many configurations will find one that beats the space's defaults by
    less than that by chance alone, so the defaults, the strong prior, stay
    the choice unless a configuration beats them, trained for as many epochs,
    by more than one standard error.

    Args:
        oracle: The oracle after the search.
        validation_size: Examples in the validation split.

    Returns:
        The trial, and a sentence saying why the defaults were kept (or None).
    """
    best = oracle.get_best_trials(1)[0]
    defaults = default_values(oracle.hyperparameters)
    epochs = best.hyperparameters.values.get("tuner/epochs")
    pruned = getattr(oracle, "pruned", {})
    same = [
        t for t in oracle.trials.values()
        if t.status == "COMPLETED" and t.score is not None and t.trial_id not in pruned
        and t.hyperparameters.values.get("tuner/epochs") == epochs
        and {k: v for k, v in t.hyperparameters.values.items() if not k.startswith("tuner/")} == defaults
    ]  # fmt: skip
    if not same or best in same:
        return best, None
    kept = max(same, key=lambda t: t.score)
    error = math.sqrt(max(best.score * (1 - best.score), 0.0) / max(1, validation_size))
    if best.score - kept.score > error:
        return best, None
    return kept, (f"keeping the defaults (trial {kept.trial_id}, {kept.score:.4f}): the best, trial {best.trial_id} at "
                  f"{best.score:.4f}, is within one standard error ({error:.4f}) of them on {validation_size} validation examples")  # fmt: skip


def describe_fidelity(oracle: kt.Oracle, trials: int, max_epochs: int) -> str:
    """What the search will really run, for the header: the trial cap and the epochs trials get.

    For Hyperband, the first bracket's rounds as configurations × epochs,
    e.g. "up to 50 trials; Hyperband brackets from 12×2 → 4×4 → 2×10 epochs".
    """
    if isinstance(oracle, FittedHyperbandOracle):
        plan = " → ".join(f"{n}×{e}" for n, e in oracle.bracket_plan(oracle._get_num_brackets() - 1))
        return f"up to {trials} trials; Hyperband brackets from {plan} epochs (configurations × epochs), then less aggressive ones"
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


def trial_counts(oracle: kt.Oracle) -> dict[str, int]:
    """Counts the oracle's trials by status, e.g. `{"COMPLETED": 7, "PRUNED": 2, "FAILED": 1}`."""
    pruned = getattr(oracle, "pruned", {})
    counts: dict[str, int] = {}
    for trial in oracle.trials.values():
        status = "PRUNED" if trial.trial_id in pruned else trial.status
        counts[status] = counts.get(status, 0) + 1
    return counts


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


def progress_line(oracle: kt.Oracle, trial_id: str, total: int, seconds: float, epochs: int | None = None) -> str:
    """The progress line of an ended trial, with its place in the oracle's end order.

    Args:
        oracle: The oracle.
        trial_id: The trial that ended.
        total: The trial cap.
        seconds: The trial's wall time.
        epochs: Epochs it trained, when this process counted them; else the
            epochs it was given (Hyperband's, or the pruned epoch).
    """
    done = oracle.end_order.index(trial_id) + 1 if trial_id in oracle.end_order else len(oracle.end_order)
    pruned_at = getattr(oracle, "pruned", {}).get(trial_id)
    return format_trial_line(oracle.get_trial(trial_id), done, total, seconds, pruned_at, epochs)


def format_trial_line(trial: kt.engine.trial.Trial, done: int, total: int, seconds: float,
                      pruned_at: int | None = None, epochs: int | None = None) -> str:  # fmt: skip
    """One progress line in fixed columns: trial id, place out of the cap, status, score, epochs, time, hyperparameters.

    Trials are named by their id everywhere (here, in "best trial", in the
    report and on the dashboard); `[3/50]` only counts how many have ended.
    """
    width = len(str(total))
    values = trial.hyperparameters.values
    epochs = pruned_at or epochs or values.get("tuner/epochs")
    if trial.status == "COMPLETED" and trial.score is not None:
        status, score, tail = ("pruned" if pruned_at else "completed"), f"{trial.score:.4f}", ""
    else:
        reason = (trial.message or "").strip().splitlines()
        status, score = trial.status.lower(), "-"
        tail = f"reason: {reason[-1][:120] if reason else 'none recorded'}  "
    return (f"trial {trial.trial_id}  [{done:>{width}}/{total}]  {status:<9}  {OBJECTIVE}={score:<6}  "
            f"epochs={epochs if epochs is not None else '-':<3} {seconds:6.1f}s  {tail}{format_values(values)}")
