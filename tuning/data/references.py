"""Checking a dataset reference before anything loads: a built-in name, or an existing `.npz`, `.csv` or folder.

Owns the checks `tuning.config` runs on `DATASET` and the options of a user's
data, and the run name a reference gives. Imports nothing heavy (the built-in
registry only names its loaders), so bad input is refused before TensorFlow
loads. Reading the data is `tuning.data.datasets.load_dataset`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from tuning.data.builtin import DATASETS
from tuning.errors import UsageError

FILE_SUFFIXES = (".npz", ".csv")


def is_builtin(reference: str) -> bool:
    """Whether `reference` names a built-in dataset rather than a path."""
    return reference in DATASETS.names()


def form(reference: str) -> str:
    """`builtin`, `npz`, `csv` or `folder`; refuses anything else with the choices."""
    if is_builtin(reference):
        return "builtin"
    path = Path(reference).expanduser()
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in FILE_SUFFIXES and path.is_file():
        return path.suffix.lower()[1:]
    if path.suffix.lower() in FILE_SUFFIXES:
        raise UsageError(f"DATASET {reference!r} does not exist; give the path of an existing file")
    raise UsageError(f"DATASET must be a built-in dataset ({', '.join(DATASETS.names())}), a .npz file, a .csv file "
                     f"or a folder of images, but got dataset={reference!r}")  # fmt: skip


def run_name_of(reference: str) -> str:
    """The `DATASET` part of a run's default name: the built-in name, or the file or folder's name without suffix."""
    if is_builtin(reference):
        return reference
    path = Path(reference).expanduser().resolve()
    stem = path.stem if path.suffix.lower() in FILE_SUFFIXES else path.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "data"


def parse_image_size(text: Optional[str]) -> Optional[tuple[int, int]]:
    """`--image-size HxW` as `(height, width)`; None when not given."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*", text)
    if not match or not all(1 <= int(v) <= 4096 for v in match.groups()):
        raise UsageError(f"--image-size must be HxW with sides from 1 to 4096, e.g. 64x64, but got image_size={text!r}")
    return int(match.group(1)), int(match.group(2))


def check_options(reference: str, label: Optional[str], test: Optional[str], image_size: Optional[str],
                  kind: str, mirror_invariant: bool) -> None:  # fmt: skip
    """The options of a user's data make sense for `reference`'s form; each refusal names the option and the fix."""
    shape = form(reference)
    parse_image_size(image_size)
    if shape != "csv":
        for flag, value in (("--label", label), ("--test", test)):
            if value is not None:
                raise UsageError(f"{flag} applies to a .csv DATASET, but got {flag[2:]}={value!r} with dataset={reference!r}")
    if shape != "folder" and image_size is not None:
        raise UsageError(f"--image-size applies to a folder of images, but got image_size={image_size!r} with dataset={reference!r}")
    if shape == "builtin" and (kind != "auto" or mirror_invariant):
        raise UsageError(f"--kind and --mirror-invariant apply to your own data; the built-in {reference!r} knows its own")
    if shape == "csv" and label is None:
        raise UsageError(f"a CSV DATASET needs --label COLUMN, the column to predict, but got none with dataset={reference!r}")
    if test is not None and not (Path(test).expanduser().is_file() and test.lower().endswith(".csv")):
        raise UsageError(f"--test must be an existing .csv file, but got test={test!r}")
