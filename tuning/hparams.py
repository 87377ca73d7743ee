"""Everything for TensorBoard's HParams dashboard.

Owns: the experiment summary (`hparams_config`: every hyperparameter with its
domain, and the metrics) at the top of `logs/RUN/`, and the session of the
final retraining. Per-trial sessions are written by Keras Tuner itself, which
attaches `hparams_api.KerasCallback` to each trial's `TensorBoard` callback;
this module converts hyperparameters with the same Keras Tuner function so
the names and domains agree.
"""

from __future__ import annotations

from pathlib import Path

import keras
import keras_tuner as kt
import tensorflow as tf
from keras_tuner.src.engine import tuner_utils
from tensorboard.plugins.hparams import api as hp_api

FINAL_SESSION = "final-retrain"

METRICS = (
    hp_api.Metric("epoch_accuracy", group="validation", display_name="val accuracy"),
    hp_api.Metric("epoch_loss", group="validation", display_name="val loss"),
    hp_api.Metric("epoch_accuracy", group="train", display_name="train accuracy"),
    hp_api.Metric("epoch_loss", group="train", display_name="train loss"),
    hp_api.Metric("pruned_at_epoch", display_name="pruned at epoch"),
)


def log_pruned(session_dir, epochs: int) -> None:
    """Records, in a trial's own run, that Optuna pruned it after `epochs` epochs."""
    writer = tf.summary.create_file_writer(str(session_dir))
    with writer.as_default():
        tf.summary.scalar("pruned_at_epoch", epochs, step=epochs)
    writer.close()


def to_hparams(hyperparameters: kt.HyperParameters) -> dict:
    """Maps the active hyperparameters to `{hp_api.HParam: value}`, as Keras Tuner does per trial."""
    return tuner_utils.convert_hyperparams_to_hparams(hyperparameters, hp_api)


def write_experiment(log_dir: Path, hyperparameters: kt.HyperParameters) -> list[str]:
    """Writes the experiment summary listing every hyperparameter of the space.

    Conditional hyperparameters are listed too (with their defaults standing
    in as values), so the dashboard has a column for each one even when a
    trial did not use it. An earlier summary in `log_dir` is replaced.

    Args:
        log_dir: `logs/RUN`.
        hyperparameters: The search space, e.g. `tuner.oracle.hyperparameters`.

    Returns:
        The names of the hyperparameters written.
    """
    every = hyperparameters.copy()
    every.values = {hp.name: hp.default for hp in every.space}
    hparams = sorted(to_hparams(every), key=lambda h: h.name)
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("events.out.tfevents.*"):
        old.unlink()
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        hp_api.hparams_config(hparams=hparams, metrics=list(METRICS))
    writer.close()
    return [h.name for h in hparams]


def final_session_callbacks(
    log_dir: Path, hyperparameters: kt.HyperParameters, seed: int
) -> list[keras.callbacks.Callback]:
    """TensorBoard scalars plus an HParams session `final-retrain-seed-S` in `logs/RUN/final/seed-S`."""
    from tuning.callbacks import tensorboard

    final_dir = log_dir / "final" / f"seed-{seed}"
    return [
        tensorboard(final_dir),
        hp_api.KerasCallback(str(final_dir), to_hparams(hyperparameters), trial_id=f"{FINAL_SESSION}-seed-{seed}"),
    ]
