"""The types of the data layer: a split, a dataset, what a loader returns, and how the export takes raw input.

Owns: `Split` and `Dataset` (what the search and the retraining train on),
`RawData` and `DatasetSpec` (what a built-in loader returns and promises),
and `RawInput` with `TableEncoding`: a plain description of how the user's
raw input (pixels, CSV rows) becomes the arrays trained on, from which the
export builds the same steps as Keras preprocessing layers
(`tuning.final.export`). Nothing here builds a model. Imports only numpy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

DATA_DIR_ENV = "TUNING_DATA_DIR"
# What the data's examples are: images get the grey or colour priors and their augmentation; feature
# vectors and tables get the features prior, no augmentation, and standardization inside the model.
KINDS = ("images", "features", "table")


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    Args:
        x: Features as float32: images scaled to [0, 1], feature vectors as
            given, a table's rows encoded (`TableEncoding`). Shape `(n, *input_shape)`.
        y: Integer class labels, shape `(n,)`.
    """

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Column:
    """One feature column of a table.

    Args:
        name: Its header.
        vocabulary: The training split's values of a categorical column, in
            the order of its one-hot slots (after one slot for values never
            seen in training); None for a numeric column.
    """

    name: str
    vocabulary: Optional[tuple[str, ...]] = None

    @property
    def width(self) -> int:
        """Features this column becomes: 1, or a one-hot slot per value plus one for unseen values."""
        return 1 if self.vocabulary is None else len(self.vocabulary) + 1


@dataclass(frozen=True)
class TableEncoding:
    """How a table's raw rows become a float matrix: numeric columns as they are, categorical ones one-hot.

    The one-hot layout is Keras's `StringLookup(vocabulary, output_mode="one_hot")`:
    slot 0 for a value training never saw, then one slot per vocabulary entry;
    the export builds exactly those layers, so the model takes raw rows.

    Args:
        columns: The feature columns, in the matrix's order.
    """

    columns: tuple[Column, ...]

    @property
    def width(self) -> int:
        return sum(column.width for column in self.columns)

    def encode(self, rows: dict[str, np.ndarray]) -> np.ndarray:
        """The float32 matrix of `rows` (column name to values: floats for numeric columns, strings else)."""
        parts = []
        for column in self.columns:
            values = np.asarray(rows[column.name])
            if column.vocabulary is None:
                parts.append(values.astype(np.float32).reshape(-1, 1))
                continue
            index = {value: i + 1 for i, value in enumerate(column.vocabulary)}
            slots = np.array([index.get(str(v), 0) for v in values], dtype=np.int64)
            parts.append(np.eye(column.width, dtype=np.float32)[slots])
        return np.concatenate(parts, axis=1) if parts else np.zeros((0, 0), np.float32)


@dataclass(frozen=True)
class RawInput:
    """How the user's raw input becomes the model's input, for the export to do inside the model.

    Args:
        scale: Raw values are multiplied by this (1/255 for 8-bit pixels); 1.0 leaves them as they are.
        image_size: Images are resized to `(height, width)` first, when `--image-size` was given. Defaults to None.
        table: A table's columns, when the raw input is CSV rows. Defaults to None.
        description: What the exported model takes, in words, for the card.
    """

    scale: float = 1.0
    image_size: Optional[tuple[int, int]] = None
    table: Optional[TableEncoding] = None
    description: str = ""


@dataclass(frozen=True)
class Dataset:
    """A dataset split three ways: select on `val`, report once on `test`.

    Args:
        name: Registry name, e.g. `"mnist"`, or the user's file or folder's name.
        train: Training split.
        val: Validation split.
        test: The test split; touched once, by the final evaluation.
        class_names: One name per class index.
        source: Where the arrays came from, for provenance.
        mirror_invariant: Whether a left-right mirrored image keeps its label
            (photos of objects: yes; digits: no). Defaults to False.
        kind: `images`, `features` or `table` (`KINDS`). Defaults to `images`.
        max_value: The raw value that became 1.0 when images were scaled. Defaults to 1.0.
        raw_input: How the export takes the user's raw input; None when it
            takes the arrays as they are (the built-in datasets: pixels in [0, 1]).
        notes: What was decided from the data, said in the first lines and the card.
        source_fingerprint: A hash of the user's file or folder, which a resumed run must match; None for built-ins.
    """

    name: str
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]
    source: str = ""
    mirror_invariant: bool = False
    kind: str = "images"
    max_value: float = 1.0
    raw_input: Optional[RawInput] = None
    notes: tuple[str, ...] = ()
    source_fingerprint: Optional[str] = None
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
    """What a built-in loader returns: the official train and test arrays, unscaled."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


@dataclass(frozen=True)
class DatasetSpec:
    """How to load one built-in dataset and what it must look like.

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


@dataclass(frozen=True)
class DataOptions:
    """How to read a user's data: the options of `tuning.run` that apply to files.

    Args:
        label: The label column of a CSV file (`--label`). Defaults to None.
        test: A CSV file of test rows (`--test`). Defaults to None (held out by seed).
        image_size: `(height, width)` every image is resized to (`--image-size`). Defaults to None.
        kind: `auto`, or one of `KINDS` to override what the data looks like (`--kind`). Defaults to `auto`.
        mirror_invariant: The classes keep their label when an image is mirrored left-right
            (`--mirror-invariant`), which allows flips as augmentation; never guessed. Defaults to False.
    """

    label: Optional[str] = None
    test: Optional[str] = None
    image_size: Optional[tuple[int, int]] = None
    kind: str = "auto"
    mirror_invariant: bool = False
