"""One process per run directory.

Owns: `RunLock`, an advisory `flock` on `checkpoints/RUN/.lock`. The kernel
drops the lock when its process dies, however it dies, so a crashed run never
leaves the directory stuck.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tuning.errors import UsageError

LOCK_NAME = ".lock"


class RunLock:
    """Holds `run_dir/.lock` for the life of a `with` block.

    Args:
        run_dir: The run's checkpoint directory; created if missing.
        name: The lock file's name. Defaults to `.lock`, the run's own;
            each worker of a distributed search holds one of its own.
    """

    def __init__(self, run_dir: Path, name: str = LOCK_NAME) -> None:
        self.path = run_dir / name
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            refusal = self._in_use(fd)
            os.close(fd)
            raise refusal from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def check_free(self) -> None:
        """Refuses at once, creating nothing, if another live process holds this lock."""
        if not self.path.is_file():
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._in_use(fd) from None
        finally:
            os.close(fd)  # closing drops the shared lock taken to test

    def _in_use(self, fd: int) -> UsageError:
        """The refusal when another process holds the lock, naming it (its pid is the lock file's text)."""
        holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
        own = self.path.name == LOCK_NAME
        what = f"run {self.path.parent.name!r}" if own else str(self.path)
        return UsageError(f"{what} is in use by process {holder}; wait for it to finish, or pick another "
                          + ("--name" if own else "--worker-id"))  # fmt: skip

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
