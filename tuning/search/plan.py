"""What a search needs to know: `SearchPlan`, and what a worker needs: `WorkerSpec`; below every module that uses them.

Owns: the plan's fields and its JSON form (a chief sends it to its worker
processes), a worker's spec (the plan, the chief's data and space, its seed
and threads) and the exit code a recycled worker process ends with. It sits
low in the import graph and imports nothing heavy, so that `tuning.search.tuners`,
`tuning.distributed`, `tuning.worker` and `tuning.search` can all import it
without a circle, and a worker process reads its spec before TensorFlow
loads. Does not own: building them from the command line
(`tuning.service.search_plan`) or running them (`tuning.search`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tuning.records.run_files import RunFiles
from tuning.search.budget import TimeBudget

# The tuners that are Optuna samplers (`tuning.search.optuna_oracle.SAMPLERS` registers exactly these),
# named here, below TensorFlow and Optuna, so that `tuning.config` can check the options that apply to them.
OPTUNA_TUNERS = ("tpe", "cmaes", "gp")
# The Optuna pruner when --pruner is not given.
DEFAULT_PRUNER = "median"
RECYCLE_EXIT = 75  # a worker that ran its --recycle-after trials and wants a fresh process


@dataclass(frozen=True)
class WorkerTemplate:
    """What a worker needs besides its plan to rebuild its chief's data and space.

    Args:
        dataset: The dataset's reference: a built-in name or the path of the user's data.
        space: The search space's reference: a built-in name, a file or `module:attr`.
        identity: The options it must share with its chief (`tuning.service.run_identity`).
        data_dir: Offline data. Defaults to None.
        batch_size: A fixed batch size. Defaults to None (searched).
        data_options: How to read a user's data (`tuning.data.types.DataOptions`, as a dict). Defaults to None.
    """

    dataset: str
    space: str
    identity: dict[str, Any]
    data_dir: Optional[str] = None
    batch_size: Optional[int] = None
    data_options: Optional[dict[str, Any]] = None


@dataclass(frozen=True)
class SearchPlan:
    """Everything a search needs, and nothing of the command line's.

    Args:
        tuner: A name in `tuning.search.tuners.TUNERS`.
        trials: The trial cap, for every tuner.
        max_epochs: Epochs per trial; Hyperband's top rung.
        patience: Early-stopping patience in epochs.
        max_failures: Failed trials in a row that stop the search.
        keep_checkpoints: `all`, `best` or `none`.
        local_share: The share of new configurations that are local moves (`tuning.search.proposals`).
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
            to rebuild the data and the space, for a chief with `workers`.
            Defaults to None.
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
    worker_template: Optional[WorkerTemplate] = field(default=None, compare=False)

    @property
    def storage(self) -> str:
        return self.storage_url or self.files.default_study_url

    @property
    def oracle_address(self) -> str:
        return f"{self.oracle_host}:{self.oracle_port}"

    def to_dict(self) -> dict:
        """Plain data for JSON, as a chief sends the plan to its workers."""
        found = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("files", "budget")}
        found["worker_template"] = None if self.worker_template is None else dataclasses.asdict(self.worker_template)
        found["files"] = {"run_dir": str(self.files.run_dir), "log_dir": str(self.files.log_dir)}
        found["budget"] = None if self.budget is None else dataclasses.asdict(self.budget)
        return found

    @classmethod
    def from_dict(cls, data: dict) -> "SearchPlan":
        data = dict(data)
        data["files"] = RunFiles(Path(data["files"]["run_dir"]), Path(data["files"]["log_dir"]))
        data["budget"] = None if data.get("budget") is None else TimeBudget(**data["budget"])
        data["worker_template"] = None if data.get("worker_template") is None else WorkerTemplate(**data["worker_template"])
        return cls(**data)


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker needs: its plan, its chief's data and space, its seed and its threads.

    Args:
        plan: The search, with `role="worker"` and the worker's id.
        template: The chief's data, space and shared options.
        seed: The seed it was asked for; it must be the chief's. Defaults to None.
        threads: TensorFlow CPU threads. Defaults to None (all cores).
    """

    plan: SearchPlan
    template: WorkerTemplate
    seed: Optional[int] = None
    threads: Optional[int] = None

    def to_json(self) -> str:
        """The JSON a local worker process starts from (`python -m tuning.worker SPEC`)."""
        return json.dumps({"plan": self.plan.to_dict(), "template": dataclasses.asdict(self.template),
                           "seed": self.seed, "threads": self.threads})  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> "WorkerSpec":
        data = json.loads(text)
        return cls(SearchPlan.from_dict(data["plan"]), WorkerTemplate(**data["template"]), data["seed"], data["threads"])
