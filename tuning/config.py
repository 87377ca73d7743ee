"""The typed, frozen description of one run, validated once.

Owns: every option's default and its validation, and the directory names a
run uses. Does not own: parsing argv (`tuning.run`) or acting on the values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tuning.errors import UsageError
from tuning.run_files import RunFiles

DEFAULT_SPACE = {"mnist": "dense", "cifar10": "dense", "digits": "dense"}
FALLBACK_SPACE = "dense"
LR_RANGE_CHOICES = ("off", "auto")
OPTUNA_TUNERS = ("tpe", "cmaes", "gp")
KEEP_CHECKPOINTS_CHOICES = ("all", "best", "none")
ROLES = ("chief", "worker")
DEFAULT_ORACLE_HOST = "127.0.0.1"
# Filesystems allow 255 bytes a name; Keras Tuner and this project add suffixes such as ".tmp-PID".
MAX_NAME_BYTES = 200
DEFAULT_FINAL_SEEDS = 3
# Under a time budget without --final-seeds: the most seeds the retraining fills the time left with.
BUDGET_MAX_SEEDS = 8
# Minutes a run takes at most unless --time-budget says otherwise: the main job, `tuning.run mnist`,
# ends within the hour on a 2-core machine, process start and one late epoch included
# (bench/results/default-mnist-seed*.json). `--time-budget none` lifts it.
DEFAULT_TIME_BUDGET = 55.0
MAX_TIME_BUDGET = 7 * 24 * 60.0


@dataclass(frozen=True)
class RunConfig:
    """Everything one `tuning.run` invocation needs.

    Args:
        dataset: Registered dataset name.
        tuner: Registered tuner name. Defaults to `"hyperband"`.
        trials: Upper bound on trials, for every tuner. Defaults to 50.
        space: Registered search-space name. Defaults to the dataset's default space.
        max_epochs: Epochs per trial; Hyperband's top rung. Defaults to 10.
        patience: Early-stopping patience in epochs. Defaults to 3.
        batch_size: Fixed batch size, or None to let the space tune it. Defaults to None.
        data_dir: Offline data directory. Defaults to None (`$TUNING_DATA_DIR`, then download).
        seed: Seed of the trial sequence and the weights; None picks one and records it.
        name: Run name. Defaults to `"DATASET-TUNER"`.
        overwrite: Start afresh instead of resuming. Defaults to False.
        final_epochs: Epochs of a full-length retraining member; a member's
            annealing schedule spans its epochs. Under a time budget members
            are planned from it, up to twice as long, to fill the time
            (`tuning.evaluate.MemberPlanner`). Defaults to 30.
        max_failures: Consecutive failed trials that stop the search. Defaults to 5.
        lr_range: `"auto"` runs the learning-rate range test first and narrows
            the learning-rate hyperparameter to its bounds; `"off"` does not. Defaults to "off".
        pruner: Optuna pruner for the Optuna tuners: `none`, `median` or
            `hyperband`. Defaults to None (`median` for Optuna tuners).
        storage: Optuna storage URL. Defaults to None (SQLite at `checkpoints/RUN/study.db`).
        final_seeds: How many times the best configuration is retrained, with
            seeds `seed`, `seed + 1`, ...; the export averages their
            predictions. Defaults to None: under a time budget as many as
            the time left holds, up to `BUDGET_MAX_SEEDS`; without one, 3.
        keep_checkpoints: Which trials keep their weights on disk: `all`, `best`
            (the best trial's, plus what Hyperband may still continue) or `none`
            (only what Hyperband may still continue). Defaults to "best".
        mc_passes: Stochastic passes of the MC-dropout evaluation. Defaults to 10.
        role: `"chief"` serves the search to workers on other processes or
            hosts, then retrains and exports; `"worker"` runs trials the chief
            hands out and nothing else. Defaults to None (one process does all).
        oracle: `HOST:PORT` where the chief serves, for `role` and `workers`.
            Defaults to None (`127.0.0.1` and a free port with `workers`).
        worker_id: A worker's name; restart a dead worker under the same name
            and it retries the trial it was running. Defaults to None
            (`worker-HOSTNAME-PID`).
        workers: Start a chief and this many worker processes on this machine.
            Defaults to None (one process).
        chief_timeout: Seconds a worker waits for a chief that does not
            answer before it gives up. Defaults to 300.
        threads: CPU threads for TensorFlow in this process. Defaults to None
            (TensorFlow's choice: every core).
        recycle_after: A worker process that has run this many trials exits
            and is replaced by a fresh one, which hands its memory back to
            the system. Defaults to None (never).
        time_budget: Wall-clock minutes for the whole run, or None for no
            limit. The search gets at most 60% of it (less once the first
            trial shows what two full retrainings cost, and none beyond the
            first trial when it cannot afford four full trials); the
            retraining fills the rest with members planned from measured
            epoch times, leaving time for the test evaluation and the export
            (`tuning.budget`). Defaults to `DEFAULT_TIME_BUDGET` (55).
        local_share: The share of new configurations, once 4 trials have
            finished, that are local moves of the best so far (one or two
            hyperparameters moved); the rest are the tuner's own. 0 leaves
            all but the first (the space's defaults) to the tuner. Defaults
            to 0.75, measured on digits (docs/benchmarks.md, `local-share-digits-hyperband.json`).
        checkpoint_root: Where runs keep their search state and export. Defaults to `checkpoints`.
        log_root: Where runs keep their TensorBoard logs. Defaults to `logs`.
        command: The command line that produced this config, for provenance.
    """

    dataset: str
    tuner: str = "hyperband"
    trials: int = 50
    space: Optional[str] = None
    max_epochs: int = 10
    patience: int = 3
    batch_size: Optional[int] = None
    data_dir: Optional[str] = None
    seed: Optional[int] = None
    name: Optional[str] = None
    overwrite: bool = False
    final_epochs: int = 30
    max_failures: int = 5
    mc_passes: int = 10
    final_seeds: Optional[int] = None
    keep_checkpoints: str = "best"
    lr_range: str = "off"
    pruner: Optional[str] = None
    storage: Optional[str] = None
    role: Optional[str] = None
    oracle: Optional[str] = None
    worker_id: Optional[str] = None
    workers: Optional[int] = None
    chief_timeout: int = 300
    threads: Optional[int] = None
    recycle_after: Optional[int] = None
    time_budget: Optional[float] = DEFAULT_TIME_BUDGET
    local_share: float = 0.75
    checkpoint_root: str = "checkpoints"
    log_root: str = "logs"
    command: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        _at_least(1, trials=self.trials)
        _at_least(1, max_epochs=self.max_epochs)
        _at_least(0, patience=self.patience)
        _at_least(1, final_epochs=self.final_epochs)
        _at_least(1, max_failures=self.max_failures)
        _at_least(1, mc_passes=self.mc_passes)
        if self.final_seeds is not None:
            _at_least(1, final_seeds=self.final_seeds)
        if self.keep_checkpoints not in KEEP_CHECKPOINTS_CHOICES:
            raise UsageError(
                f"--keep-checkpoints must be one of {', '.join(KEEP_CHECKPOINTS_CHOICES)}, "
                f"but got keep_checkpoints={self.keep_checkpoints!r}"
            )
        if self.lr_range not in LR_RANGE_CHOICES:
            raise UsageError(
                f"--lr-range must be one of {', '.join(LR_RANGE_CHOICES)}, but got lr_range={self.lr_range!r}"
            )
        if self.batch_size is not None:
            _at_least(1, batch_size=self.batch_size)
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise UsageError(f"--seed must be between 0 and 2**32 - 1, but got seed={self.seed}")
        if self.tuner not in OPTUNA_TUNERS:
            for flag, value in (("--pruner", self.pruner), ("--storage", self.storage)):
                if value is not None:
                    raise UsageError(
                        f"{flag} applies to the Optuna tuners ({', '.join(OPTUNA_TUNERS)}), "
                        f"but got tuner={self.tuner!r}"
                    )
        self._check_distribution()
        if not 0.0 <= self.local_share <= 1.0:
            raise UsageError(f"--local-share must be between 0 and 1, but got local_share={self.local_share}")
        if self.time_budget is not None and not 0 < self.time_budget <= MAX_TIME_BUDGET:
            raise UsageError(f"--time-budget must be greater than 0 and at most {MAX_TIME_BUDGET:g} minutes (a week), "
                             f"or 'none' for no limit, but got time_budget={self.time_budget}")
        if self.name is not None:
            if not self.name or self.name in (".", "..") or os.sep in self.name or "/" in self.name:
                raise UsageError(f"--name must be a plain folder name, but got name={self.name!r}")
        if len(self.run_name.encode()) > MAX_NAME_BYTES:
            raise UsageError(
                f"--name must be at most {MAX_NAME_BYTES} bytes (a folder name, with room for the lock's temporary "
                f"files), but got {len(self.run_name.encode())} bytes; pick a shorter --name"
            )

    def _check_distribution(self) -> None:
        _at_least(1, chief_timeout=self.chief_timeout)
        if self.threads is not None:
            _at_least(1, threads=self.threads)
        if self.workers is not None:
            _at_least(1, workers=self.workers)
            if self.role is not None:
                raise UsageError(
                    f"--workers starts its own chief and workers; drop --role, but got role={self.role!r} with workers={self.workers}"
                )
        if self.role is not None and self.role not in ROLES:
            raise UsageError(f"--role must be one of {', '.join(ROLES)}, but got role={self.role!r}")
        if self.role is not None and self.oracle is None:
            raise UsageError(f"--role {self.role} needs --oracle HOST:PORT, the address the chief serves on")
        if self.oracle is not None:
            if self.role is None and self.workers is None:
                raise UsageError(f"--oracle needs --role chief, --role worker or --workers N, but got oracle={self.oracle!r} alone")
            self.oracle_address()  # validates
        if self.worker_id is not None:
            if self.role != "worker":
                raise UsageError(f"--worker-id applies to --role worker, but got role={self.role!r}")
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.worker_id) or "chief" in self.worker_id:
                raise UsageError(
                    "--worker-id must be 1-64 letters, digits, '.', '_' or '-' and must not contain 'chief', "
                    f"but got worker_id={self.worker_id!r}"
                )
        if self.recycle_after is not None:
            _at_least(1, recycle_after=self.recycle_after)
            if self.role != "worker" and self.workers is None:
                raise UsageError(
                    "--recycle-after applies to worker processes (--workers N or --role worker), "
                    f"but got recycle_after={self.recycle_after} in a single-process run"
                )
        if self.role == "worker" and self.overwrite:
            raise UsageError("--overwrite is refused on a worker: only the chief may clear the run; drop --overwrite")

    def oracle_address(self) -> tuple[str, int]:
        """`--oracle` as (host, port); the port is 0 (pick a free one) when only `--workers` is given."""
        if self.oracle is None:
            return DEFAULT_ORACLE_HOST, 0
        host, sep, port = self.oracle.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise UsageError(f"--oracle must be HOST:PORT with a port from 1 to 65535, but got oracle={self.oracle!r}")
        return host.strip("[]"), int(port)

    @property
    def worker_name(self) -> str:
        """`--worker-id`, or `worker-HOSTNAME-PID`."""
        if self.worker_id:
            return self.worker_id
        import socket

        return f"worker-{socket.gethostname().split('.')[0]}-{os.getpid()}"

    @property
    def run_name(self) -> str:
        return self.name or f"{self.dataset}-{self.tuner}"

    @property
    def default_time_budget(self) -> bool:
        """Whether the time budget is the default one rather than the user's."""
        return self.time_budget == DEFAULT_TIME_BUDGET and not any(
            arg.split("=")[0] == "--time-budget" for arg in self.command)

    @property
    def seeds_to_retrain(self) -> int:
        """`final_seeds`, else under a time budget the most the time left may hold, else 3."""
        if self.final_seeds is not None:
            return self.final_seeds
        return BUDGET_MAX_SEEDS if self.time_budget is not None else DEFAULT_FINAL_SEEDS

    @property
    def pruner_name(self) -> str:
        return self.pruner or "median"

    @property
    def storage_url(self) -> str:
        """The Optuna study's storage: `--storage`, else SQLite in the run directory."""
        return self.storage or self.files.default_study_url

    @property
    def files(self) -> RunFiles:
        """The run's folders and files."""
        return RunFiles(self.run_dir, self.log_dir)

    @property
    def space_name(self) -> str:
        return self.space or DEFAULT_SPACE.get(self.dataset, FALLBACK_SPACE)

    @property
    def run_dir(self) -> Path:
        """`checkpoints/RUN`: the Keras Tuner project, the lock and the export."""
        return Path(self.checkpoint_root) / self.run_name

    @property
    def log_dir(self) -> Path:
        """`logs/RUN`: the HParams experiment, one TensorBoard run per trial under `trials/`, and the retraining's under `retrain/`."""
        return Path(self.log_root) / self.run_name

    @property
    def export_dir(self) -> Path:
        return self.files.export_dir

    def identity(self) -> dict:
        """The options that must match for a rerun to resume this run."""
        return {"dataset": self.dataset, "tuner": self.tuner, "space": self.space_name,
                "batch_size": self.batch_size, "max_epochs": self.max_epochs,
                "lr_range": self.lr_range, "regularization_floor": self.regularization_floor}  # fmt: skip

    @property
    def regularization_floor(self) -> bool:
        """Whether trials are shorter than the retraining, so the space holds regularization at or above its prior."""
        return self.max_epochs < self.final_epochs


def _at_least(minimum: int, **named: int) -> None:
    ((name, value),) = named.items()
    if value < minimum:
        flag = "--" + name.replace("_", "-")
        raise UsageError(f"{flag} must be at least {minimum}, but got {name}={value}")
