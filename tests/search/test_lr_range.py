"""The learning-rate range test, on a problem whose divergence point is known."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tuning.cli import lr_find
from tuning.errors import UsageError
from tuning.search.lr_range import range_test


def linear_regression_problem(n=4096, batch=64):
    """Plain SGD on mean((w x - y)^2) with E[x^2] = 1 converges for lr < 1 and diverges above it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 1)).astype("float32")
    y = (2 * x + 0.1 * rng.normal(size=(n, 1))).astype("float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(learning_rate=0.01), "mse")
    return model, tf.data.Dataset.from_tensor_slices((x, y)).shuffle(n, seed=0).batch(batch)


def test_divergence_is_found_where_theory_puts_it():
    model, data = linear_regression_problem()
    result = range_test(model, data, steps=200, min_lr=1e-4, max_lr=100.0)
    assert result.diverged_at is not None and 0.9 <= result.diverged_at <= 4.0
    assert len(result.losses) < 200  # stopped early
    assert result.best <= result.diverged_at
    assert result.suggested == pytest.approx(result.best / 10)
    assert result.bounds[0] < result.suggested < result.bounds[1] < result.diverged_at
    rates = np.array(result.learning_rates)
    np.testing.assert_allclose(rates[1:] / rates[:-1], (1e6) ** (1 / 200), rtol=1e-6)  # exponential growth


def test_schedule_is_refused():
    model, data = linear_regression_problem()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    model.compile(keras.optimizers.SGD(learning_rate=schedule), "mse")
    with pytest.raises(ValueError, match="needs a constant learning rate"):
        range_test(model, data, steps=20)


def test_lr_find_command_writes_plot_and_csv(tmp_path, capsys):
    code = lr_find.main(["digits", "--hp", "optimizer=sgd", "--hp", "num_layers=2", "--steps", "60",
                         "--log-root", str(tmp_path)])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "suggested learning rate:" in out and "bounds to search:" in out and "optimizer=sgd" in out
    folder = tmp_path / "lr_find" / "digits-dense"
    assert (folder / "lr_range.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (folder / "lr_range.csv").read_text().splitlines()
    assert lines[0] == "learning_rate,loss,smoothed_loss" and len(lines) > 10


@pytest.mark.parametrize("argv, message", [
    (["digits", "--hp", "bogus=1", "--steps", "20"], "unknown hyperparameter"),
    (["digits", "--hp", "activation=sigmoidal", "--steps", "20"], "activation='sigmoidal' is not offered"),
    (["digits", "--hp", "novalue"], "--hp takes name=value"),
    (["digits", "--min-lr", "1", "--max-lr", "0.1"], "need 0 < min < max"),
])  # fmt: skip
def test_lr_find_bad_input(argv, message, tmp_path, capsys):
    assert lr_find.main([*argv, "--log-root", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_parse_hp_types():
    assert lr_find.parse_hp("a=3") == ("a", 3)
    assert lr_find.parse_hp("a=0.5") == ("a", 0.5)
    assert lr_find.parse_hp("a=True") == ("a", True)
    assert lr_find.parse_hp("a=relu") == ("a", "relu")
    with pytest.raises(UsageError):
        lr_find.parse_hp("=3")
