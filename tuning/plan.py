"""What a search needs to know: `SearchPlan`, below every module that uses it.

Owns: the plan's fields and its JSON form (a chief sends it to its worker
processes). It sits low in the import graph so that `tuning.tuners`,
`tuning.distributed`, `tuning.worker` and `tuning.search` can all import it
without a circle. Does not own: building it from the command line
(`tuning.service.search_plan`) or running it (`tuning.search`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tuning.budget import TimeBudget
from tuning.run_files import RunFiles

# The Optuna pruner when --pruner is not given.
DEFAULT_PRUNER = "median"


@dataclass(frozen=True)
class SearchPlan:
    """Everything a search needs, and nothing of the command line's.

    Args:
        tuner: A name in `tuning.tuners.TUNERS`.
        trials: The trial cap, for every tuner.
        max_epochs: Epochs per trial; Hyperband's top rung.
        patience: Early-stopping patience in epochs.
        max_failures: Failed trials in a row that stop the search.
        keep_checkpoints: `all`, `best` or `none`.
        local_share: The share of new configurations that are local moves (`tuning.proposals`).
        files: Where the run keeps its state and logs.
        study_name: The Optuna study's name (the run's name).
        space: The search space's name, for messages. Defaults to "dense".
        pruner: The Optuna pruner's name. Defaults to "median".
        storage_url: The Optuna storage. Defaults to None (SQLite in the run folder).
        role: `local` (one process), `chief` (serves workers) or `worker`. Defaults to "local".
        oracle_host: Where a chief serves, or where a worker finds it. Defaults to "127.0.0.1".
        oracle_port: Its port; 0 lets a chief pick a free one. Defaults to 0.
        workers: Local worker processes a chief starts. Defaults to None (none).
        worker_id: A worker's name. Defaults to None.
        chief_timeout: Seconds a worker waits for a silent chief. Defaults to 300.
        recycle_after: Trials after which a worker process is replaced. Defaults to None.
        budget: The run's time budget. Defaults to None.
        worker_template: What a local worker process needs besides this plan
            to rebuild the data and the space (`tuning.worker.WorkerSpec`'s
            other fields), for a chief with `workers`. Defaults to None.
    """

    tuner: str
    trials: int
    max_epochs: int
    patience: int
    max_failures: int
    keep_checkpoints: str
    local_share: float
    files: RunFiles
    study_name: str
    space: str = "dense"
    pruner: str = DEFAULT_PRUNER
    storage_url: Optional[str] = None
    role: str = "local"
    oracle_host: str = "127.0.0.1"
    oracle_port: int = 0
    workers: Optional[int] = None
    worker_id: Optional[str] = None
    chief_timeout: int = 300
    recycle_after: Optional[int] = None
    budget: Optional[TimeBudget] = None
    worker_template: Optional[dict] = field(default=None, compare=False)

    @property
    def storage(self) -> str:
        return self.storage_url or self.files.default_study_url

    @property
    def oracle_address(self) -> str:
        return f"{self.oracle_host}:{self.oracle_port}"

    def to_dict(self) -> dict:
        """Plain data for JSON, as a chief sends the plan to its workers."""
        found = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("files", "budget")}
        found["files"] = {"run_dir": str(self.files.run_dir), "log_dir": str(self.files.log_dir)}
        found["budget"] = None if self.budget is None else dataclasses.asdict(self.budget)
        return found

    @classmethod
    def from_dict(cls, data: dict) -> "SearchPlan":
        data = dict(data)
        data["files"] = RunFiles(Path(data["files"]["run_dir"]), Path(data["files"]["log_dir"]))
        data["budget"] = None if data.get("budget") is None else TimeBudget(**data["budget"])
        return cls(**data)
