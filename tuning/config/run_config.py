"""The typed, frozen description of one run, validated once.

Owns: every option of `tuning.run`, declared once with its default, help and
checks (`tuning.config.options`), the checks that relate options, and the directory
names a run uses. Does not own: parsing argv (`tuning.run` builds the parser
from these declarations) or acting on the values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tuning.config.options import NO_DEFAULT, Between, Minutes, OneOf, check_all, minutes_or_none, option
from tuning.data import references
from tuning.data.builtin import DATASETS
from tuning.data.types import DataOptions
from tuning.distributed.cores import available_cores
from tuning.errors import UsageError
from tuning.records.run_files import RunFiles
from tuning.search.budget import MAX_MEMBERS
from tuning.search.plan import DEFAULT_PRUNER, OPTUNA_TUNERS

# The space when --space is not given, for every dataset.
DEFAULT_SPACE = "dense"
LR_RANGE_CHOICES = ("off", "auto")
KEEP_CHECKPOINTS_CHOICES = ("all", "best", "none")
ROLES = ("chief", "worker")
DEFAULT_ORACLE_HOST = "127.0.0.1"
# Filesystems allow 255 bytes a name; Keras Tuner and this project add suffixes such as ".tmp-PID".
MAX_NAME_BYTES = 200
DEFAULT_FINAL_SEEDS = 3
# Under a time budget without --final-seeds: the most seeds the retraining fills the time left with.
BUDGET_MAX_SEEDS = MAX_MEMBERS
# Minutes a run takes at most unless --time-budget says otherwise: the main job, `tuning.run mnist`,
# ends within the hour on a 2-core machine, process start and one late epoch included
# (bench/results/default-mnist-seed*.json). `--time-budget none` lifts it.
DEFAULT_TIME_BUDGET = 55.0
MAX_TIME_BUDGET = 7 * 24 * 60.0
# Upper bounds that this machine and the product can honour: a value above them would run for
# days or run out of memory long after the run started, instead of being refused at once.
MAX_TRIALS = 10_000
DEFAULT_TRIALS = 50
# Under a time budget without --trials the budget ends the search: a 10-minute run on 4,000 rows of 40 numbers
# ran its 50 trials in 146 s of its 360-s share and left 56% of the budget idle (mnist1d, 144f8fd). A cap is
# still needed by Keras Tuner; this one no budget of a week reaches on this machine's tasks.
BUDGET_TRIAL_CAP = 1_000
MAX_EPOCHS = 1_000
MAX_BATCH_SIZE = 65_536
MAX_MC_PASSES = 1_000
MAX_FINAL_SEEDS = 32
MAX_CHIEF_TIMEOUT = 24 * 60 * 60
MAX_THREADS = 1_024
# Each local worker needs a core of its own (`tuning.distributed.cores.worker_threads`).
CORES = available_cores()
DATASET_NAMES = DATASETS.names()


class RunPlaces:
    """Where a run keeps things, derived from its options: its name, its folders, its study's storage.

    A base of `RunConfig`, kept apart so that the options read as one list.
    """

    name: Optional[str]
    dataset: str
    tuner: str
    checkpoint_root: str
    log_root: str
    storage: Optional[str]

    @property
    def run_name(self) -> str:
        return self.name or f"{references.run_name_of(self.dataset)}-{self.tuner}"

    @property
    def storage_url(self) -> str:
        """The Optuna study's storage: `--storage`, else SQLite in the run directory."""
        return self.storage or self.files.default_study_url

    @property
    def files(self) -> RunFiles:
        """The run's folders and files."""
        return RunFiles(self.run_dir, self.log_dir)

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


class RunAddresses:
    """Where the processes of a search spread over processes find each other; mixed into `RunConfig`."""

    oracle: Optional[str]
    worker_id: Optional[str]

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


