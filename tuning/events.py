"""What happens during a run, as typed events that code can consume instead of printed lines.

Owns: the event types. A run hands each event to one `listen` callable
(`tuning.service.run(config, listen=...)`); the benchmark's clock is one
such listener. Printed progress lines are for people and are never parsed
back. Does not own: emitting them (the tuner and the retraining do) or the
progress printer (`say`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union


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


Event = Union[EpochEnded, TrialEnded]
Listener = Callable[[Event], None]
