"""A run's state files checked before a rerun touches anything, and room on disk checked before a write needs it.

Owns: `check_state`, which reads every file a resumed run depends on
(`run.json`, Keras Tuner's `oracle.json` and each `trial_*/trial.json`, the
Optuna study's SQLite file, `events.jsonl`) and refuses, with one line naming
the damaged file and what to do, before anything is written; and
`check_room`, which refuses a write that the disk cannot hold before native
code (HDF5, under Keras's saves) would crash on it, naming the folder and the
space needed. PostgreSQL, SQLite and Optuna's RDB storage do the same: name
the file and the cause, and never make a damaged state worse.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Callable, Optional

from keras_tuner.errors import FatalError

from tuning.errors import RunError, UsageError

ORACLE_FILE = "oracle.json"
TRIAL_FILE = "trial.json"
# What a file of each kind must hold to be read back: its keys, and each one's type.
ORACLE_KEYS = {"ongoing_trials": dict, "end_order": list, "start_order": list, "hyperparameters": dict}
TRIAL_KEYS = {"trial_id": str, "hyperparameters": dict, "status": str}
RUN_KEYS = {"identity": dict}
# Room kept beyond a write's own size: the filesystem's blocks, HDF5's headers, TensorBoard's few events.
MARGIN_BYTES = 4 << 20


class OutOfSpace(RunError, FatalError):
    """The disk cannot hold the next write. A Keras Tuner `FatalError`, so that a trial does not swallow it."""


def _damaged(path: Path, why: str, run_name: str) -> UsageError:
    return UsageError(f"{path} is damaged ({why}); restore it from a copy, or start afresh with --overwrite "
                      f"(or another --name) to leave run {run_name!r} as it is")  # fmt: skip


def _read_json(path: Path, keys: dict[str, type], run_name: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise _damaged(path, f"unreadable: {error.__class__.__name__}", run_name) from None
    except json.JSONDecodeError as error:
        raise _damaged(path, f"not JSON, truncated or corrupt at line {error.lineno} column {error.colno}", run_name) from None
    if not isinstance(data, dict):
        raise _damaged(path, f"a JSON {type(data).__name__}, not an object", run_name)
    wrong = [k for k, kind in keys.items() if not isinstance(data.get(k), kind)]
    if wrong:
        raise _damaged(path, f"its {wrong[0]!r} is missing or not a {keys[wrong[0]].__name__}", run_name)
    return data


def _check_events(path: Path, run_name: str) -> None:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise _damaged(path, f"unreadable: {error.__class__.__name__}", run_name) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            raise _damaged(path, f"line {number} is not JSON, truncated or corrupt", run_name) from None
        if not isinstance(event, dict) or "event" not in event:
            raise _damaged(path, f"line {number} is not an event", run_name)


def _check_study(path: Path, run_name: str) -> None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            answer = connection.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as error:
        raise _damaged(path, f"not a readable SQLite database: {error}", run_name) from None
    if not answer or answer[0] != "ok":
        raise _damaged(path, f"SQLite's check says {answer[0] if answer else 'nothing'}", run_name)


def check_state(run_dir: Path, log_dir: Path, study_file: Optional[Path] = None) -> None:
    """Reads every state file of an existing run and refuses the first damaged one, changing nothing.

    Args:
        run_dir: `checkpoints/RUN`.
        log_dir: `logs/RUN`.
        study_file: The Optuna study's SQLite file, when the run keeps one there. Defaults to None.
    """
    name = run_dir.name
    if (run_dir / "run.json").exists():
        _read_json(run_dir / "run.json", RUN_KEYS, name)
    if (run_dir / ORACLE_FILE).exists():
        _read_json(run_dir / ORACLE_FILE, ORACLE_KEYS, name)
    for trial in sorted(run_dir.glob(f"trial_*/{TRIAL_FILE}")):
        _read_json(trial, TRIAL_KEYS, name)
    if study_file is not None and study_file.exists():
        _check_study(study_file, name)
    if (log_dir / "events.jsonl").exists():
        _check_events(log_dir / "events.jsonl", name)


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


def check_room(folder: Path, needed: int, what: str, free: Callable[[Path], int] | None = None) -> None:
    """Refuses, as an `OutOfSpace`, a write of about `needed` bytes into `folder` that its disk cannot hold.

    Args:
        folder: Where the write goes; its nearest existing parent is measured.
        needed: The write's size in bytes; `MARGIN_BYTES` more are kept free.
        what: What is about to be written, for the line ("trial 3's checkpoint").
        free: Free bytes of a folder's disk. Defaults to None (`shutil.disk_usage`).
    """
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    available = (free or (lambda p: shutil.disk_usage(p).free))(probe)
    if available < needed + MARGIN_BYTES:
        raise OutOfSpace(f"out of disk space: {probe} has {_size(available)} free, and {what} needs about "
                         f"{_size(needed + MARGIN_BYTES)}; make room there, then rerun the same command to resume "
                         "(the run's files are as its last save left them)")  # fmt: skip


def weights_bytes(parameters: Any) -> int:
    """About what a model of `parameters` float32 weights takes on disk."""
    return int(4 * int(parameters) * 1.05) + (64 << 10)
