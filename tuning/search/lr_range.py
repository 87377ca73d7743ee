"""The learning-rate range test: grow the rate exponentially, watch the loss.

Owns: `ExponentialLearningRate` (a small, deep-copyable Keras callback that
sets the rate before each batch, records each batch's loss and stops when the
loss diverges), the suggestion drawn from the curve, the CSV and plot, and
running the test on a registered dataset and space (`dataset_range_test`).
Does not own: the command line (`tuning.lr_find`) or when a run tests
(`tuning.service`, `--lr-range auto`).

The suggestion follows the usual reading of the curve: the loss is lowest at
some rate `r_min`, and a good constant rate is about ten times lower. The
bounds worth searching run from `r_min / 100` to `r_min / 3`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

import search_spaces
from search_spaces.base import SpaceContext
from tuning.data import datasets
from tuning.training.pipeline import SplitFeeder

SMOOTHING = 0.9
DIVERGENCE_FACTOR = 4.0


class ExponentialLearningRate(keras.callbacks.Callback):
    """Sets the learning rate to `min_lr * growth**step` and records the batch losses.

    Args:
        min_lr: The first rate.
        max_lr: The rate reached after `steps` batches.
        steps: Batches over which the rate grows.
        divergence_factor: Stop when the smoothed loss exceeds this multiple of
            its minimum. Defaults to 4.
    """

    def __init__(self, min_lr: float, max_lr: float, steps: int, divergence_factor: float = DIVERGENCE_FACTOR):
        super().__init__()
        self.min_lr, self.max_lr, self.steps = min_lr, max_lr, max(1, steps)
        self.divergence_factor = divergence_factor
        self.growth = (max_lr / min_lr) ** (1.0 / self.steps)
        self.learning_rates: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.diverged_at: Optional[float] = None
        self._previous_mean = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        rate = self.min_lr * self.growth ** len(self.learning_rates)
        self.model.optimizer.learning_rate = rate
        self.learning_rates.append(rate)

    def on_train_batch_end(self, batch, logs=None):
        # Keras reports the epoch's running mean; recover this batch's own loss.
        mean = float(logs["loss"])
        loss = mean * (batch + 1) - self._previous_mean * batch
        self._previous_mean = mean
        self.losses.append(loss)
        previous = self.smoothed[-1] if self.smoothed else loss
        smoothed = SMOOTHING * previous + (1 - SMOOTHING) * loss if math.isfinite(loss) else math.inf
        self.smoothed.append(smoothed)
        lowest = min(self.smoothed)
        if not math.isfinite(smoothed) or (len(self.smoothed) > 5 and smoothed > self.divergence_factor * lowest):
            self.diverged_at = self.learning_rates[-1]
            self.model.stop_training = True
        elif len(self.learning_rates) >= self.steps:
            self.model.stop_training = True


@dataclass(frozen=True)
class RangeTestResult:
    """What a range test found.

    Args:
        learning_rates: The rate of each batch.
        losses: Each batch's loss.
        smoothed: Exponentially smoothed losses.
        best: The rate at the lowest smoothed loss.
        suggested: `best / 10`.
        bounds: `(best / 100, best / 3)`, the range worth searching.
        diverged_at: The rate at which the loss diverged, or None.
    """

    learning_rates: list[float]
    losses: list[float]
    smoothed: list[float]
    best: float
    suggested: float
    bounds: tuple[float, float]
    diverged_at: Optional[float]


def range_test(
    model: keras.Model,
    train: tf.data.Dataset,
    steps: int,
    min_lr: float = 1e-6,
    max_lr: float = 10.0,
) -> RangeTestResult:
    """Trains `model` for up to `steps` batches while the learning rate grows.

    Args:
        model: A compiled model whose optimizer has a constant learning rate.
            Its weights are changed; use a fresh model for training afterwards.
        train: Batches of `(x, y)`; repeated if shorter than `steps`.
        steps: Batches to grow the rate over (about one epoch).
        min_lr: The first rate. Defaults to 1e-6.
        max_lr: The last rate. Defaults to 10.
    """
    if not 0 < min_lr < max_lr:
        raise ValueError(f"need 0 < min_lr < max_lr, but got min_lr={min_lr}, max_lr={max_lr}")
    if isinstance(model.optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        raise ValueError("the range test needs a constant learning rate, but the optimizer has a schedule")
    recorder = ExponentialLearningRate(min_lr, max_lr, steps)
    model.fit(train.repeat(), steps_per_epoch=steps, epochs=1, callbacks=[recorder], verbose=0)
    smoothed = np.asarray(recorder.smoothed)
    finite = np.where(np.isfinite(smoothed), smoothed, np.inf)
    best = float(recorder.learning_rates[int(np.argmin(finite))])
    return RangeTestResult(
        learning_rates=recorder.learning_rates[: len(recorder.losses)],
        losses=recorder.losses,
        smoothed=recorder.smoothed,
        best=best,
        suggested=best / 10,
        bounds=(max(best / 100, min_lr), max(best / 3, min_lr * 3)),
        diverged_at=recorder.diverged_at,
    )


def write_outputs(result: RangeTestResult, folder: Path, title: str) -> tuple[Path, Path]:
    """Writes `lr_range.csv` and `lr_range.png` (loss against log learning rate) into `folder`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = folder / "lr_range.csv", folder / "lr_range.png"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["learning_rate", "loss", "smoothed_loss"])
        writer.writerows(zip(result.learning_rates, result.losses, result.smoothed))
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(result.learning_rates, result.losses, alpha=0.3, label="batch loss")
    axes.plot(result.learning_rates, result.smoothed, label="smoothed loss")
    axes.axvline(result.suggested, color="green", linestyle="--", label=f"suggested {result.suggested:.2e}")
    axes.axvspan(*result.bounds, color="green", alpha=0.08, label="bounds to search")
    if result.diverged_at:
        axes.axvline(result.diverged_at, color="red", linestyle=":", label=f"diverged {result.diverged_at:.2e}")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    if finite:
        axes.set_ylim(0, min(max(finite), DIVERGENCE_FACTOR * min(finite)) * 1.1)
    axes.set_xscale("log")
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel("training loss")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return csv_path, png_path


