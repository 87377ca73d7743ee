"""The ensemble, the test evaluation, MC dropout and calibration."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tuning.data.datasets import Split
from tuning.final import evaluate
from tuning.final.evaluate import evaluate_once, expected_calibration_error, has_dropout, mc_dropout_passes


def chain(dropout: bool) -> keras.Model:
    inputs = keras.Input((8, 8))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    if dropout:
        x = keras.layers.Dropout(0.5)(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_passes_differ_with_dropout_and_agree_without(toy_dataset):
    x = toy_dataset.test.x
    with_dropout = mc_dropout_passes(chain(True), x, passes=4)
    assert with_dropout.shape == (4, len(x), 3)
    assert not np.allclose(with_dropout[0], with_dropout[1])
    model = chain(False)
    without = mc_dropout_passes(model, x, passes=3)
    np.testing.assert_allclose(without[0], without[2], atol=1e-6)
    np.testing.assert_allclose(without[0], model.predict(x, verbose=0), atol=1e-5)  # BN stays in inference mode


def test_evaluate_once_reports_mc_dropout_only_with_dropout(toy_dataset):
    assert has_dropout(chain(True)) and not has_dropout(chain(False))
    result = evaluate_once(chain(True), toy_dataset.test, mc_passes=5)
    assert result["mc_dropout"]["passes"] == 5 and 0 <= result["mc_dropout"]["accuracy"] <= 1
    assert evaluate_once(chain(False), toy_dataset.test)["mc_dropout"] is None


def test_ece_known_values():
    labels = np.array([0, 0, 1, 1])
    perfect = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, labels) == 0.0
    # all at 0.8 confidence, 3 of 4 right: |0.75 - 0.8| = 0.05
    confident = np.array([[0.8, 0.2], [0.8, 0.2], [0.2, 0.8], [0.8, 0.2]])
    assert expected_calibration_error(confident, labels) == pytest.approx(0.05)
    # two bins: 0.6 (1 of 2 right) and 0.9 (2 of 2 right): 0.5*0.1 + 0.5*0.1
    mixed = np.array([[0.6, 0.4], [0.6, 0.4], [0.1, 0.9], [0.1, 0.9]])
    assert expected_calibration_error(mixed, np.array([0, 1, 1, 1])) == pytest.approx(0.1)


def test_wilson_interval_known_values():
    from tuning.final.evaluate import wilson_interval

    low, high = wilson_interval(95, 100)
    assert (low, high) == (pytest.approx(0.8882, abs=1e-4), pytest.approx(0.9785, abs=1e-4))
    low, high = wilson_interval(0, 10)  # never below 0, and not degenerate at the edge
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(9_800, 10_000)
    assert (low, high) == (pytest.approx(0.97707, abs=1e-5), pytest.approx(0.98257, abs=1e-5))
    with pytest.raises(ValueError, match="trials must be at least 1, but got trials=0"):
        wilson_interval(0, 0)


def test_spread():
    from tuning.final.evaluate import spread

    assert spread([0.9, 0.8, 1.0]) == pytest.approx({"mean": 0.9, "std": 0.1, "min": 0.8, "max": 1.0})
    assert spread([0.5])["std"] == 0.0


def small_model(seed: int, dropout: float = 0.0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="image")
    x = keras.layers.Dense(8, activation="relu")(inputs)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="dense")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_the_average_of_models_predicts_their_mean_and_loads_in_safe_mode(tmp_path):
    models = [small_model(seed, dropout=0.5) for seed in range(3)]
    x = np.random.default_rng(0).uniform(size=(20, 6)).astype("float32")
    ensemble = evaluate.average(models)
    expected = np.mean([m.predict(x, verbose=0) for m in models], axis=0)
    assert np.allclose(ensemble.predict(x, verbose=0), expected, atol=1e-6)
    assert evaluate.members(ensemble)[0].name == "member_0" and len(evaluate.members(ensemble)) == 3
    assert evaluate.has_dropout(ensemble) and not evaluate.has_dropout(evaluate.average([small_model(0)]))
    ensemble.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    assert np.allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)
    passes = mc_dropout_passes(ensemble, x, passes=4)
    assert passes.shape == (4, 20, 3) and not np.allclose(passes[0], passes[1])  # dropout is live in every member
    assert evaluate.average(models[:1]) is models[0]


def test_evaluate_split_matches_keras_on_a_compiled_model():
    model = small_model(0)
    rng = np.random.default_rng(1)
    split = Split(rng.uniform(size=(50, 6)).astype("float32"), rng.integers(0, 3, size=50).astype("int32"))
    loss, accuracy = model.evaluate(split.x, split.y, verbose=0)
    scores = evaluate.evaluate_split(model, split)
    assert scores["loss"] == pytest.approx(loss, rel=1e-4) and scores["accuracy"] == pytest.approx(accuracy)