@dataclass(frozen=True)
class RunConfig(RunPlaces, RunAddresses):
    """Everything one `tuning.run` invocation needs, each option declared once.

    Each field but `command` is an option whose default, help (`--help`,
    `docs/cli.md`) and checks are declared beside it (`tuning.config.options`); the
    parser is built from them. The checks that relate options follow the class.

    Args:
        command: The command line that produced this config, for provenance. Defaults to ().
    """

    dataset: str = option(NO_DEFAULT, f"a built-in dataset ({', '.join(DATASET_NAMES)}), or your own data: FILE.npz "
                          "(Keras's layout), FILE.csv (with --label) or a FOLDER of images, one subfolder per class "
                          "(docs/your-data.md)", positional=True, metavar="DATASET")  # fmt: skip
    trials: Optional[int] = option(None, "upper bound on trials, for every tuner", Between(1, MAX_TRIALS),
                                   default_text=f"{DEFAULT_TRIALS}; under a time budget, as many as the search's share "
                                   "of it holds")  # fmt: skip
    tuner: str = option("hyperband", "hyperband, bayesian, random, or Optuna's tpe, cmaes, gp")
    space: Optional[str] = option(None, "a built-in space (dense, deep, selu), or your own: path/to/file.py or "
                                  "package.module:attr holding a SearchSpace subclass or a Keras Tuner build_model(hp)",
                                  default_text="dense")  # fmt: skip
    max_epochs: int = option(10, "epochs per trial; Hyperband's top rung", Between(1, MAX_EPOCHS))
    patience: int = option(3, "early-stopping patience in epochs", Between(0, MAX_EPOCHS))
    batch_size: Optional[int] = option(None, "fixed batch size", Between(1, MAX_BATCH_SIZE), default_text="tuned by the space")
    data_dir: Optional[str] = option(None, "offline data folder of the built-in datasets", default_text="$TUNING_DATA_DIR, then download")
    label: Optional[str] = option(None, "a CSV DATASET's column to predict")
    test: Optional[str] = option(None, "a CSV DATASET's test rows, another .csv file with the same header",
                                 default_text="20% of the rows held out, stratified, by a fixed seed")  # fmt: skip
    image_size: Optional[str] = option(None, "a FOLDER's images are resized to HxW (height x width), inside the "
                                       "exported model too; needed when their sizes differ", metavar="HxW")  # fmt: skip
    kind: str = option("auto", "what your data's examples are: images (grey or colour priors, shifts), features or "
                       "table (the features prior, no augmentation)", OneOf(("auto", "images", "features", "table")),
                       default_text="auto: decided from the data, said in the first lines")  # fmt: skip
    mirror_invariant: bool = option(False, "your images keep their class when mirrored left-right, so the search "
                                    "may flip them; never guessed")  # fmt: skip
    seed: Optional[int] = option(None, "seed of the trial sequence and the weights",
                                 Between(0, 2**32 - 1, wording="between 0 and 2**32 - 1"), default_text="random, recorded")
    name: Optional[str] = option(None, f"run name, a plain folder name of at most {MAX_NAME_BYTES} bytes: checkpoints/RUN "
                                 "and logs/RUN", default_text="DATASET-TUNER")  # fmt: skip
    overwrite: bool = option(False, "start afresh instead of resuming RUN")
    final_epochs: int = option(30, "epochs of a full-length retraining member; under a time budget members aim for twice "
                               "it and are stretched up to three times it to fill the time", Between(1, MAX_EPOCHS))  # fmt: skip
    max_failures: int = option(5, "failed trials in a row that stop the search", Between(1, MAX_TRIALS))
    mc_passes: int = option(10, "stochastic passes of the MC-dropout evaluation", Between(1, MAX_MC_PASSES))
    final_seeds: Optional[int] = option(None, "retrain the best configuration this many times and export the average "
                                        "of their predictions", Between(1, MAX_FINAL_SEEDS),
                                        default_text=f"as many as the time budget holds, up to {BUDGET_MAX_SEEDS}; "
                                        f"{DEFAULT_FINAL_SEEDS} with --time-budget none")  # fmt: skip
    keep_checkpoints: str = option("best", "trial weights kept on disk: best keeps the best trial's and what Hyperband "
                                   "may still continue, none only the latter", OneOf(KEEP_CHECKPOINTS_CHOICES))  # fmt: skip
    lr_range: str = option("off", "'auto' runs the learning-rate range test first and searches within its bounds",
                           OneOf(LR_RANGE_CHOICES))  # fmt: skip
    pruner: Optional[str] = option(None, "Optuna tuners only: none, median or hyperband", default_text=DEFAULT_PRUNER)
    storage: Optional[str] = option(None, "Optuna tuners only: storage URL, or journal:PATH; with workers, one every "
                                    "process can reach", default_text="sqlite:///checkpoints/RUN/study.db")  # fmt: skip
    role: Optional[str] = option(None, "one process of a search spread over hosts (needs --oracle)", OneOf(ROLES),
                                 default_text="one process does all")  # fmt: skip
    oracle: Optional[str] = option(None, "HOST:PORT the chief serves on and workers connect to",
                                   default_text="with --workers: 127.0.0.1 and a free port")  # fmt: skip
    worker_id: Optional[str] = option(None, "with --role worker: its name, 1-64 letters, digits, ., _ or -, without "
                                      "'chief'; restart a dead worker under the same name to retry its trial",
                                      default_text="worker-HOST-PID")  # fmt: skip
    workers: Optional[int] = option(None, "run a chief and N worker processes on this machine, sharing the cores",
                                    Between(1, CORES, why="the CPU cores of this machine", described="1 to the CPU cores of this machine"), default_text="one process")  # fmt: skip
    chief_timeout: int = option(300, "seconds a worker waits for a silent chief before giving up",
                                Between(1, MAX_CHIEF_TIMEOUT, why="a day"))  # fmt: skip
    threads: Optional[int] = option(None, "TensorFlow CPU threads for this process", Between(1, MAX_THREADS),
                                    default_text="all cores")  # fmt: skip
    recycle_after: Optional[int] = option(None, "with --workers or --role worker: replace a worker process by a fresh "
                                          "one after this many trials, returning its memory", Between(1, MAX_TRIALS),
                                          default_text="never")  # fmt: skip
    time_budget: Optional[float] = option(
        DEFAULT_TIME_BUDGET, "wall-clock minutes for the whole run, export included: the search gets at most 60%, more "
        "when the retraining could not use the rest (none past its first trial when it cannot afford 4 full trials), "
        "the retraining fills the rest with up to "
        f"{BUDGET_MAX_SEEDS} members", Minutes(MAX_TIME_BUDGET, "a week"), parse=minutes_or_none, metavar="MINUTES",
    )  # fmt: skip
    local_share: float = option(0.75, "share of new trials, once 4 have finished, that are local moves of the best so "
                                "far; 0 leaves them to the tuner", Between(0, 1, wording="between 0 and 1"))  # fmt: skip
    checkpoint_root: str = option("checkpoints", "where runs keep their search state and export: ROOT/RUN; on many "
                                  "hosts, a folder every host sees")  # fmt: skip
    log_root: str = option("logs", "where runs keep their TensorBoard logs: ROOT/RUN")
    command: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        check_all(self)
        check_names(self)
        check_optuna_only(self)
        check_distribution(self)
        references.check_options(self.dataset, self.label, self.test, self.image_size, self.kind, self.mirror_invariant)

    @property
    def default_time_budget(self) -> bool:
        """Whether the time budget is the default one rather than the user's."""
        return self.time_budget == DEFAULT_TIME_BUDGET and not any(
            arg.split("=")[0] == "--time-budget" for arg in self.command)

    @property
    def trial_cap(self) -> int:
        """`--trials`, else `DEFAULT_TRIALS`, or under a time budget `BUDGET_TRIAL_CAP` (the budget ends the search)."""
        if self.trials is not None:
            return self.trials
        return BUDGET_TRIAL_CAP if self.time_budget is not None else DEFAULT_TRIALS

    @property
    def seeds_to_retrain(self) -> int:
        """`final_seeds`, else under a time budget the most the time left may hold, else 3."""
        if self.final_seeds is not None:
            return self.final_seeds
        return BUDGET_MAX_SEEDS if self.time_budget is not None else DEFAULT_FINAL_SEEDS

    @property
    def pruner_name(self) -> str:
        return self.pruner or DEFAULT_PRUNER

    @property
    def space_name(self) -> str:
        return self.space or DEFAULT_SPACE

    def identity(self) -> dict:
        """The options that must match for a rerun to resume this run."""
        identity = {"dataset": self.dataset, "tuner": self.tuner, "space": self.space_name,
                    "batch_size": self.batch_size, "max_epochs": self.max_epochs,
                    "lr_range": self.lr_range, "regularization_floor": self.regularization_floor}  # fmt: skip
        # How a user's data is read changes the arrays; the built-in datasets keep their identity of old.
        data = {"label": self.label, "test": self.test, "image_size": self.image_size, "kind": self.kind,
                "mirror_invariant": self.mirror_invariant}  # fmt: skip
        return identity | {k: v for k, v in data.items() if v not in (None, False, "auto")}

    def data_options(self) -> DataOptions:
        """How `tuning.data` reads a user's data."""
        return DataOptions(label=self.label, test=self.test, image_size=references.parse_image_size(self.image_size),
                           kind=self.kind, mirror_invariant=self.mirror_invariant)  # fmt: skip

    @property
    def regularization_floor(self) -> bool:
        """Whether trials are shorter than the retraining, so the space holds regularization at or above its prior."""
        return self.max_epochs < self.final_epochs


