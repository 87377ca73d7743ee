"""The loaders, on small files of the real layouts written by the tests."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tuning.data import builtin
from tuning.data.datasets import load_dataset
from tuning.errors import UsageError

N_TRAIN, N_TEST = 5_100, 40  # just over the 5,000 kept for validation


def write_mnist_npz(folder: Path, **overrides) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, size=(N_TRAIN, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=N_TRAIN).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(N_TEST, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=N_TEST).astype(np.uint8),
    }
    arrays.update(overrides)
    path = folder / "mnist.npz"
    np.savez_compressed(path, **arrays)
    return path


def write_cifar_dir(folder: Path, skip: str | None = None, per_batch: int = 1_025) -> Path:
    """The official cifar-10-batches-py layout, pickled as the real files are (bytes keys)."""
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in builtin.CIFAR10_BATCHES:
        if name == skip:
            continue
        n = per_batch if name != "test_batch" else 30
        batch = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, size=n).tolist(),
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(n)],
        }
        (batches / name).write_bytes(pickle.dumps(batch, protocol=2))
    return batches


def test_mnist_from_data_dir_splits_and_scales(tmp_path):
    write_mnist_npz(tmp_path)
    data = load_dataset("mnist", tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (N_TRAIN - 5_000, 5_000, N_TEST)
    assert data.input_shape == (28, 28) and data.n_classes == 10
    assert data.train.x.dtype == np.float32 and 0.0 <= data.train.x.min() and data.train.x.max() <= 1.0
    raw = np.load(tmp_path / "mnist.npz")
    # validation is the *end* of the official training set, in order
    np.testing.assert_allclose(data.val.x[-1], raw["x_train"][-1] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.val.y, raw["y_train"][-5_000:])
    np.testing.assert_array_equal(data.test.y, raw["y_test"])


def test_data_dir_from_environment(tmp_path, monkeypatch):
    write_mnist_npz(tmp_path)
    monkeypatch.setenv("TUNING_DATA_DIR", str(tmp_path))
    assert load_dataset("mnist").source == str(tmp_path / "mnist.npz")


def test_missing_data_dir_is_refused(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_dataset("mnist", tmp_path / "nowhere")


def test_truncated_npz_is_refused(tmp_path):
    path = write_mnist_npz(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UsageError, match="corrupt or truncated"):
        load_dataset("mnist", tmp_path)


def test_npz_missing_arrays_is_refused(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(UsageError, match=r"lacks arrays \['x_test', 'y_test', 'y_train'\]"):
        load_dataset("mnist", tmp_path)


def test_npz_with_wrong_shape_is_refused(tmp_path):
    write_mnist_npz(tmp_path, x_test=np.zeros((N_TEST, 32, 32), np.uint8))
    with pytest.raises(UsageError, match=r"test images .* have shape \(40, 32, 32\), expected \(n, 28, 28\)"):
        load_dataset("mnist", tmp_path)


def test_npz_with_bad_labels_is_refused(tmp_path):
    write_mnist_npz(tmp_path, y_train=np.full(N_TRAIN, 12, np.uint8))
    with pytest.raises(UsageError, match=r"labels .* fall outside 0..9"):
        load_dataset("mnist", tmp_path)


def test_failed_download_says_which_file_to_put_where(tmp_path, monkeypatch):
    import keras

    def offline():
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(UsageError, match=r"could not download mnist .*put mnist.npz .*--data-dir DIR"):
        load_dataset("mnist", tmp_path)  # the folder exists but holds no mnist.npz


def test_cifar10_from_batches_dir(tmp_path):
    write_cifar_dir(tmp_path)
    data = load_dataset("cifar10", tmp_path)
    assert data.input_shape == (32, 32, 3)
    assert (len(data.train) + len(data.val), len(data.test)) == (5 * 1_025, 30)
    assert data.class_names[0] == "airplane"
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes())
    # channel-first rows become height x width x channel
    np.testing.assert_allclose(data.test.x[0, 0, 1, 2], raw[b"data"][0, 2 * 1024 + 1] / 255.0, rtol=1e-6)


def test_cifar10_from_archive(tmp_path):
    folder = write_cifar_dir(tmp_path / "src")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    assert len(load_dataset("cifar10", tmp_path).test) == 30


def test_cifar10_missing_batch_is_refused(tmp_path):
    write_cifar_dir(tmp_path, skip="data_batch_3")
    with pytest.raises(UsageError, match="lacks data_batch_3"):
        load_dataset("cifar10", tmp_path)


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_cifar10_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    batches = write_cifar_dir(tmp_path)
    (batches / "data_batch_2").write_bytes(pickle.dumps({b"data": _RunsCode(), b"labels": []}))
    with pytest.raises(UsageError, match=r"refusing to load .*data_batch_2: it asks to import posix.system"):
        load_dataset("cifar10", tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_digits_ships_with_scikit_learn():
    data = load_dataset("digits")
    assert data.input_shape == (8, 8)
    assert (len(data.train), len(data.val), len(data.test)) == (1_137, 300, 360)
    assert np.bincount(data.test.y).tolist() == [36] * 10
    assert data.train.x.max() == 1.0


def test_unknown_dataset_lists_choices():
    with pytest.raises(UsageError, match=r"DATASET 'imagenet' is neither a built-in dataset \(cifar10, digits, mnist\) nor an existing file"):
        load_dataset("imagenet")


def test_feature_stats_come_from_training_split_only(toy_dataset):
    mean, var = toy_dataset.feature_stats()
    flat = toy_dataset.train.x.reshape(len(toy_dataset.train), -1)
    np.testing.assert_allclose(mean, flat.mean(axis=0), rtol=1e-5)
    assert var.min() >= 0.05**2
