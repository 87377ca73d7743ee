"""The files of one run: the layout of `checkpoints/RUN/` and `logs/RUN/`, `run.json`, the seed, clearing.

Owns: where a run keeps things (`RunFiles`), its run file (`run.json`: the
options a rerun must share to resume it, the seed, the learning-rate bounds,
and, under a time budget, when the budget began), the rule that picks the
seed, waiting for a chief's run file, and clearing a run for `--overwrite`.
Keras Tuner's own files (`trial_*/`, `oracle.json`, `tuner0.json`) and the
Optuna study live in the same folder but are theirs. Does not own: the lock
(`tuning.records.lock`), the export's contents (`tuning.final.export`), or the CLI's
options (`tuning.config`): everything here takes plain values.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from tuning.errors import RunError, UsageError
from tuning.records.atomic import write_atomic
from tuning.records.lock import LOCK_NAME

RUN_FILE = "run.json"
EXPORT_DIR = "best"
STUDY_FILE = "study.db"


@dataclass(frozen=True)
class RunFiles:
    """Where one run keeps its state, its logs and its export.

    Args:
        run_dir: `checkpoints/RUN`: the Keras Tuner project, the lock, `run.json`, `best/`.
        log_dir: `logs/RUN`: the HParams experiment and one TensorBoard run per session.
    """

    run_dir: Path
    log_dir: Path

    @property
    def run_file(self) -> Path:
        return self.run_dir / RUN_FILE

    @property
    def export_dir(self) -> Path:
        return self.run_dir / EXPORT_DIR

    @property
    def default_study_url(self) -> str:
        """The Optuna study's storage when none is given: SQLite in the run folder."""
        return f"sqlite:///{(self.run_dir / STUDY_FILE).resolve()}"

    def read(self) -> Optional[dict]:
        """The run file, or None when the run is new."""
        if not self.run_file.exists():
            return None
        try:
            return json.loads(self.run_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise UsageError(f"{self.run_file} is damaged (unreadable or not JSON: {error}); restore it from a copy, or "
                             "start afresh with --overwrite (or another --name)") from None  # fmt: skip

    def previous(self, identity: dict, overwrite: bool, worker: bool = False) -> Optional[dict]:
        """The run file of an existing run, after checking that `identity` may resume it.

        Args:
            identity: The options that must match (`RunConfig.identity()`).
            overwrite: The run starts afresh; the old file is returned unchecked.
            worker: Word the refusal for a worker, which must take the chief's options.
        """
        previous = self.read()
        if previous is None or overwrite:
            return previous
        recorded = previous.get("identity", {})
        mismatched = {k: (recorded.get(k), v) for k, v in identity.items() if recorded.get(k) != v}
        if mismatched:
            detail = ", ".join(f"{k} was {old!r}, now {new!r}" for k, (old, new) in mismatched.items())
            if worker:
                raise UsageError(f"this worker's settings differ from the chief's ({detail}); give it the chief's options")
            raise UsageError(
                f"run {self.run_dir.name!r} exists with other settings ({detail}); "
                "pass --overwrite to start afresh or --name for a new run"
            )
        return previous

    def write(self, identity: dict, seed: int, learning_rate_bounds, budget_began: Optional[float] = None,
              search_seconds: Optional[float] = None) -> None:  # fmt: skip
        """Writes the run file atomically (a temporary name, then a rename).

        Args:
            identity: The options a rerun must share to resume.
            seed: The run's seed.
            learning_rate_bounds: The range test's bounds, or None.
            budget_began: When a time budget began, for workers on other hosts. Defaults to None.
            search_seconds: The search's wall time summed over every process so far. Defaults to None.
        """
        record = {"identity": identity, "seed": seed, "learning_rate_bounds": learning_rate_bounds}
        if budget_began is not None:
            record["budget_began"] = budget_began
        if search_seconds is not None:
            record["search_seconds"] = round(search_seconds, 2)
        write_atomic(self.run_file, json.dumps(record, indent=2))

    def clear(self) -> None:
        """Deletes everything of the run but its lock, and its logs: `--overwrite`."""
        for entry in self.run_dir.iterdir():
            if entry.name == LOCK_NAME:
                continue
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def wait_for_run_file(self, timeout: int, say: Callable[[str], None]) -> None:
        """A worker started before its chief waits for the chief's run file, up to `timeout` seconds."""
        if self.run_file.exists():
            return
        say(f"waiting up to {timeout}s for the chief to create {self.run_file}")
        deadline = time.monotonic() + timeout
        while not self.run_file.exists():
            if time.monotonic() > deadline:
                raise RunError(
                    f"no chief created {self.run_file} within {timeout}s; start the chief first "
                    "(same DATASET and options, --role chief) or raise --chief-timeout"
                )
            time.sleep(1.0)


def choose_seed(requested: Optional[int], previous: Optional[dict], overwrite: bool) -> int:
    """The run's seed: the one asked for, else the one a resumed run started with, else a random one."""
    if requested is not None:
        return requested
    if previous is not None and not overwrite and "seed" in previous:
        return int(previous["seed"])
    return secrets.randbelow(2**31)
