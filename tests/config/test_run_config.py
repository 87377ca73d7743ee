from __future__ import annotations

import dataclasses

import pytest

from tuning.config.run_config import RunConfig
from tuning.errors import UsageError


def test_defaults_and_derived_names():
    config = RunConfig(dataset="mnist")
    assert (config.tuner, config.trials, config.space_name) == ("hyperband", None, "dense")
    # Under the default time budget the budget ends the search; without one, 50 trials do.
    assert config.trial_cap == 1_000 and RunConfig(dataset="mnist", time_budget=None).trial_cap == 50
    assert RunConfig(dataset="mnist", trials=7).trial_cap == 7
    assert config.run_name == "mnist-hyperband"
    assert str(config.run_dir) == "checkpoints/mnist-hyperband"
    assert str(config.log_dir) == "logs/mnist-hyperband"
    assert str(config.export_dir) == "checkpoints/mnist-hyperband/best"
    assert RunConfig(dataset="mnist", tuner="random", name="x").run_name == "x"


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig(dataset="mnist").trials = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"trials": 0}, r"--trials must be at least 1, but got trials=0"),
        ({"max_epochs": -1}, r"--max-epochs must be at least 1, but got max_epochs=-1"),
        ({"patience": -2}, r"--patience must be at least 0, but got patience=-2"),
        ({"final_epochs": 0}, r"--final-epochs must be at least 1, but got final_epochs=0"),
        ({"batch_size": 0}, r"--batch-size must be at least 1, but got batch_size=0"),
        ({"max_failures": 0}, r"--max-failures must be at least 1, but got max_failures=0"),
        ({"seed": -1}, r"--seed must be between 0 and 2\*\*32 - 1, but got seed=-1"),
        ({"name": "a/b"}, r"--name must be a plain folder name, but got name='a/b'"),
        ({"name": ".."}, r"--name must be a plain folder name"),
    ],
)
def test_bad_values_echo_the_value(changes, message):
    with pytest.raises(UsageError, match=message):
        RunConfig(dataset="mnist", **changes)


def test_the_optuna_tuner_names_are_the_registered_samplers():
    from tuning.config.run_config import OPTUNA_TUNERS
    from tuning.search import optuna_oracle

    assert set(OPTUNA_TUNERS) == set(optuna_oracle.SAMPLERS.names())
