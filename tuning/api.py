"""`tuning.tune(...)`: the command line's run from Python, for notebooks, with arrays, a DataFrame or a `build_model`.

Owns: turning what a notebook holds into the references a run takes (a
run's data and space travel as strings, to workers and to `run.json`): arrays
and DataFrames are written once to a file named by their contents, and a `build_model` function is named by its module, or kept in
this process when it has none. In-memory data goes to a cache folder outside
`checkpoints/` (`data_cache`), so bad arrays leave no trace in a run. Then it builds a `RunConfig` from the same
option declarations as the command line and runs `tuning.service.tune_and_export`,
the code `python -m tuning.run` runs. Does not own: any step of the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from tuning.config import RunConfig
from tuning.errors import UsageError
from tuning.search import spaces
from tuning.service import TuningResult, tune_and_export

DATA_CACHE_ENV = "TUNING_DATA_CACHE"
Data = Union[str, os.PathLike, tuple, Any]  # a path, (x, y) arrays, or a pandas DataFrame


def tune(data: Data, *, test: Optional[Data] = None, label: Optional[str] = None,
         build_model: Optional[Callable] = None, class_names: Optional[list[str]] = None,
         say: Callable[[str], None] = print, listen: Optional[Callable] = None, **options: Any) -> TuningResult:  # fmt: skip
    """Searches, retrains, tests once and exports, as `python -m tuning.run` does; returns the result.

    Args:
        data: A built-in dataset's name or a path (`.npz`, `.csv`, a folder),
            as on the command line; or `(x, y)` arrays; or a pandas DataFrame
            holding the `label` column.
        test: With arrays, `(x_test, y_test)` (required: the test split is
            read once, after the search); with a DataFrame, a DataFrame of
            test rows (else 20% of the rows are held out by a fixed seed).
            Defaults to None.
        label: A DataFrame's or a CSV file's column to predict. Defaults to None.
        build_model: A Keras Tuner `build_model(hp)` returning a compiled model,
            instead of `space=`. Defaults to None.
        class_names: With arrays, one name per integer label. Defaults to None.
        say: Where progress lines go. Defaults to `print`.
        listen: Receives the run's events (`tuning.records.events`). Defaults to None.
        **options: Any option of `tuning.run`, by its field name: `time_budget=5`,
            `trials=20`, `tuner="tpe"`, `name="mine"`, `space="deep"`, ...

    Returns:
        The `TuningResult`: `test_accuracy`, `test_accuracy_ci95`, `export_dir`, `run_name`, `record`.
    """
    allowed = {f.name for f in dataclasses.fields(RunConfig)} - {"dataset", "command", "label", "test"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise UsageError(f"tune() takes no option {unknown[0]!r}; its options are tuning.run's: {', '.join(sorted(allowed))}")
    if build_model is not None:
        if options.get("space") is not None:
            raise UsageError("give either build_model= or space=, not both")
        options["space"] = spaces.reference_of(build_model)
        if spaces.in_process(options["space"]) and (options.get("workers") or options.get("role")):
            raise UsageError(f"worker processes cannot import {build_model.__qualname__}, defined in this session; put "
                             "build_model in a .py file and pass space='path/to/file.py'")  # fmt: skip
    reference, test_reference = _data_reference(data, test, label, class_names, data_cache())
    config = RunConfig(dataset=reference, label=label, test=test_reference, **options)
    return tune_and_export(config, say=say, listen=listen)


def _data_reference(data: Data, test: Optional[Data], label: Optional[str], class_names: Optional[list[str]],
                    root: Path) -> tuple[str, Optional[str]]:  # fmt: skip
    """`(DATASET, --test)` for `data`: a path as it is, in-memory data written to `root` once."""
    if isinstance(data, (str, os.PathLike)):
        if test is not None and not isinstance(test, (str, os.PathLike)):
            raise UsageError("with a path as data, give test= as a path too (a CSV file of test rows)")
        return str(data), None if test is None else str(test)
    if _is_dataframe(data):
        if label is None:
            raise UsageError("a DataFrame needs label='COLUMN', the column to predict")
        train = _write(root, "table", data.to_csv(index=False).encode(), ".csv")
        tested = None if test is None else _write(root, "table", _frame_of(test).to_csv(index=False).encode(), ".csv")
        return train, tested
    if isinstance(data, tuple) and len(data) == 2:
        if test is None or not (isinstance(test, tuple) and len(test) == 2):
            raise UsageError("with (x, y) arrays, give test=(x_test, y_test): the test split is read once, after the search")
        arrays = {"x_train": np.asarray(data[0]), "y_train": np.asarray(data[1]),
                  "x_test": np.asarray(test[0]), "y_test": np.asarray(test[1])}  # fmt: skip
        if class_names is not None:
            arrays["class_names"] = np.asarray([str(n) for n in class_names])
        return _write(root, "arrays", _npz_bytes(arrays), ".npz"), None
    raise UsageError(f"data must be a path, (x, y) arrays or a pandas DataFrame, but got a {type(data).__name__}")


def data_cache() -> Path:
    """Where in-memory data is written: `$TUNING_DATA_CACHE`, else `~/.cache/tuning/data` (never under checkpoints/)."""
    chosen = os.environ.get(DATA_CACHE_ENV)
    return Path(chosen).expanduser() if chosen else Path.home() / ".cache" / "tuning" / "data"


def _is_dataframe(value: Any) -> bool:
    return hasattr(value, "to_csv") and hasattr(value, "columns")


def _frame_of(value: Any):
    if not _is_dataframe(value):
        raise UsageError(f"with a DataFrame as data, test= must be a DataFrame too, but got a {type(value).__name__}")
    return value


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _write(root: Path, kind: str, content: bytes, suffix: str) -> str:
    """Writes `content` once under `root`, named by its hash, so the same data is the same run."""
    path = root / f"{kind}-{hashlib.sha256(content).hexdigest()[:12]}{suffix}"
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
        tmp.write_bytes(content)
        os.replace(tmp, path)
    return str(path)
