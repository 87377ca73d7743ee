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
