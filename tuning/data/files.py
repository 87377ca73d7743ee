"""A user's own data: an `.npz` file, a `.csv` table, or a folder of images, read and checked into arrays.

Owns: reading the three formats, every check on what was read (one line
naming the file, column, class or image, and the fix), deciding from the data
what its examples are (`images`, `features` or `table`) and how the export
takes them raw (`RawInput`), the split the user did not give (stratified,
`tuning.data.splits`), and a fingerprint of the files, which a resumed run
must match. Arrays in, arrays out: nothing here builds a model.

- `FILE.npz`: Keras's layout, `x_train`, `y_train`, `x_test`, `y_test`,
  optionally `x_val`, `y_val` and `class_names`.
- `FILE.csv`: a header row, `--label COLUMN`, numeric and text columns; the
  test split from `--test FILE.csv`, or else held out by seed.
- `FOLDER/`: one subfolder of images per class, or `train/` and `test/`
  folders laid out so (`keras.utils.image_dataset_from_directory`'s layout).
"""

from __future__ import annotations

import csv
import hashlib
import math
import zipfile
from pathlib import Path
from typing import Optional

import keras
import numpy as np
from PIL import Image, UnidentifiedImageError

from tuning.data.splits import TEST_SHARE, VALIDATION_SHARE, stratified_split
from tuning.data.types import KINDS, Column, DataOptions, Dataset, RawInput, Split, TableEncoding
from tuning.errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def fingerprint(*paths: Path) -> str:
    """A short sha256 of files' bytes, or of a folder's files (their paths and bytes), in a stable order."""
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------- labels and splits


def _label_text(labels: np.ndarray, where: str) -> list[str]:
    """Labels as text: whole numbers without a decimal point, text as it is."""
    values = np.asarray(labels).reshape(-1)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise UsageError(f"{where}: labels must be whole numbers or text, but some are fractions, NaN or infinite")
        values = values.astype(np.int64)
    return [str(v).strip() for v in values.tolist()]


def _sorted_names(texts: set[str]) -> tuple[str, ...]:
    """Class names in order: numbers as numbers, else as text."""
    try:
        return tuple(sorted(texts, key=float))
    except ValueError:
        return tuple(sorted(texts))


