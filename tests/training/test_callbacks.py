"""The callbacks of a trial and of the retraining: TensorBoard does its work per epoch, not per batch."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tuning.training import callbacks


class CountingSummary:
    """`tf.summary`, counting the scalars asked for."""

    def __init__(self) -> None:
        self.scalars = 0

    def scalar(self, *args, **kwargs):
        self.scalars += 1
        return tf.summary.scalar(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(tf.summary, name)


def summaries_written(board: keras.callbacks.TensorBoard, batches: int, monkeypatch) -> int:
    """Scalar summaries `board` asks for during a one-epoch fit of `batches` batches."""
    counting = CountingSummary()
    monkeypatch.setattr(type(board), "summary", property(lambda self: counting))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.zeros((4 * batches, 2), np.float32), np.zeros(4 * batches, np.int32)
    model.fit(x, y, batch_size=4, epochs=1, validation_data=(x[:4], y[:4]), callbacks=[board], verbose=0)
    return counting.scalars


@pytest.mark.parametrize("make, per_batch", [
    (lambda d: keras.callbacks.TensorBoard(str(d), write_graph=False, profile_batch=0, update_freq="epoch"), True),
    (lambda d: callbacks.tensorboard(d), False),
], ids=["keras", "tuning"])  # fmt: skip
def test_tensorboard_summaries_grow_with_batches_only_in_keras_own(make, per_batch, tmp_path, monkeypatch):
    few = summaries_written(make(tmp_path / "few"), 3, monkeypatch)
    many = summaries_written(make(tmp_path / "many"), 12, monkeypatch)
    assert few > 0
    assert (many > few) == per_batch, (few, many)


def test_tensorboard_keeps_the_name_keras_tuner_looks_for(tmp_path):
    assert type(callbacks.tensorboard(tmp_path)).__name__ == "TensorBoard"


def stopped_after(accuracies, losses, patience) -> tuple[int, int]:
    """Epochs run and the best epoch (0-based) for a scripted validation history."""
    stopper = callbacks.EarlyStopping(patience, restore_best_weights=False)
    stopper.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    stopper.model.stop_training = False  # as `fit` sets it
    stopper.on_train_begin()
    for epoch, (accuracy, loss) in enumerate(zip(accuracies, losses)):
        stopper.on_epoch_end(epoch, {"val_accuracy": accuracy, "val_loss": loss})
        if stopper.model.stop_training:
            return epoch + 1, stopper.best_epoch
    return len(accuracies), stopper.best_epoch


def test_tied_accuracy_does_not_stop_a_training_whose_loss_still_falls():
    # Accuracy stuck at 0.9 for four epochs while the loss keeps falling: keep going.
    epochs, best = stopped_after([0.8, 0.9, 0.9, 0.9, 0.9, 0.9], [0.64, 0.5, 0.4, 0.3, 0.21, 0.2], patience=2)
    assert epochs == 6
    assert best == 5  # equal accuracy, lowest loss


def test_stops_when_neither_accuracy_nor_loss_improves():
    epochs, best = stopped_after([0.8, 0.9, 0.85, 0.86, 0.87, 0.95], [0.5, 0.4, 0.45, 0.46, 0.47, 0.1], patience=2)
    assert epochs == 4 and best == 1  # epochs 2 and 3 improve neither
    assert stopped_after([0.8, 0.7, 0.6], [0.5, 0.6, 0.7], patience=0) == (2, 0)


def test_the_best_weights_are_restored():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    stopper = callbacks.EarlyStopping(1, restore_best_weights=True)
    stopper.set_model(model)
    stopper.on_train_begin()
    kept = [w.copy() for w in model.get_weights()]
    stopper.on_epoch_end(0, {"val_accuracy": 0.9, "val_loss": 0.3})
    model.set_weights([w + 1 for w in model.get_weights()])
    stopper.on_epoch_end(1, {"val_accuracy": 0.8, "val_loss": 0.4})
    stopper.on_train_end()
    for now, before in zip(model.get_weights(), kept):
        np.testing.assert_array_equal(now, before)


class WeightsPerEpoch(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = [self.model.get_weights()]

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def replanned_fit(planned: int, replanned_to: int, annealing: bool = True):
    """Fits a small model planned for `planned` epochs of 4 steps, planned again to `replanned_to` after 3."""
    from tuning.training.schedules import warmup_cosine

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(warmup_cosine(0.05, planned * 4)), "sparse_categorical_crossentropy")
    asked = []
    length = callbacks.Replanned(planned, 3, lambda model, seconds, done: asked.append((seconds, done)) or replanned_to,
                                 steps_per_epoch=4, annealing=annealing)  # fmt: skip
    seen = WeightsPerEpoch()
    x, y = np.random.default_rng(0).normal(size=(16, 2)).astype("float32"), np.arange(16) % 2
    history = model.fit(x, y, batch_size=4, epochs=20, callbacks=[length, seen], verbose=0).history
    moved = [max(float(np.abs(a - b).max()) for a, b in zip(w0, w1)) for w0, w1 in zip(seen.weights, seen.weights[1:])]
    return len(history["loss"]), length, asked, moved


def test_a_replanned_training_runs_its_new_length_and_its_schedule_follows():
    epochs, length, asked, moved = replanned_fit(planned=4, replanned_to=8)
    assert epochs == 8 and length.epochs == 8
    assert len(asked) == 1 and asked[0][1] == 3 and asked[0][0] > 0  # asked once, after 3 epochs, with a time
    # Built for 4 epochs, the schedule would reach zero after epoch 4 and the weights would stop moving;
    # resized, the traced training step reads the new span and the weights move until the last epoch.
    assert all(m > 0 for m in moved[:7]) and float(length.model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)


def test_without_the_resize_a_schedule_ends_where_it_was_built_to():
    epochs, _, _, moved = replanned_fit(planned=4, replanned_to=8, annealing=False)
    assert epochs == 8 and all(m > 0 for m in moved[:4]) and all(m == 0 for m in moved[4:])


def test_a_replanned_training_can_be_shortened_but_not_below_what_it_ran():
    assert replanned_fit(planned=10, replanned_to=5)[0] == 5
    assert replanned_fit(planned=10, replanned_to=1)[0] == 3
