"""The tuners start from the space's defaults, then sample as before."""

from __future__ import annotations

import keras_tuner as kt
import optuna
import pytest

from search_spaces.base import default_values
from tuning import tuners
from tuning.optuna_oracle import OptunaOracle

OBJECTIVE = kt.Objective("val_accuracy", "max")


def small_space() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    depth = hp.Int("num_layers", 1, 4, default=2)
    for i in range(depth):
        with hp.conditional_scope("num_layers", list(range(i + 1, 5))):
            hp.Choice(f"units_{i}", [64, 256, 1024], default=1024)
    hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.3)
    hp.Choice("optimizer", ["adam", "sgd"], default="adam")
    return hp


def test_default_values_keep_only_active_hyperparameters():
    assert default_values(small_space()) == {
        "num_layers": 2, "units_0": 1024, "units_1": 1024, "dropout": 0.3, "optimizer": "adam",
    }  # fmt: skip


def finished(oracle, trial):
    oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


@pytest.mark.parametrize("make", [
    lambda: kt.oracles.RandomSearchOracle(OBJECTIVE, max_trials=6, seed=3),
    lambda: kt.oracles.HyperbandOracle(OBJECTIVE, max_epochs=4, seed=3),
    lambda: kt.oracles.BayesianOptimizationOracle(OBJECTIVE, max_trials=6, seed=3),
], ids=["random", "hyperband", "bayesian"])  # fmt: skip
def test_keras_tuner_oracles_try_the_defaults_first_and_once(make, tmp_path):
    oracle = make()
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.update_space(small_space())
    tuners.start_from_defaults(oracle)
    drawn = []
    for i in range(4):
        trial = oracle.create_trial(f"t{i}")
        drawn.append({k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")})
        finished(oracle, trial)
    assert drawn[0] == default_values(small_space())
    assert all(values != drawn[0] for values in drawn[1:])


def test_optuna_oracle_tries_the_defaults_first(tmp_path):
    oracle = OptunaOracle(
        OBJECTIVE, max_trials=4, sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.NopPruner(),
        storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s",
    )  # fmt: skip
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.update_space(small_space())
    first = oracle.create_trial("t0")
    assert first.hyperparameters.values == default_values(small_space())
    finished(oracle, first)
    second = oracle.create_trial("t1")
    assert second.hyperparameters.values != first.hyperparameters.values