def space_range_test(hypermodel, train_feeder, overrides: dict, seed: int = 0, steps: Optional[int] = None,
                     min_lr: float = 1e-6, max_lr: float = 10.0):  # fmt: skip
    """Runs the range test on one configuration of a search space.

    The configuration is the space's defaults with `overrides` applied, and a
    constant learning rate (the test sets the rate itself).

    Args:
        hypermodel: A `SearchSpace` bound to the dataset.
        train_feeder: The training split's `SplitFeeder`.
        overrides: Hyperparameter values to fix, e.g. `{"optimizer": "sgd"}`.
        seed: Seed of the weights and the shuffle order. Defaults to 0.
        steps: Batches to grow the rate over. Defaults to one epoch.
        min_lr: The first rate. Defaults to 1e-6.
        max_lr: The last rate. Defaults to 10.

    Returns:
        `(RangeTestResult, hyperparameters used)`.

    Raises:
        ValueError: An override names no hyperparameter of the space, or a
            value the space does not offer.
    """
    hp = kt.HyperParameters()
    hp.values.update(overrides)  # seeding values makes the space's own declarations take them
    hp.values["lr_schedule"] = "constant"
    keras.utils.set_random_seed(seed)
    try:
        model, build_error = hypermodel.build(hp), None
    except Exception as error:  # reported below, after the clearer checks of the overrides
        model, build_error = None, error
    declared = {entry.name: entry for entry in hp.space}
    for name, value in overrides.items():
        offered = getattr(declared.get(name), "values", None)
        if offered is not None and value not in offered:
            raise ValueError(f"{name}={value!r} is not offered; choose one of: {', '.join(map(str, offered))}")
    if build_error is not None:
        raise ValueError(f"this configuration does not build: {build_error}")
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for this configuration; "
            f"it has: {', '.join(sorted(declared))}"
        )
    batch_size = hp.get("batch_size")
    steps = steps or math.ceil(train_feeder.size / batch_size)
    result = range_test(model, train_feeder.batches(batch_size, shuffle=True, seed=seed), steps, min_lr, max_lr)
    return result, hp


def dataset_range_test(dataset: str, space: str, overrides: dict, data_dir: Optional[str] = None,
                       batch_size: Optional[int] = None, **test_options):  # fmt: skip
    """Runs the range test on one configuration of a registered space, on a registered dataset's training split.

    Args:
        dataset: A name in `tuning.data.datasets.DATASETS`.
        space: A name in `search_spaces.SPACES`.
        overrides: Hyperparameter values to fix, e.g. `{"optimizer": "sgd"}`.
        data_dir: Offline data. Defaults to None.
        batch_size: A fixed batch size. Defaults to None (the space's default).
        **test_options: `seed`, `steps`, `min_lr` and `max_lr` of `space_range_test`.

    Returns:
        `(RangeTestResult, hyperparameters used)`, as `space_range_test`.
    """
    space_class = search_spaces.get(space)
    data = datasets.load_dataset(dataset, data_dir)
    hypermodel = space_class(SpaceContext.for_dataset(data, batch_size=batch_size))
    return space_range_test(hypermodel, SplitFeeder(data.train), overrides, **test_options)
