"""What happens during a run, as typed events that code can consume instead of printed lines.

Owns: the event types, `Say` (the type of the progress printer), and
`JsonLinesLog`, the listener that writes a run's events to
`logs/RUN/events.jsonl` for users to follow (`tail -f`) or load. A run hands each event to one `listen` callable
(`tuning.service.tune_and_export(config, listen=...)`); the benchmark's clock is one
such listener. Printed progress lines are for people and are never parsed
back. Does not own: emitting them (the tuner and the retraining do) or the
progress printer (`say`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union


@dataclass(frozen=True)
class TrialStarted:
    """A trial started in this process.

    Args:
        trial_id: The trial's id.
        at: `time.time()` when it started.
    """

    trial_id: str
    at: float


@dataclass(frozen=True)
class EpochEnded:
    """One epoch of a trial or of a retraining member ended.

    Args:
        phase: `"trial"` or `"retraining"`.
        source: The trial's id, or the retraining member's seed.
        epoch: 1-based epoch number within that trial or member.
        logs: Keras's epoch logs (`loss`, `accuracy`, `val_loss`, `val_accuracy`, ...).
        seconds: The epoch's wall time, validation included.
        at: `time.time()` when it ended.
    """

    phase: str
    source: str
    epoch: int
    logs: dict
    seconds: float
    at: float


@dataclass(frozen=True)
class TrialEnded:
    """A trial ended, with the outcome the oracle settled on.

    Args:
        trial_id: The trial's id.
        outcome: `"completed"`, `"pruned"` or `"failed"`.
        score: Its score (validation accuracy at the selected epoch), or None.
        epochs: Epochs this process trained in it.
        seconds: Its wall time.
        at: `time.time()` when it ended.
    """

    trial_id: str
    outcome: str
    score: float | None
    epochs: int
    seconds: float
    at: float


@dataclass(frozen=True)
class MemberEnded:
    """A retraining member (one seed of the chosen configuration) ended.

    Args:
        seed: Its seed.
        epochs_run: Epochs it trained.
        epochs_planned: Epochs it was given.
        val_accuracy: Its validation accuracy (the best epoch's weights).
        seconds: Its training time.
        at: `time.time()` when it ended.
    """

    seed: int
    epochs_run: int
    epochs_planned: int
    val_accuracy: float
    seconds: float
    at: float


@dataclass(frozen=True)
class Exported:
    """The run ended: the test set was read once and the model exported.

    Args:
        path: The export's folder (`checkpoints/RUN/best`).
        test_accuracy: The exported model's test accuracy.
        at: `time.time()` when the export was written.
    """

    path: str
    test_accuracy: float
    at: float


Event = Union[TrialStarted, EpochEnded, TrialEnded, MemberEnded, Exported]
Listener = Callable[[Event], None]
Say = Callable[[str], None]
"""Where lines for people go (`print` by default); code never reads them back."""


EVENTS_FILE = "events.jsonl"


class JsonLinesLog:
    """A listener that appends each event to a JSON-lines file, one object per line, flushed at once.

    Each line is the event's fields plus `"event"`, its type's name
    (`"EpochEnded"`, `"TrialEnded"`, ...). A resumed run appends to the same
    file, and so do a chief's local workers, with their own trials.

    Args:
        path: The file; its folder is created when missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __call__(self, event: Event) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"event": type(event).__name__, **dataclasses.asdict(event)}, default=float)
        # One write to a file opened for appending, so lines from a chief and its local
        # workers sharing the file never interleave.
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, (line + "\n").encode())
        finally:
            os.close(descriptor)


def read(path: Path) -> list[dict]:
    """The events a `JsonLinesLog` wrote, in order, as dicts (a missing file has none)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fan_out(*listeners: Optional[Listener]) -> Listener:
    """One listener that hands each event to every given one, in order (None entries are skipped)."""
    chosen = [listener for listener in listeners if listener is not None]

    def listen(event: Event) -> None:
        for listener in chosen:
            listener(event)

    return listen
