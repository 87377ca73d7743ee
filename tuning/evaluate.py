"""Retraining the best configuration and the one evaluation on the test set.

Owns: the final fit (training split, early-stopped on validation with the best
weights restored) and `evaluate_once`, the only code that feeds the test
split. Does not own: choosing the configuration (the tuner) or writing files
(`tuning.export`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np

from tuning import callbacks, hparams
from tuning.datasets import Split
from tuning.pipeline import DatasetFeeder, SplitFeeder

EVAL_BATCH_SIZE = 1024


@dataclass(frozen=True)
class Retrained:
    """The retrained model and how its training went.

    Args:
        model: The model with its best-validation weights.
        history: Keras history, one list per metric.
        best_epoch: 1-based epoch whose weights were kept.
        epochs_run: Epochs actually trained before early stopping.
        wall_seconds: Time spent in the retraining.
    """

    model: keras.Model
    history: dict
    best_epoch: int
    epochs_run: int
    wall_seconds: float


def retrain(
    hypermodel: kt.HyperModel,
    hyperparameters: kt.HyperParameters,
    feeder: DatasetFeeder,
    epochs: int,
    patience: int,
    seed: int,
    log_dir: Path,
) -> Retrained:
    """Trains the chosen configuration from scratch on the training split.

    Args:
        hypermodel: The search space.
        hyperparameters: The configuration to train.
        feeder: Train and validation feeders.
        epochs: Epoch budget.
        patience: Early-stopping patience on validation accuracy.
        seed: Seed of the weights and the shuffle order.
        log_dir: `logs/RUN`; TensorBoard goes to `final/` below it.
    """
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    started = time.monotonic()
    model = hypermodel.build(hyperparameters)
    batch_size = hyperparameters.get("batch_size")
    history = model.fit(
        feeder.train.batches(batch_size, shuffle=True, seed=seed),
        validation_data=feeder.val.batches(EVAL_BATCH_SIZE),
        epochs=epochs,
        callbacks=[
            callbacks.early_stopping(patience, restore_best_weights=True),
            keras.callbacks.TerminateOnNaN(),
            *hparams.final_session_callbacks(log_dir, hyperparameters),
        ],
        verbose=0,
    ).history
    val_accuracy = np.nan_to_num(np.asarray(history.get("val_accuracy", [np.nan])), nan=-1.0)
    return Retrained(
        model=model,
        history={k: [float(v) for v in vs] for k, vs in history.items()},
        best_epoch=int(np.argmax(val_accuracy)) + 1,
        epochs_run=len(val_accuracy),
        wall_seconds=time.monotonic() - started,
    )


def evaluate_split(model: keras.Model, split: Split) -> dict[str, float]:
    """Loss and accuracy of `model` on one split."""
    loss, accuracy = model.evaluate(SplitFeeder(split).batches(EVAL_BATCH_SIZE), verbose=0)
    return {"loss": float(loss), "accuracy": float(accuracy)}


def evaluate_once(model: keras.Model, test: Split) -> dict[str, float]:
    """The final evaluation on the test split. Call it once per run, after selection is over."""
    return evaluate_split(model, test)
