"""Composing Keras Tuner tuners for a run.

Owns: the tuner registry (`hyperband`, `bayesian`, `random`), the trial cap
that holds for every tuner (Hyperband included), feeding each trial from the
shared `tf.data` feeders at the batch size the trial chose, per-trial seeds,
and the one-line progress report. The project directory layout under
`checkpoints/RUN/` is Keras Tuner's own (`trial_*/`, `oracle.json`,
`tuner0.json`). Does not own: the search space (`search_spaces/`), the
callbacks' settings (`tuning.callbacks`), or what happens after the search.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Callable, Protocol

import keras
import keras_tuner as kt

from tuning.callbacks import OBJECTIVE
from tuning.config import RunConfig
from tuning.pipeline import DatasetFeeder
from tuning.registry import Registry

Say = Callable[[str], None]
EVAL_BATCH_SIZE = 1024
HYPERBAND_FACTOR = 3


class ServiceTuner:
    """Mixin over a Keras Tuner tuner: batches data per trial, seeds it, reports it.

    Args:
        feeder: Train and validation feeders, built once per process.
        seed: Seed of the oracle; trial `i` also seeds Keras and its shuffle with `seed + i`.
        say: Where progress lines go.
        total_trials: The trial cap, for "trial 3/50".
        **kwargs: Passed to the Keras Tuner tuner.
    """

    def __init__(self, *args, feeder: DatasetFeeder, seed: int, say: Say, total_trials: int, **kwargs):
        self._feeder = feeder
        self._seed = seed
        self._say = say
        self._total_trials = total_trials
        self._trial_started = 0.0
        with contextlib.redirect_stdout(io.StringIO()):  # Keras Tuner prints "Reloading Tuner from ..."
            super().__init__(*args, seed=seed, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        trial_seed = self._seed + int(trial.trial_id)
        keras.utils.set_random_seed(trial_seed)
        train = self._feeder.train.batches(hp.get("batch_size"), shuffle=True, seed=trial_seed)
        val = self._feeder.val.batches(EVAL_BATCH_SIZE)
        return super().run_trial(trial, train, *args, validation_data=val, **kwargs)

    def on_trial_begin(self, trial):
        self._trial_started = time.monotonic()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        seconds = time.monotonic() - self._trial_started
        ended = self.oracle.get_trial(trial.trial_id)
        _record_trial_time(Path(self.project_dir), trial.trial_id, seconds)
        self._say(
            format_trial_line(ended, len(self.oracle.end_order), self._total_trials, seconds)
        )


class HyperbandTuner(ServiceTuner, kt.Hyperband):
    """Keras Tuner's Hyperband, fed and reported by the service."""


class BayesianTuner(ServiceTuner, kt.BayesianOptimization):
    """Keras Tuner's Gaussian-process Bayesian optimization."""


class RandomTuner(ServiceTuner, kt.RandomSearch):
    """Keras Tuner's random search."""


class TunerFactory(Protocol):
    def __call__(self, config: RunConfig, common: dict) -> kt.Tuner: ...


def _hyperband(config: RunConfig, common: dict) -> kt.Tuner:
    # Hyperband has no max_trials: let it sweep as often as it likes and cap
    # it through the oracle's generic max_trials check in create_trial.
    tuner = HyperbandTuner(
        max_epochs=config.max_epochs, factor=HYPERBAND_FACTOR, hyperband_iterations=10_000, **common
    )
    tuner.oracle.max_trials = config.trials
    return tuner


def _bayesian(config: RunConfig, common: dict) -> kt.Tuner:
    return BayesianTuner(max_trials=config.trials, **common)


def _random(config: RunConfig, common: dict) -> kt.Tuner:
    return RandomTuner(max_trials=config.trials, **common)


TUNERS: Registry[TunerFactory] = Registry("tuner")
TUNERS.register("hyperband", _hyperband)
TUNERS.register("bayesian", _bayesian)
TUNERS.register("random", _random)


def make_tuner(
    config: RunConfig, hypermodel: kt.HyperModel, feeder: DatasetFeeder, seed: int, say: Say
) -> kt.Tuner:
    """Builds the configured tuner over `checkpoints/RUN/`, resuming what is there.

    Args:
        config: The run.
        hypermodel: The search space, bound to the dataset.
        feeder: The train and validation feeders.
        seed: Seed of the oracle and of every trial.
        say: Where progress lines go.
    """
    factory = TUNERS.get(config.tuner)
    common = dict(
        hypermodel=hypermodel,
        objective=kt.Objective(OBJECTIVE, direction="max"),
        seed=seed,
        max_consecutive_failed_trials=config.max_failures,
        directory=str(config.run_dir.parent),
        project_name=config.run_dir.name,
        overwrite=False,  # the service clears the run itself, keeping its lock
        feeder=feeder,
        say=say,
        total_trials=config.trials,
    )
    return factory(config, common)


def trial_counts(oracle: kt.Oracle) -> dict[str, int]:
    """Counts the oracle's trials by status, e.g. `{"COMPLETED": 9, "FAILED": 1}`."""
    counts: dict[str, int] = {}
    for trial in oracle.trials.values():
        counts[trial.status] = counts.get(trial.status, 0) + 1
    return counts


TRIAL_TIMES = "search_times.json"


def _record_trial_time(run_dir: Path, trial_id: str, seconds: float) -> None:
    path = run_dir / TRIAL_TIMES
    times = json.loads(path.read_text()) if path.exists() else {}
    times[trial_id] = round(seconds, 3)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(times, indent=1))
    tmp.replace(path)


def read_trial_times(run_dir: Path) -> dict[str, float]:
    """Wall seconds of each finished trial, by trial id."""
    path = run_dir / TRIAL_TIMES
    return json.loads(path.read_text()) if path.exists() else {}


def format_values(values: dict) -> str:
    """Hyperparameters in brief: `units=256,128 act=relu lr=1.2e-03 ...`."""
    units = [str(v) for k, v in sorted(values.items()) if k.startswith("units_")]
    parts = [f"units={','.join(units)}"] if units else []
    short = {"activation": "act", "kernel_initializer": "init", "normalization": "norm",
             "learning_rate": "lr", "batch_size": "bs", "num_layers": "layers"}  # fmt: skip
    for key, value in values.items():
        if key.startswith(("units_", "tuner/")):
            continue
        if isinstance(value, float):
            value = f"{value:.2g}" if value >= 0.01 or value == 0 else f"{value:.1e}"
        parts.append(f"{short.get(key, key)}={value}")
    return " ".join(parts)


def format_trial_line(trial: kt.engine.trial.Trial, done: int, total: int, seconds: float) -> str:
    """One progress line: number out of total, status, score, epochs, time, hyperparameters."""
    width = len(str(total))
    values = trial.hyperparameters.values
    if trial.status == "COMPLETED" and trial.score is not None:
        epochs = values.get("tuner/epochs")
        outcome = f"{OBJECTIVE}={trial.score:.4f}" + (f" epochs={epochs}" if epochs else "")
    else:
        reason = (trial.message or "").strip().splitlines()
        outcome = f"{trial.status}: {reason[-1][:120] if reason else 'no reason recorded'}"
    return f"trial {done:>{width}}/{total} (id {trial.trial_id})  {outcome}  {seconds:6.1f}s  {format_values(values)}"
