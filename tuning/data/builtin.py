"""The built-in datasets: MNIST, CIFAR-10 and scikit-learn's digits, each read from where it ships.

Owns: where each built-in dataset comes from (an offline data directory,
Keras's download cache, or a package that ships it), reading its official
files safely (a CIFAR batch is unpickled with numpy's classes only), and
`DATASETS`, the registry of their names. Their splits are fixed: the last
examples of the official training set validate, so that figures measured
before stay comparable. A user's own files are `tuning.data.files`.

To add a dataset, write a function returning `RawData` and register it with
`DATASETS.register(name, DatasetSpec(...))` at the bottom of this module.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from tuning.data.types import DATA_DIR_ENV, DatasetSpec, RawData
from tuning.errors import UsageError
from tuning.registry import Registry

DATASETS: Registry[DatasetSpec] = Registry("dataset")


def _download_failed(name: str, what: str, error: Exception) -> UsageError:
    return UsageError(
        f"could not download {name} ({type(error).__name__}: {error}); "
        f"put {what} in a folder and pass it with --data-dir DIR or ${DATA_DIR_ENV}"
    )


# --- MNIST -------------------------------------------------------------------


def read_mnist_npz(path: Path) -> RawData:
    """Reads Keras's `mnist.npz` layout: x_train, y_train, x_test, y_test."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(npz.files)
            if missing:
                raise UsageError(
                    f"{path} lacks arrays {sorted(missing)}; it must be Keras's mnist.npz "
                    "with x_train, y_train, x_test, y_test"
                )
            arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except UsageError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise UsageError(
            f"{path} is corrupt or truncated ({type(error).__name__}: {error}); "
            "replace it with a fresh copy of Keras's mnist.npz"
        ) from None
    return RawData(**arrays, source=str(path))


def _load_mnist(data_dir: Optional[Path]) -> RawData:
    if data_dir is not None and (data_dir / "mnist.npz").exists():
        return read_mnist_npz(data_dir / "mnist.npz")
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # any download or cache failure means the same to the user
        raise _download_failed("mnist", "mnist.npz (Keras's layout)", error) from None
    return RawData(x_train, y_train, x_test, y_test, source="keras.datasets.mnist")


# --- CIFAR-10 ----------------------------------------------------------------

# The only globals a CIFAR batch needs: numpy's array reconstruction. Anything
# else in a pickle (os.system, builtins.eval, ...) is refused before it runs.
_PICKLE_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _Refused(pickle.UnpicklingError):
    """A pickle that asks to import something a CIFAR batch never needs."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) not in _PICKLE_ALLOWED:
            raise _Refused(f"it asks to import {module}.{name}")
        return super().find_class(module, name)


def unpickle_batch(data: bytes, where: str) -> dict:
    """Unpickles one CIFAR batch, refusing anything but numpy arrays and plain data."""
    try:
        batch = _ArraysOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as error:
        raise UsageError(f"refusing to load {where}: {error}; a CIFAR batch holds only arrays") from None
    except Exception as error:
        raise UsageError(
            f"{where} is corrupt or truncated ({type(error).__name__}: {error}); "
            "rebuild it (for example with make_cifar10.py) or download it again"
        ) from None
    if not isinstance(batch, dict):
        raise UsageError(f"{where} is not a CIFAR batch (got a {type(batch).__name__})")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise UsageError(f"{where} is not a CIFAR-10 batch: it lacks 'data' or 'labels'")
    return batch


CIFAR10_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _read_cifar10_batches(read: Callable[[str], Optional[bytes]], where: str) -> RawData:
    parts = {}
    for batch_name in CIFAR10_BATCHES:
        data = read(batch_name)
        if data is None:
            raise UsageError(
                f"{where} lacks {batch_name}; it must hold data_batch_1..5 and test_batch "
                "(the official cifar-10-batches-py layout)"
            )
        batch = unpickle_batch(data, f"{where}/{batch_name}")
        x = np.asarray(batch["data"])
        if x.ndim != 2 or x.shape[1] != 3072:
            raise UsageError(f"{where}/{batch_name} data has shape {x.shape}, expected (n, 3072)")
        parts[batch_name] = (
            x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1),
            np.asarray(batch["labels"]),
        )
    train = [parts[f"data_batch_{i}"] for i in range(1, 6)]
    return RawData(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=parts["test_batch"][0],
        y_test=parts["test_batch"][1],
        source=where,
    )


def read_cifar10_dir(folder: Path) -> RawData:
    """Reads the official `cifar-10-batches-py/` folder."""

    def read(batch_name: str) -> Optional[bytes]:
        path = folder / batch_name
        return path.read_bytes() if path.is_file() else None

    return _read_cifar10_batches(read, str(folder))


def read_cifar10_archive(archive: Path) -> RawData:
    """Reads `cifar-10-python.tar.gz` without unpacking it to disk."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}

            def read(batch_name: str) -> Optional[bytes]:
                member = members.get(batch_name)
                if member is None:
                    return None
                handle = tar.extractfile(member)
                return handle.read() if handle is not None else None

            return _read_cifar10_batches(read, str(archive))
    except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile) as error:
        raise UsageError(
            f"{archive} is corrupt or truncated ({type(error).__name__}: {error}); "
            "download cifar-10-python.tar.gz again"
        ) from None


def _load_cifar10(data_dir: Optional[Path]) -> RawData:
    if data_dir is not None:
        if (data_dir / "cifar-10-batches-py").is_dir():
            return read_cifar10_dir(data_dir / "cifar-10-batches-py")
        if (data_dir / "cifar-10-python.tar.gz").is_file():
            return read_cifar10_archive(data_dir / "cifar-10-python.tar.gz")
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:  # any download or cache failure means the same to the user
        raise _download_failed(
            "cifar10", "cifar-10-batches-py/ or cifar-10-python.tar.gz", error
        ) from None
    return RawData(
        x_train, y_train.reshape(-1), x_test, y_test.reshape(-1), source="keras.datasets.cifar10"
    )


# --- scikit-learn digits (ships with scikit-learn, works offline) -------------


def _load_digits(data_dir: Optional[Path]) -> RawData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # sklearn has no official test split; fix one, stratified, so runs compare.
    order = np.random.default_rng(0).permutation(len(digits.target))
    images, labels = digits.images[order].astype(np.float32), digits.target[order]
    test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        test[np.flatnonzero(labels == label)[:36]] = True
    return RawData(
        images[~test], labels[~test], images[test], labels[test], source="sklearn.datasets.load_digits"
    )


DIGIT_NAMES = tuple(str(i) for i in range(10))
CIFAR10_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

DATASETS.register("mnist", DatasetSpec(_load_mnist, (28, 28), DIGIT_NAMES, val_size=5000))
DATASETS.register("cifar10", DatasetSpec(_load_cifar10, (32, 32, 3), CIFAR10_NAMES, val_size=5000, mirror_invariant=True))
DATASETS.register("digits", DatasetSpec(_load_digits, (8, 8), DIGIT_NAMES, val_size=300, max_value=16.0))
