"""The tuners start from the space's defaults, then sample as before; promoted Hyperband trials
continue their schedules; building a tuner spares later trials' collections."""

from __future__ import annotations

import gc

import keras
import keras_tuner as kt
import optuna
import pytest

import search_spaces
from search_spaces.base import SpaceContext, default_values
from tuning import datasets, tuners
from tuning.config import RunConfig
from tuning.pipeline import DatasetFeeder
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


def test_a_built_tuner_leaves_the_setup_out_of_later_collections(tmp_path):
    dataset = datasets.load_dataset("digits", None)
    config = RunConfig(dataset="digits", tuner="random", trials=1, seed=0,
                       checkpoint_root=str(tmp_path / "c"), log_root=str(tmp_path / "l"))  # fmt: skip
    hypermodel = search_spaces.get("dense")(SpaceContext.for_dataset(dataset))
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    tuners.make_tuner(config, hypermodel, DatasetFeeder(dataset), 0, lambda line: None)
    assert gc.get_freeze_count() > 10_000  # TensorFlow, Keras and the data: frozen, not walked per trial


def compiled(learning_rate) -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    return model


def promoted(initial_epoch: int, batch_size: int = 10) -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Fixed("batch_size", batch_size)
    hp.values["tuner/initial_epoch"] = initial_epoch
    return hp


def test_a_promoted_trial_continues_its_schedule_where_the_last_round_ended():
    schedule = keras.optimizers.schedules.CosineDecay(0.0, decay_steps=95, warmup_target=0.01, warmup_steps=5)
    model = compiled(schedule)
    tuners.continue_schedule(model, promoted(initial_epoch=4), train_size=200)  # 20 steps per epoch
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(80)))  # not schedule(0) == 0
    x, y = keras.random.normal((200, 4), seed=1), keras.ops.zeros((200,), dtype="int32")
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(100)), abs=1e-9)


@pytest.mark.parametrize("learning_rate, initial_epoch", [(0.01, 4), ("cosine", 0)])
def test_fresh_trials_and_constant_rates_are_left_alone(learning_rate, initial_epoch):
    if learning_rate == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(0.01, decay_steps=100)
    model = compiled(learning_rate)
    before = float(model.optimizer.learning_rate)
    tuners.continue_schedule(model, promoted(initial_epoch), train_size=200)
    assert float(model.optimizer.learning_rate) == pytest.approx(before)
