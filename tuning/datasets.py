"""Loading datasets: arrays in, arrays out.

Owns: where each dataset comes from (an offline data directory, Keras's
download cache, or a package that ships it), checking what was read, scaling
pixels to [0, 1] and carving the fixed validation split out of the training
set. Does not own: batching and feeding (`tuning.pipeline`) or models (never
built here).

To add a dataset, write a function returning `RawData` and register it with
`DATASETS.register(name, DatasetSpec(...))` at the bottom of this module.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from tuning.errors import UsageError
from tuning.registry import Registry

DATA_DIR_ENV = "TUNING_DATA_DIR"


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    Args:
        x: Features, float32 scaled to [0, 1], shape `(n, *input_shape)`.
        y: Integer class labels, shape `(n,)`.
    """

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    """A dataset split three ways: select on `val`, report once on `test`.

    Args:
        name: Registry name, e.g. `"mnist"`.
        train: Training split.
        val: Validation split, taken from the end of the official training set.
        test: The official test set; touched once, by the final evaluation.
        class_names: One name per class index.
        source: Where the arrays came from, for provenance.
        mirror_invariant: Whether a left-right mirrored image keeps its label
            (photos of objects: yes; digits: no). Defaults to False.
    """

    name: str
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]
    source: str = ""
    mirror_invariant: bool = False
    _stats: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and variance of the flattened training split.

        Variance is floored at 0.05**2 so that pixels which are constant in
        training (MNIST's borders) cannot blow up to 1e7 at test time.
        """
        if not self._stats:
            flat = self.train.x.reshape(len(self.train), -1)
            mean = flat.mean(axis=0, dtype=np.float64)
            var = np.maximum(flat.var(axis=0, dtype=np.float64), 0.05**2)
            self._stats["mean"] = mean.astype(np.float32)
            self._stats["var"] = var.astype(np.float32)
        return self._stats["mean"], self._stats["var"]

    def fingerprint(self) -> str:
        """A short sha256 over every array, for provenance."""
        digest = hashlib.sha256()
        for split in (self.train, self.val, self.test):
            digest.update(np.ascontiguousarray(split.x).tobytes())
            digest.update(np.ascontiguousarray(split.y).tobytes())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class RawData:
    """What a loader returns: the official train and test arrays, unscaled."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


@dataclass(frozen=True)
class DatasetSpec:
    """How to load one dataset and what it must look like.

    Args:
        load: `load(data_dir) -> RawData`; `data_dir` may be None.
        image_shape: Shape of one example.
        class_names: One name per class.
        val_size: Examples taken from the end of the training set for validation.
        max_value: The raw value that maps to 1.0 (255 for 8-bit images).
        mirror_invariant: Whether a left-right mirrored image keeps its label,
            so that spaces may augment with horizontal flips. Defaults to False.
    """

    load: Callable[[Optional[Path]], RawData]
    image_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    val_size: int
    max_value: float = 255.0
    mirror_invariant: bool = False


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Optional[Path]:
    """Returns the offline data directory: the argument, else `$TUNING_DATA_DIR`, else None."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise UsageError(f"data directory {str(path)!r} does not exist or is not a directory")
    return path


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Loads, checks, scales and splits a registered dataset.

    Args:
        name: A name in `DATASETS`.
        data_dir: Offline data directory. Defaults to `$TUNING_DATA_DIR`, then
            to the dataset's own source (usually a download).
    """
    spec = DATASETS.get(name)
    raw = spec.load(resolve_data_dir(data_dir))
    _check_arrays(name, spec, raw)
    x_train = _scale(raw.x_train, spec.max_value)
    x_test = _scale(raw.x_test, spec.max_value)
    cut = len(x_train) - spec.val_size
    return Dataset(
        name=name,
        train=Split(x_train[:cut], raw.y_train[:cut].astype(np.int32)),
        val=Split(x_train[cut:], raw.y_train[cut:].astype(np.int32)),
        test=Split(x_test, raw.y_test.astype(np.int32)),
        class_names=spec.class_names,
        source=raw.source,
        mirror_invariant=spec.mirror_invariant,
    )


def _scale(x: np.ndarray, max_value: float) -> np.ndarray:
    return (x.astype(np.float32) / np.float32(max_value)).astype(np.float32, copy=False)


def _check_arrays(name: str, spec: DatasetSpec, raw: RawData) -> None:
    where = raw.source
    for split, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        if x.ndim < 1 or tuple(x.shape[1:]) != spec.image_shape:
            raise UsageError(
                f"{name} {split} images in {where} have shape {x.shape}, "
                f"expected (n, {', '.join(map(str, spec.image_shape))})"
            )
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise UsageError(f"{name} {split} images in {where} have dtype {x.dtype}, expected numbers")
        if y.shape != (len(x),):
            raise UsageError(
                f"{name} {split} labels in {where} have shape {y.shape}, expected ({len(x)},)"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise UsageError(f"{name} {split} labels in {where} have dtype {y.dtype}, expected integers")
        if len(y) and (y.min() < 0 or y.max() >= len(spec.class_names)):
            raise UsageError(
                f"{name} {split} labels in {where} fall outside 0..{len(spec.class_names) - 1}"
            )
        if np.issubdtype(x.dtype, np.floating) and (bad := int(x.size - np.count_nonzero(np.isfinite(x)))):
            raise UsageError(
                f"{name} {split} images in {where} hold {bad} NaN or infinite value(s); "
                "replace or drop those images before tuning"
            )
        if len(x) and (x.min() < 0 or x.max() > spec.max_value):
            raise UsageError(
                f"{name} {split} images in {where} hold values outside 0..{spec.max_value:g}"
            )
    if len(raw.x_train) <= spec.val_size:
        raise UsageError(
            f"{name} training set in {where} has {len(raw.x_train)} examples; "
            f"at least {spec.val_size + 1} are needed to keep {spec.val_size} for validation"
        )
    if len(raw.x_test) == 0:
        raise UsageError(f"{name} test set in {where} is empty")


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
