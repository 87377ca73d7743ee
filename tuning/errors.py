"""The two kinds of error the service raises on purpose.

`UsageError` means the user asked for something that cannot work (bad value,
unknown name, missing or corrupt data file): exit code 2. `RunError` means
the input was fine but the run failed (too many failed trials, a crash while
training): exit code 1. `tuning.run.main` maps them; nothing else should.
Trials that fail raise Keras Tuner's `FailedTrialError` and never reach here.
"""

from __future__ import annotations


class TuningError(Exception):
    """Base class of the errors that `tuning.run.main` turns into one line."""

    exit_code = 1


class UsageError(TuningError):
    """Bad input: a value, a name, a flag combination or a data file."""

    exit_code = 2


class RunError(TuningError):
    """A failure during the run with input that was itself valid."""

    exit_code = 1
