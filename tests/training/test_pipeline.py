from __future__ import annotations

import numpy as np

from tuning.training.pipeline import SplitFeeder


def test_each_epoch_feeds_every_example_once_in_a_new_order(toy_dataset):
    feeder = SplitFeeder(toy_dataset.train)
    pipeline = feeder.batches(32, shuffle=True, seed=3)
    epochs = [np.concatenate([y.numpy() for _, y in pipeline]) for _ in range(2)]
    for labels in epochs:
        assert sorted(labels.tolist()) == sorted(toy_dataset.train.y.tolist())
    xs = [np.concatenate([x.numpy() for x, _ in pipeline]) for _ in range(2)]
    assert not np.array_equal(xs[0], xs[1])


def test_unshuffled_batches_keep_order_and_pairs(toy_dataset):
    batches = list(SplitFeeder(toy_dataset.val).batches(10))
    assert [len(y) for _, y in batches] == [10, 10, 10, 2]
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(x, toy_dataset.val.x)
    np.testing.assert_array_equal(y, toy_dataset.val.y)


def test_the_same_seed_gives_the_same_order_in_a_fresh_pipeline(toy_dataset):
    def first_epoch(seed):
        return np.concatenate([y.numpy() for _, y in SplitFeeder(toy_dataset.train).batches(16, shuffle=True, seed=seed)])

    assert np.array_equal(first_epoch(5), first_epoch(5))
    assert not np.array_equal(first_epoch(5), first_epoch(6))
    assert [len(y) for _, y in SplitFeeder(toy_dataset.train).batches(40, shuffle=True, seed=1)] == [40, 40, 16]