def check_names(config: RunConfig) -> None:
    """`--name`, or the `DATASET-TUNER` it defaults to, must make one folder a filesystem accepts."""
    if config.name is not None and (config.name in (".", "..") or os.sep in config.name or "/" in config.name):
        raise UsageError(f"--name must be a plain folder name, but got name={config.name!r}")
    if len(config.run_name.encode()) > MAX_NAME_BYTES:
        raise UsageError(
            f"--name must be at most {MAX_NAME_BYTES} bytes (a folder name, with room for the lock's temporary "
            f"files), but got {len(config.run_name.encode())} bytes; pick a shorter --name"
        )


def check_optuna_only(config: RunConfig) -> None:
    """`--pruner` and `--storage` belong to the Optuna tuners."""
    if config.tuner in OPTUNA_TUNERS:
        return
    for flag, value in (("--pruner", config.pruner), ("--storage", config.storage)):
        if value is not None:
            raise UsageError(f"{flag} applies to the Optuna tuners ({', '.join(OPTUNA_TUNERS)}), but got tuner={config.tuner!r}")


def check_distribution(config: RunConfig) -> None:
    """The options of a search spread over processes, which only make sense together."""
    if config.workers is not None and config.role is not None:
        raise UsageError(f"--workers starts its own chief and workers; drop --role, but got role={config.role!r} "
                         f"with workers={config.workers}")  # fmt: skip
    if config.role is not None and config.oracle is None:
        raise UsageError(f"--role {config.role} needs --oracle HOST:PORT, the address the chief serves on")
    if config.oracle is not None:
        if config.role is None and config.workers is None:
            raise UsageError(f"--oracle needs --role chief, --role worker or --workers N, but got oracle={config.oracle!r} alone")
        config.oracle_address()  # validates
    if config.worker_id is not None:
        if config.role != "worker":
            raise UsageError(f"--worker-id applies to --role worker, but got role={config.role!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", config.worker_id) or "chief" in config.worker_id:
            raise UsageError("--worker-id must be 1-64 letters, digits, '.', '_' or '-' and must not contain 'chief', "
                             f"but got worker_id={config.worker_id!r}")  # fmt: skip
    if config.recycle_after is not None and config.role != "worker" and config.workers is None:
        raise UsageError("--recycle-after applies to worker processes (--workers N or --role worker), "
                         f"but got recycle_after={config.recycle_after} in a single-process run")  # fmt: skip
    if in_memory(config.storage) and (config.workers is not None or config.role is not None):
        raise UsageError(f"--storage {config.storage!r} lives in this process's memory, where workers cannot reach it; "
                         "give a file (sqlite:///PATH or journal:PATH) or a database server every process reaches")
    if config.role == "worker" and config.overwrite:
        raise UsageError("--overwrite is refused on a worker: only the chief may clear the run; drop --overwrite")


def in_memory(storage: Optional[str]) -> bool:
    """Whether an Optuna storage URL is an in-memory SQLite database, which only its own process can reach."""
    if storage is None:
        return False
    return storage.strip() in ("sqlite://", "sqlite:///") or ":memory:" in storage
