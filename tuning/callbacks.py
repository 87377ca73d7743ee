"""The Keras callbacks a trial and the final retraining run with.

Owns: early stopping, the NaN guard and the TensorBoard writer settings. All
are stock Keras callbacks, so Keras Tuner can deep-copy them for every trial.
Does not own: the HParams session (Keras Tuner adds it to any `TensorBoard`
callback; `tuning.hparams` adds it for the retraining).
"""

from __future__ import annotations

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


def tensorboard(log_dir: Path) -> keras.callbacks.TensorBoard:
    """Epoch-level scalars only: no graph, no histograms, no profiler, so logging stays cheap."""
    return keras.callbacks.TensorBoard(
        log_dir=str(log_dir), write_graph=False, histogram_freq=0, profile_batch=0, update_freq="epoch"
    )


def search_callbacks(patience: int, log_dir: Path) -> list[keras.callbacks.Callback]:
    """The callbacks every trial gets: early stopping, NaN guard, TensorBoard.

    Args:
        patience: Early-stopping patience in epochs.
        log_dir: `logs/RUN`; Keras Tuner adds `TRIAL/execution0` below it.
    """
    return [early_stopping(patience), keras.callbacks.TerminateOnNaN(), tensorboard(log_dir)]
