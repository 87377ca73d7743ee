"""Failed trials in a row, counted from the oracle's own record.

Owns: the longest run of failed trials in a search's end order, the rule
that stops a search once it reaches `--max-failures`, and the one line that
says what to do then. Keras Tuner applies the same rule in `Oracle.end_trial`
(it raises a `RuntimeError` when a run of failures reaches the limit); we
count ourselves so that nothing depends on the wording of its message. Does
not own: why a trial fails (`tuning.search.tuners`) or how the error reaches the
user (`tuning.run`).
"""

from __future__ import annotations

from typing import Any

from tuning.errors import RunError, message_line

FAILED = "FAILED"


def longest_run(oracle: Any) -> tuple[int, str]:
    """The longest run of failed trials in `oracle.end_order`, and the last failure's message.

    Args:
        oracle: A Keras Tuner oracle; only `end_order` and `trials` are read.

    Returns:
        The run's length (0 when no trial failed) and the message of the last
        failed trial in it ("" when none).
    """
    longest, current, message, longest_message = 0, 0, "", ""
    for trial_id in oracle.end_order:
        trial = oracle.trials[trial_id]
        if trial.status == FAILED:
            current += 1
            message = (trial.message or "").strip()
            if current > longest:
                longest, longest_message = current, message
        else:
            current = 0
    return longest, longest_message


def reached(oracle: Any, limit: int) -> bool:
    """Whether a run of `limit` failed trials in a row has happened (Keras Tuner's rule)."""
    return longest_run(oracle)[0] >= limit


def error(oracle: Any, limit: int) -> RunError:
    """The one line for a search stopped by `limit` failed trials in a row."""
    _, message = longest_run(oracle)
    last = message_line(message or "", last=True) or "no message"
    return RunError(
        f"stopped after {limit} failed trials in a row (last: {last}); "
        "raise --max-failures or narrow the search, then rerun to resume"
    )


def check(oracle: Any, limit: int) -> None:
    """Raises `error(...)` when `reached(oracle, limit)`.

    Args:
        oracle: A Keras Tuner oracle.
        limit: `--max-failures`.
    """
    if reached(oracle, limit):
        raise error(oracle, limit)