def _class_index(labels: np.ndarray, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels as 0..k-1 and the class names they stand for."""
    texts = _label_text(labels, where)
    names = _sorted_names(set(texts))
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup[t] for t in texts], dtype=np.int32), names


def _labels_with_names(train: np.ndarray, others: list[np.ndarray], names: Optional[tuple[str, ...]], where: str,
                       given_as: str) -> tuple[np.ndarray, list[np.ndarray], tuple[str, ...]]:  # fmt: skip
    """The training labels and the other splits' as 0..k-1 over the training split's classes.

    With `names` (an .npz's `class_names`), integer labels index them; else
    the classes are the training labels' distinct values.
    """
    if names is not None:
        if np.asarray(train).dtype.kind not in "iu":
            raise UsageError(f"{where}: with class_names, labels must be integers 0..{len(names) - 1}")
        every = np.concatenate([np.asarray(a).reshape(-1) for a in [train, *others]])
        bad = sorted({int(v) for v in every.tolist() if not 0 <= v < len(names)})
        if bad:
            raise UsageError(f"{where}: labels {bad[:5]} have no entry in class_names ({len(names)} names); "
                             "give a name for every label 0..k-1")  # fmt: skip
        return np.asarray(train).reshape(-1).astype(np.int32), [np.asarray(a).reshape(-1).astype(np.int32) for a in others], names
    y, found = _class_index(train, where)
    lookup = {name: i for i, name in enumerate(found)}
    converted = []
    for other in others:
        texts = _label_text(other, where)
        unseen = sorted(set(texts) - set(found))
        if unseen:
            raise UsageError(f"{where}: class {unseen[0]!r} is in the {given_as} split but never in training; "
                             "give training examples of every class, or drop those rows")  # fmt: skip
        converted.append(np.array([lookup[t] for t in texts], dtype=np.int32))
    return y, converted, found


def _check_classes(y: np.ndarray, names: tuple[str, ...], where: str) -> None:
    present = np.unique(y)
    if len(present) < 2:
        raise UsageError(f"{where}: the training labels hold only one class ({names[int(present[0])]!r}); "
                         "a classifier needs at least two")  # fmt: skip


def _split_off(x: np.ndarray, y: np.ndarray, share: float, what: str) -> tuple[Split, Split]:
    kept, held = stratified_split(y, share, what)
    return Split(x[kept], y[kept]), Split(x[held], y[held])


# ----------------------------------------------------------------------------- npz


def _finite_or_refuse(x: np.ndarray, where: str, split: str) -> None:
    if not np.issubdtype(x.dtype, np.floating):
        return
    finite = np.isfinite(x.reshape(len(x), -1))
    if finite.all():
        return
    rows = int((~finite.all(axis=1)).sum())
    if x.ndim == 2:
        column = int(np.flatnonzero(~finite.all(axis=0))[0])
        raise UsageError(f"{where}: {split} column {column} holds NaN or infinite values ({rows} row(s) in all); "
                         "replace or drop those rows before tuning")  # fmt: skip
    raise UsageError(f"{where}: {rows} {split} example(s) hold NaN or infinite values; replace or drop them before tuning")


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(npz.files)
            if missing:
                raise UsageError(f"{path} lacks {', '.join(sorted(missing))}; an .npz needs x_train, y_train, x_test "
                                 "and y_test (Keras's layout), and may add x_val, y_val and class_names")  # fmt: skip
            return {k: npz[k] for k in npz.files}
    except UsageError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise UsageError(f"{path} is not a readable .npz file ({type(error).__name__}: {error}); "
                         "write it with numpy.savez") from None  # fmt: skip


def _kind_of(x: np.ndarray, requested: str, where: str) -> str:
    rank = x.ndim - 1
    looks_like_image = rank == 2 or (rank == 3 and x.shape[-1] in (1, 3))
    if requested == "auto":
        return "images" if looks_like_image else "features"
    if requested == "images" and not looks_like_image:
        raise UsageError(f"--kind images needs examples of shape (H, W) or (H, W, 1 or 3), but {where} holds "
                         f"{x.shape[1:]}; drop --kind")  # fmt: skip
    if requested == "table":
        raise UsageError("--kind table applies to .csv files; for arrays use --kind features")
    return requested


def _pixel_scale(x: np.ndarray, where: str) -> float:
    """The raw value that becomes 1.0: 1 for images already in [0, 1], 255 for 8-bit ones, else the largest value."""
    low, high = float(x.min()), float(x.max())
    if low < 0:
        raise UsageError(f"{where}: images hold negative values ({low:g}); images are pixels from 0 up, "
                         "or pass --kind features for other numbers")  # fmt: skip
    if high <= 1.0 and np.issubdtype(x.dtype, np.floating):
        return 1.0
    if high <= 255.0:
        return 255.0
    return 65535.0 if high <= 65535.0 else high


def read_npz(path: Path, options: DataOptions) -> Dataset:
    """A user's `.npz` file as a `Dataset`; its validation split is `x_val`/`y_val`, else 10% held out by seed."""
    arrays = _npz_arrays(path)
    where = str(path)
    xs = {k: arrays[k] for k in ("x_train", "x_val", "x_test") if k in arrays}
    for key, x in xs.items():
        if not np.issubdtype(x.dtype, np.number) or x.dtype.kind == "c":
            raise UsageError(f"{where}: {key} has dtype {x.dtype}; inputs must be numbers")
        if x.ndim < 2:
            raise UsageError(f"{where}: {key} has shape {x.shape}; it needs one row per example, (n, ...)")
        y = arrays.get("y" + key[1:])
        if y is None:
            raise UsageError(f"{where} has {key} but no {'y' + key[1:]}")
        if np.asarray(y).reshape(-1).shape[0] != len(x):
            raise UsageError(f"{where}: {key} has {len(x)} examples but {'y' + key[1:]} has {np.asarray(y).size} labels")
        if x.shape[1:] != xs["x_train"].shape[1:]:
            raise UsageError(f"{where}: {key} examples have shape {x.shape[1:]}, but x_train's have {xs['x_train'].shape[1:]}")
        _finite_or_refuse(x, where, key[2:])
    names = tuple(str(n) for n in arrays["class_names"].tolist()) if "class_names" in arrays else None
    ys = {k: np.asarray(arrays["y" + k[1:]]).reshape(-1) for k in xs}
    others = [k for k in xs if k != "x_train"]
    y_train, converted, names = _labels_with_names(ys["x_train"], [ys[k] for k in others], names, where,
                                                   given_as="/".join(k[2:] for k in others))  # fmt: skip
    _check_classes(y_train, names, where)
    labels = dict(zip(others, converted), x_train=y_train)
    kind = _kind_of(xs["x_train"], options.kind, where)
    scale = _pixel_scale(np.concatenate([xs[k].reshape(-1)[:1_000_000] for k in xs]), where) if kind == "images" else 1.0
    splits = {k: Split((x / np.float32(scale)).astype(np.float32) if kind == "images" else x.astype(np.float32),
                       labels[k]) for k, x in xs.items()}  # fmt: skip
    notes = [_kind_note(path.name, kind, xs["x_train"].shape[1:], options)]
    if "x_val" in splits:
        train, val = splits["x_train"], splits["x_val"]
        notes.append("validation: x_val and y_val of the file")
    else:
        train, val = _split_off(splits["x_train"].x, splits["x_train"].y, VALIDATION_SHARE, "validation")
        notes.append(f"validation: {VALIDATION_SHARE:.0%} of x_train, stratified, shuffled with a fixed seed")
    notes.append("test: x_test and y_test of the file, read once after the search")
    raw = RawInput(scale=1.0 / scale, description=_raw_description(kind, xs["x_train"].shape[1:], scale))
    return Dataset(name=path.stem, train=train, val=val, test=splits["x_test"], class_names=names, source=where,
                   mirror_invariant=options.mirror_invariant and kind == "images", kind=kind, max_value=scale,
                   raw_input=raw, notes=tuple(notes), source_fingerprint=fingerprint(path))  # fmt: skip


def _kind_note(name: str, kind: str, shape: tuple, options: DataOptions) -> str:
    if kind == "features":
        return (f"{name}: {math.prod(shape)} features an example, so feature vectors: the features prior, no image "
                "augmentation, standardized inside the model" + ("" if options.kind != "auto" else " (--kind images overrides)"))  # fmt: skip
    colour = len(shape) == 3 and shape[-1] == 3
    flips = ("left-right flips allowed (--mirror-invariant)" if options.mirror_invariant
             else "no left-right flips (pass --mirror-invariant if a mirrored image keeps its class)")  # fmt: skip
    return (f"{name}: {'×'.join(map(str, shape))} {'colour' if colour else 'grey'} images: the {'colour' if colour else 'grey'} "
            f"prior and shifts as augmentation, {flips}" + ("" if options.kind != "auto" else " (--kind features overrides)"))  # fmt: skip


def _raw_description(kind: str, shape: tuple, scale: float) -> str:
    if kind == "features":
        return f"raw feature vectors of {math.prod(shape)} numbers, as in the file; standardization is inside the model"
    return f"raw pixels, shape (n, {', '.join(map(str, shape))}), values 0 to {scale:g} as in the file; scaling is inside the model"


# ----------------------------------------------------------------------------- csv


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"{path} is not a readable CSV file ({type(error).__name__}: {error})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise UsageError(f"{path} is empty; a CSV file needs a header row and one row per example")
    header = [cell.strip() for cell in rows[0]]
    if len(set(header)) != len(header):
        raise UsageError(f"{path}: the header names a column twice ({sorted(h for h in header if header.count(h) > 1)[0]!r})")
    body = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    ragged = next((i for i, row in enumerate(body) if len(row) != len(header)), None)
    if ragged is not None:
        raise UsageError(f"{path}: row {ragged + 2} has {len(body[ragged])} fields, but the header has {len(header)}")
    if not body:
        raise UsageError(f"{path} has a header but no rows")
    return header, body


def _as_number(cell: str) -> float:
    text = cell.strip()
    return math.nan if text.lower() in ("", "nan", "na", "n/a", "null", "none") else float(text)


def _columns(header: list[str], rows: list[list[str]], label: str) -> dict[str, np.ndarray]:
    """Each column's values: float64 where every value reads as a number or is missing, else text."""
    columns = {}
    for j, name in enumerate(header):
        cells = [row[j] for row in rows]
        if name != label:
            try:
                columns[name] = np.array([_as_number(c) for c in cells], dtype=np.float64)
                continue
            except ValueError:
                pass
        columns[name] = np.array([c.strip() for c in cells], dtype=object)
    return columns


def _check_numbers(columns: dict[str, np.ndarray], where: str) -> None:
    for name, values in columns.items():
        if values.dtype == np.float64 and not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise UsageError(f"{where}: column {name!r} has {bad} row(s) with a missing, NaN or infinite value; "
                             "fill or drop those rows before tuning")  # fmt: skip


def read_csv(path: Path, options: DataOptions) -> Dataset:
    """A user's `.csv` table as a `Dataset`: numeric columns as numbers, text columns one-hot, `--label` the class."""
    header, rows = _read_rows(path)
    where = str(path)
    if options.label is None:
        raise UsageError(f"a CSV file needs --label COLUMN, the column to predict; {path.name}'s columns are "
                         f"{', '.join(header[:20])}")  # fmt: skip
    if options.label not in header:
        raise UsageError(f"--label {options.label!r} is not a column of {path.name}; its columns are {', '.join(header[:20])}")
    train_columns = _columns(header, rows, options.label)
    test_columns, test_note = None, ""
    if options.test is not None:
        test_path = Path(options.test)
        test_header, test_rows = _read_rows(test_path)
        if test_header != header:
            raise UsageError(f"--test {test_path.name} has columns {', '.join(test_header[:20])}, but {path.name} has "
                             f"{', '.join(header[:20])}; both need the same header")  # fmt: skip
        test_columns = _columns(header, test_rows, options.label)
        for name in header:  # a column is numeric only if it is in both files
            if name != options.label and (train_columns[name].dtype == object) != (test_columns[name].dtype == object):
                train_columns[name] = train_columns[name].astype(str).astype(object)
                test_columns[name] = test_columns[name].astype(str).astype(object)
        test_note = f"test: the rows of {test_path.name} (--test), read once after the search"
    _check_numbers(train_columns, where)
    if test_columns is not None:
        _check_numbers(test_columns, str(options.test))
    labels = train_columns.pop(options.label)
    if len(set(labels.tolist())) < 2:
        raise UsageError(f"--label column {options.label!r} of {path.name} holds one value only ({labels[0]!r}); "
                         "a classifier needs at least two classes")  # fmt: skip
    if test_columns is None:
        y_all, names = _class_index(labels, where)
        kept, held = stratified_split(y_all, TEST_SHARE, "test")
        test_rows = {k: v[held] for k, v in train_columns.items()}
        train_columns, y_train, y_test = {k: v[kept] for k, v in train_columns.items()}, y_all[kept], y_all[held]
        test_note = f"test: {TEST_SHARE:.0%} of the rows held out, stratified, by a fixed seed (--test FILE.csv gives your own)"
    else:
        test_labels = test_columns.pop(options.label)
        y_train, (y_test,), names = _labels_with_names(labels, [test_labels], None, where, given_as="--test")
        test_rows = test_columns
    encoding = TableEncoding(tuple(
        Column(name, None if values.dtype != object else tuple(sorted(set(values.astype(str).tolist()))))
        for name, values in train_columns.items()
    ))  # fmt: skip
    x_train = encoding.encode(train_columns)
    train, val = _split_off(x_train, y_train, VALIDATION_SHARE, "validation")
    test = Split(encoding.encode(test_rows), y_test)
    text_columns = [c.name for c in encoding.columns if c.vocabulary is not None]
    notes = (
        f"{path.name}: a table of {len(encoding.columns)} feature column(s) ({len(text_columns)} of text, one-hot encoded), "
        f"label {options.label!r} with {len(names)} classes: the features prior, standardized inside the model",
        f"validation: {VALIDATION_SHARE:.0%} of the training rows, stratified, shuffled with a fixed seed", test_note,
    )  # fmt: skip
    raw = RawInput(table=encoding, description=(
        f"raw CSV rows as a dict of columns ({', '.join(c.name for c in encoding.columns[:8])}"
        f"{', ...' if len(encoding.columns) > 8 else ''}), text included; encoding and standardization are inside the model"))  # fmt: skip
    sources = [path] + ([Path(options.test)] if options.test else [])
    return Dataset(name=path.stem, train=train, val=val, test=test, class_names=names, source=where, kind="table",
                   raw_input=raw, notes=notes, source_fingerprint=fingerprint(*sources))  # fmt: skip


# ----------------------------------------------------------------------------- image folders


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(root: Path) -> dict[str, list[Path]]:
    """Each class folder's image files, by class name; refuses an empty folder or class."""
    classes = _class_folders(root)
    if not classes:
        raise UsageError(f"{root} holds no class folders; put each class's images in a subfolder named after the class")
    found = {}
    for folder in classes:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UsageError(f"class folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); add some or remove it")
        found[folder.name] = files
    return found


def _read_images(files: list[Path], image_size: Optional[tuple[int, int]], colour: bool) -> np.ndarray:
    images, first = [], None
    for path in files:
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB" if colour else "L"), dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as error:
            raise UsageError(f"cannot read image {path} ({type(error).__name__}); fix or remove it") from None
        if image_size is None:
            if first is None:
                first = (path, pixels.shape[:2])
            elif pixels.shape[:2] != first[1]:
                raise UsageError(f"images differ in size: {first[0]} is {first[1][1]}×{first[1][0]} but {path} is "
                                 f"{pixels.shape[1]}×{pixels.shape[0]}; pass --image-size HxW to resize them all")  # fmt: skip
        images.append(pixels if colour else pixels[..., None])
    if image_size is not None:
        return _resized(images, image_size)
    return np.stack(images)


def _resized(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Keras's bilinear resize, the one its `Resizing` layer does inside the export, so training sees the same pixels."""
    return np.stack([keras.ops.convert_to_numpy(keras.ops.image.resize(image[None].astype(np.float32), size))[0]
                     for image in images])  # fmt: skip


def _is_colour(files: list[Path]) -> bool:
    for path in files:
        try:
            with Image.open(path) as image:
                if image.mode not in ("L", "1", "I", "I;16", "LA"):
                    return True
        except (OSError, UnidentifiedImageError):
            raise UsageError(f"cannot read image {path}; fix or remove it") from None
    return False


def read_folder(root: Path, options: DataOptions) -> Dataset:
    """A folder of images, one subfolder per class (or `train/` and `test/` folders so laid out), as a `Dataset`."""
    parts = {p.name for p in _class_folders(root)}
    given_test = parts == {"train", "test"}
    train_files = _image_files(root / "train" if given_test else root)
    test_files = _image_files(root / "test") if given_test else None
    names = tuple(train_files)
    if len(names) < 2:
        raise UsageError(f"{root} holds one class folder ({names[0]!r}); a classifier needs at least two")
    if test_files is not None and (unseen := sorted(set(test_files) - set(names))):
        raise UsageError(f"class {unseen[0]!r} is in {root / 'test'} but not in {root / 'train'}; "
                         "give training images of every class")  # fmt: skip
    every = [p for files in [*train_files.values(), *(test_files or {}).values()] for p in files]
    colour = _is_colour(every)
    if options.kind == "features":
        raise UsageError("--kind features applies to arrays; a folder of images is always images")

    def arrays(by_class: dict[str, list[Path]]) -> tuple[np.ndarray, np.ndarray]:
        files = [p for files in by_class.values() for p in files]
        y = np.array([names.index(c) for c, files in by_class.items() for _ in files], dtype=np.int32)
        return _read_images(files, options.image_size, colour).astype(np.float32) / np.float32(255.0), y

    x, y = arrays(train_files)
    if test_files is not None:
        x_test, y_test = arrays(test_files)
        test_note = f"test: the images of {root / 'test'}, read once after the search"
    else:
        kept, held = stratified_split(y, TEST_SHARE, "test")
        x, y, x_test, y_test = x[kept], y[kept], x[held], y[held]
        test_note = f"test: {TEST_SHARE:.0%} of the images held out, stratified, by a fixed seed"
    train, val = _split_off(x, y, VALIDATION_SHARE, "validation")
    test = Split(x_test, y_test)
    shape = train.x.shape[1:]
    notes = (_kind_note(root.name, "images", shape if colour else shape[:2], options).replace(" (--kind features overrides)", "")
             + (f"; resized to {options.image_size[0]}×{options.image_size[1]} (--image-size)" if options.image_size else ""),
             f"validation: {VALIDATION_SHARE:.0%} of the training images, stratified, shuffled with a fixed seed",
             test_note)  # fmt: skip
    raw = RawInput(scale=1 / 255.0, image_size=options.image_size, description=(
        f"raw 8-bit pixels, shape (n, H, W, {shape[-1]}) with values 0 to 255"
        + (f", any size (resized to {options.image_size[0]}×{options.image_size[1]} inside the model)"
           if options.image_size else f", H×W = {shape[0]}×{shape[1]}")))  # fmt: skip
    return Dataset(name=root.name, train=train, val=val, test=test, class_names=names, source=str(root),
                   mirror_invariant=options.mirror_invariant, kind="images", max_value=255.0, raw_input=raw,
                   notes=notes, source_fingerprint=fingerprint(root))  # fmt: skip


def read(path: Path, options: DataOptions) -> Dataset:
    """A user's file or folder as a `Dataset`, by its form: `.npz`, `.csv` or a folder."""
    if options.kind not in ("auto", *KINDS):
        raise UsageError(f"--kind must be auto, images, features or table, but got kind={options.kind!r}")
    if path.is_dir():
        return read_folder(path, options)
    if path.suffix.lower() == ".npz":
        return read_npz(path, options)
    if path.suffix.lower() == ".csv":
        return read_csv(path, options)
    raise UsageError(f"DATASET {str(path)!r} is a file of an unknown kind; give a .npz file, a .csv file or a folder of images")
