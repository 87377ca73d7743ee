"""The tuners start from the space's defaults, then mix their own proposals with local moves;
Hyperband's brackets fit the trial cap and rank trials at equal epochs; a trial's schedule spans
its rung; local moves start from the highest fidelity reached; building a tuner spares later trials'
collections."""

from __future__ import annotations

import gc

import keras
import keras_tuner as kt
import optuna
import pytest

import search_spaces
from search_spaces.base import SpaceContext, default_values
from tuning import datasets, proposals, tuners
from tuning.config import RunConfig
from tuning.service import search_plan
from tuning.pipeline import DatasetFeeder
from tuning.optuna_oracle import OptunaOracle
from tuning.proposals import LocalSearch
from search_spaces._optimizers import StepOffset, StepScale

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


def finished(oracle, trial, score=0.5):
    oracle.update_trial(trial.trial_id, {"val_accuracy": score})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


@pytest.mark.parametrize("make", [
    lambda: kt.oracles.RandomSearchOracle(OBJECTIVE, max_trials=6, seed=3),
    lambda: tuners.FittedHyperbandOracle(OBJECTIVE, max_epochs=4, seed=3, trial_cap=50),
    lambda: kt.oracles.BayesianOptimizationOracle(OBJECTIVE, max_trials=6, seed=3),
], ids=["random", "hyperband", "bayesian"])  # fmt: skip
def test_keras_tuner_oracles_try_the_defaults_first_and_once(make, tmp_path):
    oracle = make()
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.update_space(small_space())
    proposals.install(oracle, LocalSearch(share=0.5, seed=0))
    drawn = []
    for i in range(4):
        trial = oracle.create_trial(f"t{i}")
        drawn.append({k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")})
        finished(oracle, trial)
    assert drawn[0] == default_values(small_space())
    assert all(values != drawn[0] for values in drawn[1:])


def test_optuna_oracle_tries_the_defaults_first_without_local_search(tmp_path):
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


ORACLES = {
    "random": lambda tmp: kt.oracles.RandomSearchOracle(OBJECTIVE, max_trials=40, seed=3),
    "hyperband": lambda tmp: tuners.FittedHyperbandOracle(OBJECTIVE, max_epochs=4, seed=3, trial_cap=40),
    "bayesian": lambda tmp: kt.oracles.BayesianOptimizationOracle(OBJECTIVE, max_trials=40, num_initial_points=3, seed=3),
    "optuna": lambda tmp: OptunaOracle(
        OBJECTIVE, max_trials=40, sampler=optuna.samplers.TPESampler(seed=0), pruner=optuna.pruners.NopPruner(),
        storage=f"sqlite:///{tmp / 'study.db'}", study_name="s"),
}  # fmt: skip


def drive(oracle, tmp_path, local_search, trials=24) -> list[dict]:
    """Runs `trials` trials through an oracle, scoring each by how close it is to 3 layers of 256 units."""
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.update_space(small_space())
    proposals.install(oracle, local_search)
    drawn = []
    for i in range(trials):
        trial = oracle.create_trial(f"t{i}")
        if trial.status != "RUNNING":
            break
        values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        if not trial.hyperparameters.values.get("tuner/round"):  # Hyperband's promotions are not new configurations
            drawn.append(values)
        score = 1.0 - abs(values["num_layers"] - 3) / 4 - 0.1 * sum(values.get(f"units_{j}") != 256 for j in range(4))
        finished(oracle, trial, score)
    return drawn


def distance(a: dict, b: dict) -> int:
    return sum(a.get(k) != b.get(k) for k in set(a) | set(b))


@pytest.mark.parametrize("name", ORACLES)
def test_every_tuner_mixes_local_moves_of_the_best_into_its_own_proposals(name, tmp_path):
    drawn = drive(ORACLES[name](tmp_path), tmp_path, LocalSearch(share=1.0, seed=5, ramp=1))
    assert drawn[0] == default_values(small_space())
    assert len({tuple(sorted(d.items())) for d in drawn}) == len(drawn)  # never the same configuration twice
    # With every later proposal local, each new configuration is one or two moves from one tried before.
    for i, values in enumerate(drawn[1:], 1):
        assert min(distance(values, earlier) for earlier in drawn[:i]) <= 4  # a move may also (de)activate units
    assert sum(min(distance(v, e) for e in drawn[:i]) <= 2 for i, v in enumerate(drawn[1:], 1)) >= len(drawn) // 2


@pytest.mark.parametrize("name", ["random", "hyperband", "optuna"])
def test_local_moves_are_seeded_and_reproducible(name, tmp_path):
    for sub in "abc":
        (tmp_path / sub).mkdir()
    first = drive(ORACLES[name](tmp_path / "a"), tmp_path / "a", LocalSearch(share=0.7, seed=9, ramp=2))
    again = drive(ORACLES[name](tmp_path / "b"), tmp_path / "b", LocalSearch(share=0.7, seed=9, ramp=2))
    other = drive(ORACLES[name](tmp_path / "c"), tmp_path / "c", LocalSearch(share=0.7, seed=10, ramp=2))
    assert first == again
    assert first != other


def test_hyperband_brackets_fit_the_trial_cap_so_promotions_happen(tmp_path):
    oracle = tuners.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, factor=3, seed=0, trial_cap=10)
    assert oracle.bracket_trials(2) == 18 and oracle.bracket_plan(2) == [(12, 2), (4, 4), (2, 10)]
    assert oracle._get_num_brackets() == 2  # the 18-trial bracket cannot finish under 10 trials
    oracle.max_trials = 10
    epochs = [values.get("tuner/epochs") for values in _hyperband_draws(oracle, tmp_path)]
    assert epochs == [4, 4, 4, 4, 4, 4, 10, 10, 10, 10]  # 6 configurations of 4 epochs, 2 promoted, then 10-epoch ones
    assert tuners.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, seed=0, trial_cap=50)._get_num_brackets() == 3
    assert tuners.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, seed=0, trial_cap=1)._get_num_brackets() == 1


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
    oracle = tuners.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, factor=3, seed=0, trial_cap=10)
    oracle.max_trials = 10
    drawn = _hyperband_draws(oracle, tmp_path)  # later trials score higher, so the last 4-epoch one beats...
    best = oracle.get_best_trials(3)
    assert [t.hyperparameters.values["tuner/epochs"] for t in best] == [10, 10, 10]
    assert best[0].score == max(t.score for t in oracle.trials.values() if t.hyperparameters.values["tuner/epochs"] == 10)
    assert len(drawn) == 10


