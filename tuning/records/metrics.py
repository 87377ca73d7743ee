"""`metrics.json`: the schema of a run's figures, one typed record that writes and reads it.

Owns: `RunMetrics` and its parts (`DatasetFigures`, `SearchFigures`,
`FinalFigures`), their JSON form (the same keys `metrics.json` has always
had) and the machine and library versions a run records. The model card
(`tuning.final.export`), the report (`tuning.report`), the command line's summary
(`tuning.run`) and the benchmarks read this record, not a bare dict. Imports
nothing heavy, so the report starts fast. Does not own: computing the
figures (`tuning.service`, `tuning.final.evaluate`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class DatasetFigures:
    """The data a run used."""

    name: str
    source: str
    sizes: dict
    input_shape: list
    n_classes: int
    class_names: list
    max_value: float
    fingerprint: str
    kind: Optional[str] = None  # images, features or table; None in files written before it existed
    raw_input: Optional[str] = None  # what the exported model takes, in words; None: the arrays as they are
    notes: Optional[list] = None  # what was decided from the data: its kind, its validation and test splits


@dataclass(frozen=True)
class SearchFigures:
    """What the search did and chose."""

    tuner: str
    space: str
    max_trials: int
    max_epochs: int
    fidelity: Optional[str]
    trial_epochs: Optional[dict]
    time_budget_minutes: Optional[float]
    workers: Optional[int]
    optuna: Optional[dict]
    trials_by_status: dict
    best_trial_id: str
    defaults_kept_within_noise: bool
    best_trial_val_accuracy: float
    wall_seconds: float
    mean_trial_seconds: Optional[float]
    # False when the time budget could not pay for a search beyond the first trial (`tuning.search.budget`).
    search_paid: Optional[bool] = None
    # The share of search time on configurations costing over 3 times the defaults an epoch.
    costly_trial_share: Optional[float] = None


@dataclass(frozen=True)
class FinalFigures:
    """The retraining, the exported model and its one test evaluation."""

    members: list
    curves_seed: int
    val_accuracy: float
    val_loss: float
    test_accuracy: float
    test_loss: float
    test_accuracy_ci95: list
    test_ece: float
    mc_dropout: Optional[dict]
    seeds: list
    val_accuracy_spread: dict
    test_accuracy_spread: dict
    search_validation_gap: float
    epoch_budget: int
    epochs_run: int
    best_epoch: int
    parameters: int
    wall_seconds: float
    history: dict
    # The search's choice against the space's defaults at the members' length, when the search never trained the
    # defaults as long: each candidate's trial and validation accuracy, and the kept one. None when none ran.
    final_rung: Optional[dict] = None


@dataclass(frozen=True)
class RunMetrics:
    """Everything `metrics.json` holds.

    Args:
        run: The run's name.
        command: The command line, or "(called from Python)".
        seed: The run's seed.
        dataset: The data.
        search: The search.
        final: The retraining and the test evaluation.
        learning_rate_range_test: `{"bounds": [low, high]}` with `--lr-range auto`, else None.
        machine: Processor, core count and GPUs.
        versions: Python, the platform and the libraries.
    """

    run: str
    command: str
    seed: int
    dataset: DatasetFigures
    search: SearchFigures
    final: FinalFigures
    learning_rate_range_test: Optional[dict]
    machine: dict
    versions: dict

    def reproducing_command(self) -> str:
        """The command that produced the run, with `--seed` added when it was drawn at random."""
        if self.command.startswith("(") or "--seed" in self.command.split():
            return self.command
        return f"{self.command} --seed {self.seed}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n")

    @classmethod
    def from_dict(cls, data: dict) -> "RunMetrics":
        parts = {"dataset": DatasetFigures, "search": SearchFigures, "final": FinalFigures}
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = data.get(f.name)
            values[f.name] = _part(parts[f.name], raw) if f.name in parts else raw
        return cls(**values)

    @classmethod
    def read(cls, path: Path) -> "RunMetrics":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _part(kind, raw: dict):
    # Fields a file written before they existed lacks are None.
    return kind(**{f.name: raw.get(f.name) for f in dataclasses.fields(kind)})


def machine(gpus: list[str]) -> dict:
    """The processor, the core count and the GPUs given.

    Args:
        gpus: The names of the GPUs TensorFlow sees (`tf.config.list_physical_devices("GPU")`).
    """
    processor = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"processor": processor, "cpu_count": os.cpu_count(), "gpus": gpus}


def versions() -> dict[str, str]:
    """Python, the platform and the versions of the libraries a run depends on."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("tensorflow", "tensorflow-cpu", "keras", "keras-tuner", "optuna", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found
