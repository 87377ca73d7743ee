"""The wall time of each trial, kept beside Keras Tuner's files in `checkpoints/RUN/`.

Owns: the file names (`search_times.json` for a single process,
`search_times-ID.json` for each worker of a distributed search, so that
processes sharing a run directory never write one file), writing one
trial's time, and reading them back. Imports only the standard library, so
`tuning.report` can read a run without starting TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuning.records.atomic import write_atomic

SINGLE_PROCESS_ID = "tuner0"  # Keras Tuner's tuner id when no chief/worker environment is set


def path_for(run_dir: Path, tuner_id: str) -> Path:
    """The times file written by the process whose Keras Tuner id is `tuner_id`."""
    return run_dir / ("search_times.json" if tuner_id == SINGLE_PROCESS_ID else f"search_times-{tuner_id}.json")


def _read(path: Path) -> dict[str, float]:
    """One process's times, by trial id; empty while the file does not exist."""
    return json.loads(path.read_text()) if path.exists() else {}


def record(run_dir: Path, tuner_id: str, trial_id: str, seconds: float) -> None:
    """Adds one trial's wall seconds to its process's file, replacing the file whole."""
    path = path_for(run_dir, tuner_id)
    times = _read(path)
    times[trial_id] = round(seconds, 3)
    write_atomic(path, json.dumps(times, indent=1))


def read_all(run_dir: Path) -> dict[str, float]:
    """Wall seconds of each finished trial, by trial id, from every process that ran trials."""
    times: dict[str, float] = {}
    for path in sorted(run_dir.glob("search_times*.json")):
        try:
            times.update(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue  # a worker's file mid-rename; its trials are counted on the next read
    return times
