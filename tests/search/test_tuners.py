"""The tuners start from the space's defaults, then mix their own proposals with local moves;
Hyperband's brackets fit the trial cap and rank trials at equal epochs; a trial's schedule spans
its rung; local moves start from the highest fidelity reached; building a tuner spares later trials'
collections."""

from __future__ import annotations

import gc

import keras_tuner as kt
import optuna
import pytest

import search_spaces
from search_spaces.base import SpaceContext, default_values
from tuning.config.run_config import RunConfig
from tuning.data import datasets
from tuning.search import hyperband, proposals, tuners
from tuning.search.optuna_oracle import OptunaOracle
from tuning.search.proposals import LocalSearch
from tuning.service import search_plan
from tuning.training.pipeline import DatasetFeeder

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
    lambda: hyperband.FittedHyperbandOracle(OBJECTIVE, max_epochs=4, seed=3, trial_cap=50),
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
    "hyperband": lambda tmp: hyperband.FittedHyperbandOracle(OBJECTIVE, max_epochs=4, seed=3, trial_cap=40),
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


def test_the_header_says_what_really_runs(tmp_path):
    oracle = hyperband.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, factor=3, seed=0, trial_cap=10)
    assert "6×4 → 2×10 epochs" in tuners.describe_fidelity(oracle, 10, 10)
    assert "no rung" not in tuners.describe_fidelity(oracle, 10, 10)
    floored = hyperband.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, factor=3, seed=0, trial_cap=50, lowest_epochs=4)
    header = tuners.describe_fidelity(floored, 50, 10)
    assert "from 6×4 → 2×10 epochs (configurations × epochs), then less aggressive ones; no rung under 4 epochs" in header
    assert tuners.describe_fidelity(kt.oracles.RandomSearchOracle(OBJECTIVE, max_trials=5), 5, 7) == (
        "up to 5 trials of up to 7 epochs each (early stopping)"
    )


def test_building_a_tuner_changes_no_process_wide_state_and_the_freeze_is_the_callers_step(tmp_path):
    dataset = datasets.load_dataset("digits", None)
    config = RunConfig(dataset="digits", tuner="random", trials=1, seed=0,
                       checkpoint_root=str(tmp_path / "c"), log_root=str(tmp_path / "l"))  # fmt: skip
    hypermodel = search_spaces.get("dense")(SpaceContext.for_dataset(dataset))
    assert gc.get_freeze_count() == 0
    tuners.make_tuner(search_plan(config, 0.0), hypermodel, DatasetFeeder(dataset), 0, lambda line: None)
    assert gc.get_freeze_count() == 0  # nothing frozen behind the caller's back
    tuners.exempt_setup_from_gc()  # what `run_search(freeze_setup=True)` does once the tuner is built
    assert gc.get_freeze_count() > 10_000  # TensorFlow, Keras and the data: frozen, not walked per trial


def test_hyperband_takes_its_lowest_rung_from_the_training_examples(tmp_path):
    dataset = datasets.load_dataset("digits", None)
    config = RunConfig(dataset="digits", tuner="hyperband", trials=30, max_epochs=10, seed=0,
                       checkpoint_root=str(tmp_path / "c"), log_root=str(tmp_path / "l"))  # fmt: skip
    hypermodel = search_spaces.get("dense")(SpaceContext.for_dataset(dataset))
    tuner = tuners.make_tuner(search_plan(config, 0.0), hypermodel, DatasetFeeder(dataset), 0, lambda line: None)
    # Under 3,600 training examples even 10 epochs see fewer than 36,000: every trial is a top-rung one.
    assert len(dataset.train) < 3_600 and tuner.oracle.lowest_epochs == 10 and tuner.oracle._get_num_brackets() == 1
    assert "no rung under 10 epochs" in tuners.describe_fidelity(tuner.oracle, 30, 10)


def test_local_moves_start_from_the_best_at_the_highest_fidelity_reached(tmp_path):
    oracle = hyperband.FittedHyperbandOracle(OBJECTIVE, max_epochs=10, factor=3, seed=0, trial_cap=30)
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


