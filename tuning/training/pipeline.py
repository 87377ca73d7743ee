"""Feeding dataset splits to Keras as `tf.data` pipelines.

Owns: turning a `Split` into batches. Each split's arrays become one tensor,
once per process; a pipeline per trial only shuffles *indices* and gathers
batches from that tensor, so no trial copies the arrays. Does not own:
loading (`tuning.data`) or models.
"""

from __future__ import annotations

import tensorflow as tf

from tuning.data.datasets import Dataset, Split

EVAL_BATCH_SIZE = 1024  # evaluation batches: large, since no gradients are kept


class SplitFeeder:
    """Batches one split from a tensor that is built once.

    Args:
        split: The arrays to feed.
    """

    def __init__(self, split: Split) -> None:
        with tf.device("/CPU:0"):
            self._x = tf.constant(split.x)
            self._y = tf.constant(split.y)
        self.size = len(split)

    def batches(self, batch_size: int, shuffle: bool = False, seed: int | None = None) -> tf.data.Dataset:
        """Returns a pipeline of `(x, y)` batches.

        Args:
            batch_size: Examples per batch.
            shuffle: Whether to reshuffle the order every epoch. Defaults to False.
            seed: Seed of the shuffle order. Defaults to None.
        """
        x, y, n = self._x, self._y, self.size
        n_batches = -(-n // batch_size)

        def batch_indices(order):
            # One element per batch, not per example: tf.data's per-element cost
            # over 50,000 shuffled scalars is a measurable share of an MLP's epoch.
            return tf.data.Dataset.range(n_batches).map(
                lambda i: order[i * batch_size : tf.minimum((i + 1) * batch_size, n)]
            )

        if shuffle:
            # A fresh permutation each epoch (each new iterator), reproducible from `seed`.
            epoch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
            indices = epoch_seeds.flat_map(
                lambda s: batch_indices(
                    tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([s, s // 2 + 1]))
                )
            )
        else:
            indices = batch_indices(tf.range(n, dtype=tf.int64))
        # flat_map hides the length; Keras needs it to count steps (and warns every epoch without it).
        indices = indices.apply(tf.data.experimental.assert_cardinality(n_batches))
        return indices.map(
            lambda idx: (tf.gather(x, idx), tf.gather(y, idx)), num_parallel_calls=tf.data.AUTOTUNE
        ).prefetch(tf.data.AUTOTUNE)


class DatasetFeeder:
    """Feeders for the train and validation splits of a dataset.

    The test split is deliberately absent: it is fed once, by
    `tuning.final.evaluate`, and never during the search.

    Args:
        dataset: The loaded dataset.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.train = SplitFeeder(dataset.train)
        self.val = SplitFeeder(dataset.val)