def test_the_header_says_what_really_runs(tmp_path):
    oracle = tuners.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, factor=3, seed=0, trial_cap=10)
    assert "6×4 → 2×10 epochs" in tuners.describe_fidelity(oracle, 10, 10)
    assert tuners.describe_fidelity(kt.oracles.RandomSearchOracle(OBJECTIVE, max_trials=5), 5, 7) == (
        "up to 5 trials of up to 7 epochs each (early stopping)"
    )


def test_a_built_tuner_leaves_the_setup_out_of_later_collections(tmp_path):
    dataset = datasets.load_dataset("digits", None)
    config = RunConfig(dataset="digits", tuner="random", trials=1, seed=0,
                       checkpoint_root=str(tmp_path / "c"), log_root=str(tmp_path / "l"))  # fmt: skip
    hypermodel = search_spaces.get("dense")(SpaceContext.for_dataset(dataset))
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    tuners.make_tuner(search_plan(config, 0.0), hypermodel, DatasetFeeder(dataset), 0, lambda line: None)
    assert gc.get_freeze_count() > 10_000  # TensorFlow, Keras and the data: frozen, not walked per trial


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
    tuners.fit_schedule_to_rung(model, rung(0, 2), train_size=200, max_epochs=10)  # a 2-epoch rung: 40 steps
    x, y = keras.random.normal((200, 4), seed=1), keras.ops.zeros((200,), dtype="int32")
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)  # half way down the rung: at the schedule's middle
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(100)), rel=1e-5)
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)  # the rung's end is the schedule's end
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(200)), abs=1e-9)
    assert float(schedule(200)) < 1e-6 < float(schedule(40))  # where the old rule judged it: near the peak


def test_a_promoted_trial_warms_up_and_anneals_again_over_the_epochs_it_adds():
    schedule = ten_epoch_cosine()
    model = compiled(schedule)
    tuners.fit_schedule_to_rung(model, rung(4, 10), train_size=200, max_epochs=10)  # 6 epochs added: 120 steps
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0)  # a new warm-up, from the start
    x, y = keras.random.normal((200, 4), seed=1), keras.ops.zeros((200,), dtype="int32")
    model.fit(x, y, batch_size=10, epochs=3, verbose=0)  # 60 of the 120 steps
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(100)), rel=1e-5)


def test_other_schedules_continue_where_the_last_round_ended():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=20, decay_rate=0.9)
    model = compiled(schedule)
    tuners.fit_schedule_to_rung(model, rung(4, 10, schedule="exponential"), train_size=200, max_epochs=10)
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(80)))  # not schedule(0)


@pytest.mark.parametrize("learning_rate, hp", [(0.01, rung(4, 10, "constant")), ("cosine", rung(0, 10))])
def test_top_rung_trials_and_constant_rates_are_left_alone(learning_rate, hp):
    if learning_rate == "cosine":
        learning_rate = ten_epoch_cosine()
    model = compiled(learning_rate)
    before = float(model.optimizer.learning_rate)
    tuners.fit_schedule_to_rung(model, hp, train_size=200, max_epochs=10)
    assert float(model.optimizer.learning_rate) == pytest.approx(before)
    assert not isinstance(model.optimizer._learning_rate, (StepScale, StepOffset))


def test_local_moves_start_from_the_best_at_the_highest_fidelity_reached(tmp_path):
    oracle = tuners.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, factor=3, seed=0, trial_cap=30)
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.update_space(small_space())
    scores = {2: 0.99, 4: 0.95, 10: 0.90}  # the 2-epoch leader scores highest, but was trained least
    leaders = {}
    for i in range(14):
        trial = oracle.create_trial(f"t{i}")
        epochs = trial.hyperparameters.values["tuner/epochs"]
        score = scores[epochs] - 0.001 * i
        if epochs not in leaders or score > leaders[epochs][1]:
            leaders[epochs] = (trial.hyperparameters.values, score)
        finished(oracle, trial, score)
    assert max(leaders) >= 4, leaders  # a promotion happened
    incumbent = proposals.incumbent_values(oracle)
    assert incumbent == leaders[max(leaders)][0]


def test_the_defaults_are_kept_unless_beaten_by_more_than_the_noise(tmp_path):
    oracle = kt.oracles.RandomSearchOracle(OBJECTIVE, max_trials=10, seed=3)
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.update_space(small_space())
    proposals.install(oracle, LocalSearch(share=0.0, seed=0))
    for i, score in enumerate([0.990, 0.9905, 0.980]):  # trial 0 is the defaults
        finished(oracle, oracle.create_trial(f"t{i}"), score)
    chosen, why = tuners.choose_final(oracle, validation_size=5000)  # one standard error: 0.0014
    assert chosen.trial_id == "00" and "within one standard error" in why
    finished(oracle, oracle.create_trial("t3"), 0.9950)
    chosen, why = tuners.choose_final(oracle, validation_size=5000)
    assert chosen.score == 0.9950 and why is None
