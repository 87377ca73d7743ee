"""Hyperband as the service runs it: brackets that fit the trial cap, ranking at equal training, rung schedules."""

from __future__ import annotations

import keras
import keras_tuner as kt
import pytest

from tests.search.test_tuners import OBJECTIVE, finished, small_space
from tuning.search import hyperband
from tuning.training.schedules import StepOffset, StepScale


def test_hyperband_brackets_fit_the_trial_cap_so_promotions_happen(tmp_path):
    oracle = hyperband.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, factor=3, seed=0, trial_cap=10)
    assert oracle.bracket_trials(2) == 18 and oracle.bracket_plan(2) == [(12, 2), (4, 4), (2, 10)]
    assert oracle._get_num_brackets() == 2  # the 18-trial bracket cannot finish under 10 trials
    oracle.max_trials = 10
    epochs = [values.get("tuner/epochs") for values in _hyperband_draws(oracle, tmp_path)]
    assert epochs == [4, 4, 4, 4, 4, 4, 10, 10, 10, 10]  # 6 configurations of 4 epochs, 2 promoted, then 10-epoch ones
    assert hyperband.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, seed=0, trial_cap=50)._get_num_brackets() == 3
    assert hyperband.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, seed=0, trial_cap=1)._get_num_brackets() == 1


@pytest.mark.parametrize("train_size, max_epochs, lowest", [
    (3_600, 10, 10),  # mnist1d: 4 epochs would see 14,400 examples
    (6_995, 10, 6),  # animal_mnist
    (14_400, 10, 3),  # letter
    (54_000, 10, 1),  # MNIST
    (142, 10, 10),  # a tiny table: every rung is the top one
    (3_600, 3, 3),
])
def test_the_lowest_rung_sees_enough_examples(train_size, max_epochs, lowest):
    assert hyperband.lowest_rung(train_size, max_epochs) == lowest


def test_no_bracket_starts_below_the_lowest_rung(tmp_path):
    four = hyperband.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, seed=0, trial_cap=50, lowest_epochs=4)
    assert four._get_num_brackets() == 2 and four.bracket_plan(1) == [(6, 4), (2, 10)]
    five = hyperband.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, seed=0, trial_cap=50, lowest_epochs=5)
    assert five._get_num_brackets() == 1
    five.max_trials = 6
    assert {values.get("tuner/epochs") for values in _hyperband_draws(five, tmp_path)} == {10}


def _hyperband_draws(oracle, tmp_path) -> list[dict]:
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.update_space(small_space())
    drawn = []
    for i in range(20):
        trial = oracle.create_trial(f"t{i}")
        if trial.status != "RUNNING":
            break
        drawn.append(dict(trial.hyperparameters.values))
        finished(oracle, trial, 0.5 + 0.01 * i)
    return drawn


def test_hyperband_ranks_trials_trained_longer_first(tmp_path):
    oracle = hyperband.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, factor=3, seed=0, trial_cap=10)
    oracle.max_trials = 10
    drawn = _hyperband_draws(oracle, tmp_path)  # later trials score higher, so the last 4-epoch one beats...
    best = oracle.get_best_trials(3)
    assert [t.hyperparameters.values["tuner/epochs"] for t in best] == [10, 10, 10]
    assert best[0].score == max(t.score for t in oracle.trials.values() if t.hyperparameters.values["tuner/epochs"] == 10)
    assert len(drawn) == 10


def compiled(learning_rate) -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    return model


def rung(initial_epoch: int, epochs: int, schedule: str = "cosine", batch_size: int = 10) -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Fixed("batch_size", batch_size)
    hp.values.update({"tuner/initial_epoch": initial_epoch, "tuner/epochs": epochs, "lr_schedule": schedule})
    return hp


def ten_epoch_cosine() -> keras.optimizers.schedules.CosineDecay:
    # 20 steps an epoch (200 examples, batch 10), built for 10 epochs: 200 steps, 10 of warm-up.
    return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=190, warmup_target=0.01, warmup_steps=10)


def test_a_fresh_trial_anneals_over_its_own_rung():
    schedule = ten_epoch_cosine()
    model = compiled(schedule)
    hyperband.fit_schedule_to_rung(model, rung(0, 2), train_size=200, max_epochs=10)  # a 2-epoch rung: 40 steps
    x, y = keras.random.normal((200, 4), seed=1), keras.ops.zeros((200,), dtype="int32")
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)  # half way down the rung: at the schedule's middle
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(100)), rel=1e-5)
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)  # the rung's end is the schedule's end
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(200)), abs=1e-9)
    assert float(schedule(200)) < 1e-6 < float(schedule(40))  # where the old rule judged it: near the peak


def test_a_promoted_trial_warms_up_and_anneals_again_over_the_epochs_it_adds():
    schedule = ten_epoch_cosine()
    model = compiled(schedule)
    hyperband.fit_schedule_to_rung(model, rung(4, 10), train_size=200, max_epochs=10)  # 6 epochs added: 120 steps
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0)  # a new warm-up, from the start
    x, y = keras.random.normal((200, 4), seed=1), keras.ops.zeros((200,), dtype="int32")
    model.fit(x, y, batch_size=10, epochs=3, verbose=0)  # 60 of the 120 steps
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(100)), rel=1e-5)


def test_other_schedules_continue_where_the_last_round_ended():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=20, decay_rate=0.9)
    model = compiled(schedule)
    hyperband.fit_schedule_to_rung(model, rung(4, 10, schedule="exponential"), train_size=200, max_epochs=10)
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(80)))  # not schedule(0)


@pytest.mark.parametrize("learning_rate, hp", [(0.01, rung(4, 10, "constant")), ("cosine", rung(0, 10))])
def test_top_rung_trials_and_constant_rates_are_left_alone(learning_rate, hp):
    if learning_rate == "cosine":
        learning_rate = ten_epoch_cosine()
    model = compiled(learning_rate)
    before = float(model.optimizer.learning_rate)
    hyperband.fit_schedule_to_rung(model, hp, train_size=200, max_epochs=10)
    assert float(model.optimizer.learning_rate) == pytest.approx(before)
    assert not isinstance(model.optimizer._learning_rate, (StepScale, StepOffset))
