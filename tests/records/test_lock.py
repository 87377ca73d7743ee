from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tuning.errors import UsageError
from tuning.records.lock import RunLock


def test_second_holder_is_refused_with_the_pid(tmp_path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(UsageError, match=rf"run 'run' is in use by process {os.getpid()}"):
            with RunLock(tmp_path / "run"):
                pass
    with RunLock(tmp_path / "run"):  # released on exit
        pass


def test_lock_of_a_killed_process_does_not_stick(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from tuning.records.lock import RunLock\n"
         f"RunLock(Path({str(tmp_path / 'run')!r})).__enter__(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(UsageError, match="in use"):
        RunLock(tmp_path / "run").__enter__()
    holder.kill()
    holder.wait()
    with RunLock(tmp_path / "run"):
        pass
