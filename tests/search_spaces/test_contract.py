"""The contract every registered search space must honour."""

from __future__ import annotations

import keras
import keras_tuner as kt
import numpy as np
import pytest

import search_spaces
from search_spaces.base import SearchSpace, SpaceContext
from tests.conftest import make_dataset
from tuning.errors import UsageError

DRAWS = 4


def context_for(dataset, batch_size=None) -> SpaceContext:
    mean, var = dataset.feature_stats()
    return SpaceContext(dataset.input_shape, dataset.n_classes, mean, var, batch_size=batch_size)


def random_draws(space: SearchSpace, count: int, seed: int):
    """Random hyperparameter sets honouring conditions, as a random-search oracle draws them."""
    space_hp = kt.HyperParameters()
    space.build(space_hp)
    for i in range(count):
        hp = space_hp.copy()
        hp.values = {}
        for entry in hp.space:
            if hp.is_active(entry):
                hp.values[entry.name] = entry.random_sample(seed + 1000 * i + len(hp.values))
        yield hp
        known = {entry.name for entry in space_hp.space}
        space_hp.merge([e for e in hp.space if e.name not in known])  # entries found while building join


@pytest.mark.parametrize("name", search_spaces.SPACES.names())
def test_random_draws_build_and_fit_one_batch(name):
    dataset = make_dataset()
    space = search_spaces.get(name)(context_for(dataset))
    assert isinstance(space, SearchSpace)
    for hp in random_draws(space, DRAWS, seed=7):
        keras.backend.clear_session(free_memory=False)
        model = space.build(hp)
        assert model.count_params() > 0
        assert model.output_shape == (None, dataset.n_classes)
        assert hp.get("batch_size") > 0
        # One batch, eagerly: tracing a 30-layer draw's train step costs seconds and proves nothing about the
        # space; every search test fits in graph mode.
        model.run_eagerly = True
        history = model.fit(dataset.train.x[:16], dataset.train.y[:16], epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0]) or hp.get("learning_rate") > 1e-2
        probabilities = model.predict(dataset.val.x[:4], verbose=0)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


@pytest.mark.parametrize("name", search_spaces.SPACES.names())
def test_fixed_batch_size_is_not_tuned(name):
    dataset = make_dataset()
    space = search_spaces.get(name)(context_for(dataset, batch_size=48))
    hp = kt.HyperParameters()
    space.build(hp)
    assert hp.get("batch_size") == 48
    assert type(hp._hps["batch_size"][0]).__name__ == "Fixed"


def test_registry_lists_dense_and_refuses_unknown():
    assert "dense" in search_spaces.SPACES.names()
    with pytest.raises(UsageError, match="unknown search space 'conv'; choose one of: .*dense"):
        search_spaces.get("conv")


def test_dense_optimizer_parameters_are_conditional():
    space = search_spaces.get("dense")(context_for(make_dataset()))
    hp = kt.HyperParameters()
    hp.Fixed("optimizer", "sgd")
    space.build(hp)
    assert "momentum" in hp and "nesterov" in hp
    assert "beta_1" not in hp
    assert "weight_decay" in hp  # decoupled weight decay applies to every optimizer
    assert isinstance(space.build(hp).optimizer, keras.optimizers.SGD)


SELU_DRAWS = 80


def test_selu_constraints_hold_for_80_random_draws():
    dataset = make_dataset()
    space = search_spaces.get("selu")(context_for(dataset))
    augmentation = (keras.layers.Reshape, keras.layers.RandomTranslation)  # training-only, before flattening
    allowed = (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Normalization,
               keras.layers.Dense, keras.layers.AlphaDropout, *augmentation)  # fmt: skip
    for hp in random_draws(space, SELU_DRAWS, seed=11):
        keras.backend.clear_session(free_memory=False)
        model = space.build_network(hp)
        layers = [l for l in model.layers if not isinstance(l, augmentation)]
        assert all(isinstance(layer, allowed) for layer in model.layers), [type(l).__name__ for l in model.layers]
        assert isinstance(layers[2], keras.layers.Normalization)  # inputs standardized first
        hidden = [l for l in layers if isinstance(l, keras.layers.Dense)][:-1]
        assert hidden
        for dense in hidden:
            assert dense.activation.__name__ == "selu"
            assert type(dense.kernel_initializer).__name__ == "LecunNormal"
        assert not any(type(l) is keras.layers.Dropout for l in layers)


def test_deep_space_is_deep_and_narrow():
    space = search_spaces.get("deep")(context_for(make_dataset()))
    for hp in random_draws(space, 5, seed=3):
        keras.backend.clear_session(free_memory=False)
        model = space.build_network(hp)
        hidden = [l for l in model.layers if isinstance(l, keras.layers.Dense)][:-1]
        assert 10 <= len(hidden) <= 30
        assert all(50 <= l.units <= 200 and l.units == hidden[0].units for l in hidden)
        norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
        assert len(norms) == len(hidden)
    assert kt.HyperParameters().Choice("x", ["nadam"]) == space.DEFAULT_OPTIMIZER
