"""The graphs of finished fits are handed back: TensorFlow's gradient registry no longer pins them."""

from __future__ import annotations

import gc

import keras
import numpy as np
import pytest
from tensorflow.python.framework.func_graph import FuncGraph

import search_spaces
from search_spaces.base import SpaceContext
from tuning.config.run_config import RunConfig
from tuning.data import datasets
from tuning.search import tuners
from tuning.service import search_plan
from tuning.training import graph_memory
from tuning.training.callbacks import search_callbacks
from tuning.training.pipeline import DatasetFeeder


def live_graphs() -> int:
    gc.collect()
    return sum(isinstance(obj, FuncGraph) for obj in gc.get_objects())


def fit_and_drop_a_model() -> None:
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    model.fit(rng.random((32, 4), dtype=np.float32), rng.integers(0, 3, 32), batch_size=16, verbose=0)


def test_releasing_lets_the_graphs_of_dropped_models_be_collected():
    graph_memory.release_finished_graphs()
    before = live_graphs()
    for _ in range(3):
        fit_and_drop_a_model()
    pinned = live_graphs()
    if graph_memory.custom_gradient_count() == 0:
        pytest.skip("this TensorFlow registers no per-call custom gradients during fit; nothing to release")
    assert pinned >= before + 3  # the leak this works around: each dropped model's train step stays alive

    assert graph_memory.release_finished_graphs() >= 3
    assert graph_memory.custom_gradient_count() == 0
    assert live_graphs() <= before


def test_releasing_keeps_the_gradients_registered_by_op_type():
    from tensorflow.python.framework import ops

    graph_memory.release_finished_graphs()
    assert graph_memory.release_finished_graphs() == 0
    assert ops.gradient_registry.lookup("MatMul") is not None
    fit_and_drop_a_model()  # training still traces its gradients after a release


def test_the_tuner_releases_each_trial_s_graphs_when_the_trial_ends(tmp_path):
    dataset = datasets.load_dataset("digits", None)
    config = RunConfig(dataset="digits", tuner="random", trials=2, max_epochs=1, seed=0, time_budget=None,
                       checkpoint_root=str(tmp_path / "c"), log_root=str(tmp_path / "l"))  # fmt: skip
    hypermodel = search_spaces.get("dense")(SpaceContext.for_dataset(dataset))
    tuner = tuners.make_tuner(search_plan(config, 0.0), hypermodel, DatasetFeeder(dataset), 0, lambda line: None)
    tuner.search(epochs=1, callbacks=search_callbacks(2, config.log_dir), verbose=0)
    assert len(tuner.oracle.trials) == 2
    assert graph_memory.custom_gradient_count() == 0
