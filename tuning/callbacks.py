"""The Keras callbacks a trial and the final retraining run with.

Owns: early stopping, the NaN guard, the TensorBoard writer settings and the
wall-clock `Deadline`. All are small Keras callbacks, so Keras Tuner can deep-copy them for every trial.
Does not own: the HParams session (Keras Tuner adds it to any `TensorBoard`
callback; `tuning.hparams` adds it for the retraining).
"""

from __future__ import annotations

import time
from pathlib import Path

import keras

OBJECTIVE = "val_accuracy"


def early_stopping(patience: int, restore_best_weights: bool = False) -> keras.callbacks.EarlyStopping:
    """Stops when validation accuracy has not improved for `patience` epochs.

    Args:
        patience: Epochs without improvement before stopping.
        restore_best_weights: Whether to end on the best epoch's weights.
            Defaults to False.
    """
    return keras.callbacks.EarlyStopping(
        monitor=OBJECTIVE, mode="max", patience=patience, restore_best_weights=restore_best_weights
    )


class Deadline(keras.callbacks.Callback):
    """Stops training after the epoch that ends past a wall-clock time.

    The time is absolute (`time.time()`), so a deep copy made for another
    trial, or a copy in another process, keeps the same deadline.

    Args:
        at: Seconds since the epoch, as `time.time()` counts them.
    """

    def __init__(self, at: float) -> None:
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if time.time() >= self.at:
            self.model.stop_training = True


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras's `TensorBoard` without its per-batch hooks.

    Keras's own runs them even with `update_freq="epoch"`: it calls
    `tf.summary.scalar` for every log of every batch, with no writer to
    write to. That costs about 0.1 ms a batch here, some 4% of an epoch of a
    small MNIST model at batch size 128. The class keeps its name because
    Keras Tuner recognizes `TensorBoard` callbacks by name, to give each
    trial its own directory and HParams session.
    """

    on_train_batch_begin = keras.callbacks.Callback.on_train_batch_begin
    on_train_batch_end = keras.callbacks.Callback.on_train_batch_end
    on_test_batch_begin = keras.callbacks.Callback.on_test_batch_begin


def tensorboard(log_dir: Path) -> keras.callbacks.TensorBoard:
    """Epoch-level scalars only: no graph, no histograms, no profiler, no per-batch hook, so logging stays cheap."""
    return TensorBoard(log_dir=str(log_dir), write_graph=False, histogram_freq=0, profile_batch=0, update_freq="epoch")


def search_callbacks(patience: int, log_dir: Path, deadline: float | None = None) -> list[keras.callbacks.Callback]:
    """The callbacks every trial gets: early stopping, NaN guard, TensorBoard, and a deadline if any.

    Args:
        patience: Early-stopping patience in epochs.
        log_dir: `logs/RUN`; Keras Tuner adds `TRIAL/execution0` below it.
        deadline: `time.time()` after which running trials stop. Defaults to None.
    """
    found = [early_stopping(patience), keras.callbacks.TerminateOnNaN(), tensorboard(log_dir)]
    return found + ([Deadline(deadline)] if deadline is not None else [])
