"""What is retrained: the space's defaults, unless a configuration beats them by more than the validation noise."""

from __future__ import annotations

import keras_tuner as kt

from tests.search.test_tuners import OBJECTIVE, finished, small_space
from tuning.search import proposals, selection
from tuning.search.proposals import LocalSearch


def test_the_defaults_are_kept_unless_beaten_by_more_than_the_noise(tmp_path):
    oracle = kt.oracles.RandomSearchOracle(OBJECTIVE, max_trials=10, seed=3)
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.update_space(small_space())
    proposals.install(oracle, LocalSearch(share=0.0, seed=0))
    for i, score in enumerate([0.990, 0.9905, 0.980]):  # trial 0 is the defaults
        finished(oracle, oracle.create_trial(f"t{i}"), score)
    chosen, why = selection.choose_final(oracle, validation_size=5000)  # one standard error: 0.0014
    assert chosen.trial_id == "00" and "within one standard error" in why
    finished(oracle, oracle.create_trial("t3"), 0.9950)
    chosen, why = selection.choose_final(oracle, validation_size=5000)
    assert chosen.score == 0.9950 and why is None


def _ended(oracle, tuner_id: str, score: float, epochs: int, values: dict | None = None):
    trial = oracle.create_trial(tuner_id)
    if values is not None:
        trial.hyperparameters.values.update(values)
    trial.hyperparameters.values["tuner/epochs"] = epochs  # as Hyperband records a trial's rung
    finished(oracle, trial, score)
    return trial


def test_the_defaults_meet_any_other_choice_in_the_final_rung(tmp_path):
    oracle = kt.oracles.RandomSearchOracle(OBJECTIVE, max_trials=10, seed=3)
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.update_space(small_space())
    proposals.install(oracle, LocalSearch(share=0.0, seed=0))
    defaults = _ended(oracle, "t0", 0.55, epochs=2)  # the first trial is the defaults, judged after 2 epochs
    _ended(oracle, "t1", 0.50, epochs=10, values=selection.default_values(oracle.hyperparameters))
    best = _ended(oracle, "t2", 0.60, epochs=10, values={"dropout": 0.1})
    chosen, why = selection.choose_final(oracle, validation_size=400)
    assert chosen.trial_id == best.trial_id and why is None  # 0.60 against 0.50 at 10 epochs: beyond the noise
    compared = selection.defaults_to_compare(oracle, chosen)
    assert compared.trial_id != defaults.trial_id and compared.hyperparameters.values["tuner/epochs"] == 10
    assert selection.defaults_to_compare(oracle, defaults) is None  # the defaults chosen: nothing to compare
