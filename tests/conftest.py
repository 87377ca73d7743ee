"""Shared fixtures: a seeded Keras, small datasets made in the test, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from tuning.data.datasets import Dataset, Split

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def keras_tuner_patched():
    """Tests that build tuners themselves take the step every run takes first (`tuning.service`)."""
    from tuning.search import kt_patches

    kt_patches.apply()


@pytest.fixture(autouse=True)
def seeded_keras():
    import gc

    import keras

    keras.utils.set_random_seed(0)
    yield
    # A test that searches in this process asks, as `python -m tuning.run` does, to exempt what is alive from
    # garbage collection (`run_in_process`, `run_search(freeze_setup=True)`): each trial's collections then walk
    # only what the trial made, not the whole test session. The next test starts with nothing frozen.
    gc.unfreeze()


def run_in_process(config, **kwargs):
    """`service.tune_and_export(config)` as the command line's process runs it (`freeze_setup=True`)."""
    from tuning import service

    return service.tune_and_export(config, freeze_setup=True, **kwargs)


def make_dataset(n_train=96, n_val=32, n_test=32, shape=(8, 8), n_classes=3, seed=0) -> Dataset:
    """A learnable toy problem: the class decides which block of pixels is bright."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, n_classes, size=n).astype(np.int32)
        x = rng.uniform(0, 0.3, size=(n, *shape)).astype(np.float32)
        flat = x.reshape(n, -1)
        block = flat.shape[1] // n_classes
        for i, label in enumerate(y):
            flat[i, label * block:(label + 1) * block] += 0.7
        return Split(flat.reshape(n, *shape), y)

    return Dataset(
        name="toy", train=split(n_train), val=split(n_val), test=split(n_test),
        class_names=tuple(str(i) for i in range(n_classes)), source="made in the test",
    )  # fmt: skip


@pytest.fixture
def toy_dataset() -> Dataset:
    return make_dataset()


def run_cli(args, cwd: Path, timeout: int = 600, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m tuning.run ARGS` in a fresh process, as a user would."""
    env = dict(os.environ)
    env.pop("TUNING_DATA_DIR", None)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "tuning.run", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
