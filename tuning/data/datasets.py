"""Loading a dataset by its reference: a built-in name, or the path of a user's file or folder. Arrays in, arrays out.

Owns: `load_dataset`, the one door to the data, which resolves a reference
to the built-in loaders (`tuning.data.builtin`, scaled and split as they
always were) or to a user's file (`tuning.data.files`); and where the
offline data directory is. Does not own: batching and feeding
(`tuning.training.pipeline`) or models (never built here). `tuning.config`
checks a reference before TensorFlow loads with `tuning.data.references`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from tuning.data import files
from tuning.data.builtin import DATASETS
from tuning.data.references import is_builtin
from tuning.data.types import DATA_DIR_ENV, DataOptions, Dataset, DatasetSpec, RawData, Split
from tuning.errors import UsageError

__all__ = ["DATASETS", "DataOptions", "Dataset", "Split", "load_dataset", "resolve_data_dir", "is_builtin"]


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Optional[Path]:
    """Returns the offline data directory: the argument, else `$TUNING_DATA_DIR`, else None."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise UsageError(f"data directory {str(path)!r} does not exist or is not a directory")
    return path


def load_dataset(reference: str, data_dir: str | os.PathLike | None = None,
                 options: Optional[DataOptions] = None) -> Dataset:  # fmt: skip
    """Loads, checks, scales and splits a built-in dataset or a user's file or folder.

    Args:
        reference: A name in `DATASETS`, or the path of an `.npz` file, a
            `.csv` file or a folder of images (`tuning.data.files`).
        data_dir: Offline data directory of the built-in datasets. Defaults to
            `$TUNING_DATA_DIR`, then to the dataset's own source (usually a download).
        options: How to read a user's data (`--label`, `--test`, `--image-size`,
            `--kind`, `--mirror-invariant`). Defaults to None (the defaults).
    """
    options = options or DataOptions()
    if is_builtin(reference):
        return _load_builtin(reference, data_dir)
    path = Path(reference).expanduser()
    if not path.exists():
        raise UsageError(f"DATASET {reference!r} is neither a built-in dataset ({', '.join(DATASETS.names())}) "
                         "nor an existing file or folder")  # fmt: skip
    return files.read(path, options)


def _load_builtin(name: str, data_dir: str | os.PathLike | None) -> Dataset:
    """A built-in dataset, scaled to [0, 1], its validation split the end of the official training set."""
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
        max_value=spec.max_value,
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
