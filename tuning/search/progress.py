"""The progress line of an ended trial, for people (code reads `tuning.records.events`, never these lines).

Owns: the one-line report of a trial in fixed columns, used by the tuner in
one process and by a chief for its workers' trials. Does not own: when a
line is printed (`tuning.search.tuners`, `tuning.distributed`).
"""

from __future__ import annotations

import keras_tuner as kt

from tuning.errors import message_line
from tuning.search.selection import pruned_trials
from tuning.text import format_values
from tuning.training.callbacks import OBJECTIVE


def progress_line(oracle: kt.Oracle, trial_id: str, total: int, seconds: float, epochs: int | None = None) -> str:
    """The progress line of an ended trial, with its place in the oracle's end order.

    Args:
        oracle: The oracle.
        trial_id: The trial that ended.
        total: The trial cap.
        seconds: The trial's wall time.
        epochs: Epochs it trained, when this process counted them; else the
            epochs it was given (Hyperband's, or the pruned epoch).
    """
    done = oracle.end_order.index(trial_id) + 1 if trial_id in oracle.end_order else len(oracle.end_order)
    pruned_at = pruned_trials(oracle).get(trial_id)
    return format_trial_line(oracle.get_trial(trial_id), done, total, seconds, pruned_at, epochs)


def format_trial_line(trial: kt.engine.trial.Trial, done: int, total: int, seconds: float,
                      pruned_at: int | None = None, epochs: int | None = None) -> str:  # fmt: skip
    """One progress line in fixed columns: trial id, place out of the cap, status, score, epochs, time, hyperparameters.

    Trials are named by their id everywhere (here, in "best trial", in the
    report and on the dashboard); `[3/50]` only counts how many have ended.
    """
    width = len(str(total))
    values = trial.hyperparameters.values
    epochs = pruned_at or epochs or values.get("tuner/epochs")
    if trial.status == "COMPLETED" and trial.score is not None:
        status, score, tail = ("pruned" if pruned_at else "completed"), f"{trial.score:.4f}", ""
    else:
        reason = message_line(trial.message or "", last=True)
        status, score = trial.status.lower(), "-"
        tail = f"reason: {reason[:120] or 'none recorded'}  "
    return (f"trial {trial.trial_id}  [{done:>{width}}/{total}]  {status:<9}  {OBJECTIVE}={score:<6}  "
            f"epochs={epochs if epochs is not None else '-':<3} {seconds:6.1f}s  {tail}{format_values(values)}")
