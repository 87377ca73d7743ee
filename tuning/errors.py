"""The two kinds of error the service raises on purpose.

`UsageError` means the user asked for something that cannot work (bad value,
unknown name, missing or corrupt data file): exit code 2. `RunError` means
the input was fine but the run failed (too many failed trials, a crash while
training): exit code 1. `tuning.cli.base.run_command` maps them; nothing else should.
Trials that fail raise Keras Tuner's `FailedTrialError` and never reach here.
"""

from __future__ import annotations

from typing import Optional


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


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that it unwinds as Ctrl-C does: finished trials kept, locks freed."""


# Set by the commands' SIGTERM and Ctrl-C handlers (`tuning.cli.base`). An exception raised by a signal handler
# lands wherever the main thread is, and one that lands in a `__del__` or a weakref callback is dropped by Python
# (unprinted: the commands' `sys.unraisablehook`), so the search and the retraining also ask at each trial, epoch
# and member (`raise_if_stopped`). The first request wins: a Ctrl-C after SIGTERM changes nothing.
_stop_kind: Optional[type[BaseException]] = None


def note_stop(kind: type[BaseException] = Terminated) -> None:
    """Records that the process was asked to stop; the next `raise_if_stopped` raises `kind`.

    Args:
        kind: `Terminated` for SIGTERM, `KeyboardInterrupt` for Ctrl-C. Defaults to `Terminated`.
    """
    global _stop_kind
    if _stop_kind is None:
        _stop_kind = kind


def raise_if_stopped() -> None:
    """Raises the noted stop (`Terminated` or `KeyboardInterrupt`): a safe point the handler's raise may have missed."""
    if _stop_kind is not None:
        raise _stop_kind()


def clear_stop() -> None:
    """Forgets an earlier stop request, once a command has answered it."""
    global _stop_kind
    _stop_kind = None
