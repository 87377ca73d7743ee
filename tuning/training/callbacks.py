"""The Keras callbacks a trial and the final retraining run with.

Owns: early stopping, the NaN guard, the TensorBoard writer settings, the
wall-clock `Deadline` and a retraining's `Replanned` length. All are small Keras
callbacks, so Keras Tuner can deep-copy them for every trial.
Does not own: the HParams session (Keras Tuner adds it to any `TensorBoard`
callback; `tuning.records.hparams` adds it for the retraining).
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import keras
from keras import ops

from tuning.training.schedules import Resizable

OBJECTIVE = "val_accuracy"


class EarlyStopping(keras.callbacks.Callback):
    """Stops after `patience` epochs in which validation accuracy did not rise *and* validation loss did not fall.

    Keras's `EarlyStopping` watches one metric. On validation accuracy alone,
    a plateau of ties stops a training whose loss is still falling fast (seen:
    a retraining stopped at epoch 4 of 7 while validation loss went from 0.64
    to 0.21, exporting a model with a calibration error of 0.31). Here either
    improving resets the count. The best epoch is the one with the highest
    validation accuracy, ties going to the lower loss; with
    `restore_best_weights` training ends on its weights.

    Args:
        patience: Epochs without improvement of either metric before stopping.
        restore_best_weights: Whether to end on the best epoch's weights.
            Defaults to False.
    """

    def __init__(self, patience: int, restore_best_weights: bool = False) -> None:
        super().__init__()
        self.patience = patience
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best_accuracy, self.best_loss = -math.inf, math.inf
        self.best_key, self.best_weights, self.best_epoch = None, None, None

    def on_epoch_end(self, epoch, logs=None):
        accuracy, loss = (logs or {}).get(OBJECTIVE), (logs or {}).get("val_loss")
        if accuracy is None or loss is None:
            return
        key = best_epoch_key(accuracy, loss)
        if self.best_key is None or key > self.best_key:
            self.best_key, self.best_epoch = key, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
        improved = accuracy > self.best_accuracy or loss < self.best_loss
        self.best_accuracy, self.best_loss = max(self.best_accuracy, accuracy), min(self.best_loss, loss)
        self.wait = 0 if improved else self.wait + 1
        if self.wait and self.wait >= self.patience:  # Keras's rule: `patience` epochs without improvement
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def best_epoch_key(accuracy: float, loss: float) -> tuple[float, float]:
    """How epochs are ranked: validation accuracy, then the lower validation loss (NaN ranks last)."""
    accuracy = accuracy if math.isfinite(accuracy) else -math.inf
    loss = loss if math.isfinite(loss) else math.inf
    return (accuracy, -loss)


class Deadline(keras.callbacks.Callback):
    """Stops training after the epoch that ends past a wall-clock time.

    The time is absolute (`time.time()`), so a deep copy made for another
    trial, or a copy in another process, keeps the same deadline.

    Args:
        at: Seconds since the epoch, as `time.time()` counts them, or a
            function returning them (read at every epoch's end, so a budget
            that moves its deadline moves this one).
    """

    def __init__(self, at: float | Callable[[], float]) -> None:
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if time.time() >= (self.at() if callable(self.at) else self.at):
            self.model.stop_training = True


class Progress(keras.callbacks.Callback):
    """Says one line every `every_seconds` of training (and after the last epoch): epoch, validation scores, time.

    Long retrainings otherwise run for minutes in silence; Keras's own
    per-batch bars would flood a log file.

    Args:
        say: Where the lines go.
        label: What trains, e.g. `"retrain seed 3"`.
        epochs: The epoch budget, for "epoch 10/30", or a function that returns it (a `Replanned` length).
        every_seconds: Least time between two lines. Defaults to 30.
    """

    def __init__(self, say: Callable[[str], None], label: str, epochs: int | Callable[[], int],
                 every_seconds: float = 30.0) -> None:  # fmt: skip
        super().__init__()
        self.say, self.label, self.epochs, self.every_seconds = say, label, epochs, every_seconds

    def on_train_begin(self, logs=None):
        self._started = self._last = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now, epochs = time.monotonic(), self.epochs() if callable(self.epochs) else self.epochs
        if now - self._last < self.every_seconds and epoch + 1 < epochs:
            return
        self._last = now
        logs = logs or {}
        scores = "  ".join(f"{k}={logs[k]:.4f}" for k in (OBJECTIVE, "val_loss") if k in logs)
        self.say(f"{self.label}: epoch {epoch + 1}/{epochs}  {scores}  {now - self._started:.0f}s")


class EpochTimer(keras.callbacks.Callback):
    """Times each epoch (validation included) and hands it on with the epoch's logs.

    Args:
        on_epoch: Called as `on_epoch(epoch, logs, seconds)` after every epoch. Defaults to None.
    """

    def __init__(self, on_epoch: Callable[[int, dict, float], object] | None = None) -> None:
        super().__init__()
        self.on_epoch = on_epoch
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._began = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.monotonic() - self._began)
        if self.on_epoch is not None:
            self.on_epoch(epoch, logs or {}, self.seconds[-1])


def steady_epoch_seconds(seconds: Sequence[float]) -> float | None:
    """A steady epoch's wall time: the upper median of the epochs after the first (which traces the step).

    The first alone when it is the only one; None when there are none. The
    one definition the search (a trial's epoch time), the retraining's
    planner and `Replanned` share.

    Args:
        seconds: Each epoch's wall time, validation included, in order.
    """
    steady = list(seconds[1:]) or list(seconds)
    return statistics.median_high(steady) if steady else None


class Replanned(EpochTimer):
    """Ends training after its planned epochs, planned again from its own epochs once they are timed.

    `fit` runs with an upper bound of epochs and this callback stops it at
    `epochs`. After `replan_at` epochs, `replan` is given the model and the
    steady time of its epochs (`steady_epoch_seconds`), and answers
    the epochs the training should now have. An annealing schedule's
    remaining steps are then stretched or shrunk (`Resizable`), so it still
    ends at the last epoch; other schedules do not depend on the length.

    Args:
        epochs: The epochs planned before training.
        replan_at: Epochs trained when it plans again; at least 2.
        replan: `replan(model, seconds_per_epoch, epochs_done)` returns the epochs planned now.
        steps_per_epoch: Batches per epoch, as the model's schedule was built with them.
        annealing: Whether the learning-rate schedule spans the planned epochs. Defaults to False.
    """

    def __init__(self, epochs: int, replan_at: int, replan: Callable[[keras.Model, float, int], int],
                 steps_per_epoch: int, annealing: bool = False) -> None:  # fmt: skip
        super().__init__()  # times each epoch into `self.seconds`
        self.epochs, self.replan_at, self.replan, self.annealing = epochs, max(2, replan_at), replan, annealing
        self.steps_per_epoch = steps_per_epoch
        self.schedule: Resizable | None = None

    def on_train_begin(self, logs=None):
        schedule = getattr(self.model.optimizer, "_learning_rate", None)  # Keras keeps the schedule object here
        if self.annealing and isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            # Wrapped before the first step traces the training function, which then reads its variables.
            self.schedule = Resizable(schedule, end_step=self.epochs * self.steps_per_epoch)
            self.model.optimizer.learning_rate = self.schedule

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        done = epoch + 1
        if done == self.replan_at and done < self.epochs:
            epochs = max(done, int(self.replan(self.model, steady_epoch_seconds(self.seconds), done)))
            if epochs != self.epochs and self.schedule is not None:
                step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
                self.schedule.resize(step, step + (epochs - done) * (step // done))
            self.epochs = epochs
        if done >= self.epochs:
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


def search_callbacks(
    patience: int, log_dir: Path, deadline: float | Callable[[], float] | None = None
) -> list[keras.callbacks.Callback]:
    """The callbacks every trial gets: early stopping, NaN guard, TensorBoard, and a deadline if any.

    Args:
        patience: Early-stopping patience in epochs.
        log_dir: `logs/RUN`; Keras Tuner adds `TRIAL/execution0` below it.
        deadline: `time.time()` after which running trials stop, or a function
            returning it. Defaults to None.
    """
    found = [EarlyStopping(patience), keras.callbacks.TerminateOnNaN(), tensorboard(log_dir)]
    return found + ([Deadline(deadline)] if deadline is not None else [])
