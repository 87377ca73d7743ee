"""The two kinds of error the service raises on purpose.

`UsageError` means the user asked for something that cannot work (bad value,
unknown name, missing or corrupt data file): exit code 2. `RunError` means
the input was fine but the run failed (too many failed trials, a crash while
training): exit code 1. `tuning.cli.base.run_command` maps them; nothing else should.
Trials that fail raise Keras Tuner's `FailedTrialError` and never reach here.
"""

from __future__ import annotations


class TuningError(Exception):
    """Base class of the errors that the commands turn into one line."""

    exit_code = 1


class UsageError(TuningError):
    """Bad input: a value, a name, a flag combination or a data file."""

    exit_code = 2


class RunError(TuningError):
    """A failure during the run with input that was itself valid."""

    exit_code = 1


def message_line(text: str, last: bool = False) -> str:
    """One line of a message: its first (an error's summary) or its last (a traceback's error line); "" when empty.

    Args:
        text: A message or a traceback.
        last: Take the last line instead of the first. Defaults to False.
    """
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if last else lines[0]).strip() if lines else ""


def first_line(error: BaseException, with_type: bool = True) -> str:
    """An error as one line: `ValueError: the first line of its message`, or its type alone when it has none.

    Args:
        error: Any exception.
        with_type: Put the error's type in front. Defaults to True.
    """
    line = message_line(str(error))
    if not line:
        return type(error).__name__
    return f"{type(error).__name__}: {line}" if with_type else line
