"""Real files of the three user formats, written in the test from data scikit-learn ships (no download)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits, load_wine

WINE_COLUMNS = ["alcohol", "malic_acid", "ash", "hue", "cellar"]
CELLARS = ("north", "south", "east")


def digits_npz(folder: Path, sort_by_class: bool = False, **overrides) -> Path:
    """scikit-learn's digits as feature vectors of 64 numbers (0-16) in Keras's layout; optionally sorted by class."""
    x, y = load_digits(return_X_y=True)
    order = np.argsort(y, kind="stable") if sort_by_class else np.arange(len(y))
    x, y = x[order].astype(np.float32), y[order]
    test = np.arange(len(y)) % 5 == 0
    arrays = {"x_train": x[~test], "y_train": y[~test], "x_test": x[test], "y_test": y[test], **overrides}
    path = folder / "digits_rows.npz"
    np.savez(path, **arrays)
    return path


def wine_rows() -> tuple[list[str], list[list]]:
    """scikit-learn's wine table with a text column (`cellar`) made from one of its numbers, and the cultivar's name."""
    wine = load_wine()
    header = [*WINE_COLUMNS, "cultivar"]
    rows = [[f"{r[0]:.2f}", f"{r[1]:.2f}", f"{r[2]:.2f}", f"{r[10]:.3f}", CELLARS[int(r[12] // 400) % 3],
             str(wine.target_names[t])] for r, t in zip(wine.data, wine.target)]  # fmt: skip
    return header, rows


def wine_csv(folder: Path, name: str = "wine.csv", rows: list[list] | None = None, header: list[str] | None = None) -> Path:
    default_header, default_rows = wine_rows()
    path = folder / name
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header or default_header)
        writer.writerows(default_rows if rows is None else rows)
    return path


def digit_images(folder: Path, per_class: int = 40, name: str = "digit_images", layout: str = "classes") -> Path:
    """PNGs of scikit-learn's digits, 8×8 grey, one subfolder per class (or `train/` and `test/` so laid out)."""
    digits = load_digits()
    root = folder / name
    counts: dict[int, int] = {}
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        if counts.get(label, 0) >= per_class:
            continue
        counts[label] = counts.get(label, 0) + 1
        part = ("test" if counts[label] % 5 == 0 else "train") if layout == "split" else ""
        target = root / part / f"digit_{label}"
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 15).astype(np.uint8)).save(target / f"{i}.png")
    return root


BUILD_MODEL = '''
import keras


def build_model(hp):
    model = keras.Sequential([
        keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu"),
        keras.layers.Dense({classes}, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
'''


def space_file(folder: Path, classes: int = 10, body: str | None = None, name: str = "my_space.py") -> Path:
    """A user's space file with a plain Keras Tuner `build_model(hp)`."""
    path = folder / name
    path.write_text(body if body is not None else BUILD_MODEL.format(classes=classes))
    return path
