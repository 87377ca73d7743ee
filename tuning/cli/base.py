"""What the three commands (`tuning.run`, `tuning.lr_find`, `tuning.report`) share.

Owns: the argparse parser that turns its errors into `UsageError`, keeping
TensorFlow, Keras Tuner and Optuna quiet, and mapping errors to one line on
stderr and an exit code (2 bad input, 1 run failure, 130 interrupted by
Ctrl-C, 143 stopped by SIGTERM, as container runtimes and schedulers stop a job).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from typing import Callable

from tuning.errors import Terminated, TuningError, UsageError, clear_stop, first_line, note_stop


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one-line `UsageError`s, not a usage dump and exit."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


def quiet_libraries() -> None:
    """Silences TensorFlow's start-up chatter and library warnings.

    TensorFlow's C++ logging writes to file descriptor 2 before it reads any
    setting, so stderr is pointed at /dev/null while TensorFlow loads.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # the chief/worker channel's C core logs at INFO otherwise
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    import optuna  # it resets its own logger's level when first imported, so import it first

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)


# What each signal the commands handle raises.
_STOPS = {signal.SIGTERM: Terminated, signal.SIGINT: KeyboardInterrupt}


def _raise_stop(signum, frame) -> None:
    kind = _STOPS[signum]
    note_stop(kind)
    raise kind()


def _drop_stops_in_finalizers(previous: Callable) -> Callable:
    """An `unraisablehook` that drops a stop raised into a `__del__` or weakref callback, and passes the rest on.

    The handlers' raise (`Terminated`, `KeyboardInterrupt`) can land in a
    finalizer that the garbage collector runs (Keras's and TensorFlow's weak
    dictionaries), where Python would print it as "Exception ignored in ..."
    with a traceback and go on; the flag the handler set stops the command at
    its next safe point anyway (`raise_if_stopped`).
    """

    def hook(unraisable) -> None:
        if not isinstance(unraisable.exc_value, (Terminated, KeyboardInterrupt)):
            previous(unraisable)

    return hook


def _install_stop_handlers() -> Callable[[], None]:
    """Routes SIGTERM and Ctrl-C through `note_stop`, in the main thread only; returns what puts the old ones back.

    Ctrl-C is taken over only where Python's own handler has it: a job started
    in the background with SIGINT ignored stays deaf to it.
    """
    if not _main_thread():
        return lambda: None
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_stop)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _raise_stop)

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    return restore


def run_command(prog: str, body: Callable[[], int], debug: bool, on_interrupt: str = "interrupted") -> int:
    """Runs `body` and maps what it raises to one line on stderr and an exit code.

    Args:
        prog: The command's name, prefixed to every message.
        body: Does the work; returns the exit code.
        debug: Re-raise instead, so the traceback shows.
        on_interrupt: What to say on Ctrl-C. Defaults to "interrupted".
    """
    restore_handlers = _install_stop_handlers()
    previous_hook, sys.unraisablehook = sys.unraisablehook, _drop_stops_in_finalizers(sys.unraisablehook)
    try:
        return body()
    except Terminated:
        print(f"{prog}: stopped by SIGTERM; {on_interrupt.split('; ', 1)[-1] if '; ' in on_interrupt else 'stopped'}",
              file=sys.stderr)  # fmt: skip
        return 143
    except TuningError as error:
        if debug:
            raise
        print(f"{prog}: error: {one_line(str(error))}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # a path too long, a folder not writable, a full disk: the user's to fix
        if debug:
            raise
        if error.errno == errno.ENOSPC:
            print(f"{prog}: error: out of disk space writing {error.filename or 'a file'}; make room there, then rerun "
                  "the same command to resume", file=sys.stderr)  # fmt: skip
            return 1
        where = f" ({error.filename})" if error.filename else ""
        print(f"{prog}: error: {error.strerror or one_line(str(error))}{where}; fix the path or its "
              "permissions, or pick another --name or --checkpoint-root", file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: {on_interrupt}", file=sys.stderr)
        return 130
    except Exception as error:  # the last resort: one line, and how to see more
        if debug:
            raise
        print(f"{prog}: error: {first_line(error)} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        clear_stop()  # answered: a later command in this process runs
        sys.unraisablehook = previous_hook
        restore_handlers()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def one_line(message: str) -> str:
    """A message folded to one line: a library's multi-line error joined with spaces."""
    return " ".join(line.strip() for line in message.strip().splitlines() if line.strip())
