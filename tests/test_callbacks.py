"""The callbacks of a trial and of the retraining: TensorBoard does its work per epoch, not per batch."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tuning import callbacks


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
