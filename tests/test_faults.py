"""Faults of the machine, caused for real: a filesystem that fills up, state files truncated in place, SIGTERM.

Each gets one line naming the cause and the fix, makes nothing worse, and leaves a run that the same command
finishes (docs/reliability.md's guarantees table)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tuning.errors import Terminated

QUICK = ["digits", "--tuner", "random", "--max-epochs", "1", "--final-seeds", "1", "--final-epochs", "1",
         "--time-budget", "none", "--seed", "0"]  # fmt: skip
# A TPE run keeps every state file: run.json, oracle.json, the trials' trial.json, study.db and events.jsonl.
QUICK_TPE = ["tpe" if arg == "random" else arg for arg in QUICK]


def completed(run_dir: Path) -> list[Path]:
    """The trial files of the trials that have finished (Keras Tuner writes one when a trial starts, too)."""
    found = []
    for path in run_dir.glob("trial_*/trial.json"):
        try:
            if json.loads(path.read_text()).get("status") == "COMPLETED":
                found.append(path)
        except (OSError, ValueError):
            pass
    return found


def snapshot(*roots: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for root in roots for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A folder holding one finished two-trial TPE run (checkpoints/ and logs/), to damage copies of."""
    folder = tmp_path_factory.mktemp("finished")
    done = run_cli([*QUICK_TPE, "--trials", "2"], cwd=folder)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


@pytest.mark.parametrize("damaged", ["oracle.json", "trial_0/trial.json", "run.json", "events.jsonl", "study.db"])
def test_a_truncated_state_file_is_named_and_the_run_is_left_byte_for_byte(finished_run, tmp_path, damaged):
    shutil.copytree(finished_run, tmp_path, dirs_exist_ok=True)
    root = tmp_path / ("logs" if damaged == "events.jsonl" else "checkpoints") / "digits-tpe"
    path = root / damaged
    content = path.read_bytes()[: len(path.read_bytes()) // 2]
    path.write_bytes(content[:-1] if content.endswith(b"\n") else content)  # cut mid-line, as a killed write leaves it
    before = snapshot(tmp_path / "checkpoints", tmp_path / "logs")
    done = run_cli([*QUICK_TPE, "--trials", "3"], cwd=tmp_path)
    assert done.returncode == 2, done.stdout[-1000:] + done.stderr[-1000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{damaged} is damaged" in lines[0] and "--overwrite" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and snapshot(tmp_path / "checkpoints", tmp_path / "logs") == before


def test_sigterm_stops_with_one_line_and_exit_143_and_the_same_command_resumes(tmp_path):
    command = [sys.executable, "-m", "tuning.run", *QUICK, "--trials", "40"]
    env = {k: v for k, v in os.environ.items() if k != "TUNING_DATA_DIR"}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "checkpoints" / "digits-random"
    deadline = time.monotonic() + 240
    while not completed(run_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "stopped by SIGTERM" in lines[0] and "rerun the same command to resume" in lines[0], stderr
    finished = completed(run_dir)
    assert finished
    rerun = run_cli([*QUICK, "--trials", str(len(finished) + 1)], cwd=tmp_path)
    assert rerun.returncode == 0 and f"{len(finished)} trial(s) already finished" in rerun.stdout, rerun.stderr[-2000:]


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs, remountable bigger; skipped where this machine cannot mount one (not root, a sandbox)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root and mount(8) to make a small tmpfs")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_filesystem_that_fills_up_stops_with_one_line_and_a_rerun_finishes_once_there_is_room(tmp_path, small_disk):
    argv = [*QUICK, "--trials", "2", "--checkpoint-root", str(small_disk)]
    done = run_cli(argv, cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-1000:] + done.stderr[-1000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) <= 2 and "out of disk space" in lines[-1] and str(small_disk) in lines[-1], done.stderr
    assert "rerun the same command to resume" in lines[-1] and "Traceback" not in done.stderr
    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    rerun = run_cli(argv, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert (small_disk / "digits-random" / "best" / "model.keras").exists()


@pytest.fixture
def ctrl_c_live():
    """SIGINT as a process started from a terminal has it (Python's own handler), whatever started the tests:
    a suite run in the background of a script (`.ci/run &`) inherits SIGINT ignored, which the commands keep."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(("signal_number", "code", "line"), [
    (signal.SIGTERM, 143, "tuning.run: stopped by SIGTERM; stopped"),
    (signal.SIGINT, 130, "tuning.run: interrupted"),
], ids=["SIGTERM", "Ctrl-C"])  # fmt: skip
def test_a_stop_that_lands_in_a_finalizer_prints_one_line_and_no_traceback(capfd, monkeypatch, ctrl_c_live,
                                                                          signal_number, code, line):  # fmt: skip
    # The handler's raise can land in a weakref callback that the garbage collector runs (a WeakKeyDictionary
    # of Keras's): Python would print "Exception ignored in ..." and its traceback above the one line, and
    # drop the stop, so that a Ctrl-C would be lost and the run would go on.
    import gc
    import weakref

    from tuning.cli.base import run_command
    from tuning.errors import raise_if_stopped

    class Node:
        pass

    def body() -> int:
        node = Node()
        finalizer_ran = []
        weakref.finalize(node, lambda: (finalizer_ran.append(True), signal.raise_signal(signal_number), sum(range(9))))
        del node
        gc.collect()
        assert finalizer_ran
        raise_if_stopped()  # the next safe point
        return 0

    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)  # Python's own, which prints (pytest's warns)
    hook = sys.unraisablehook
    assert run_command("tuning.run", body, debug=False) == code
    err = capfd.readouterr().err
    assert err.strip().splitlines() == [line], err
    assert sys.unraisablehook is hook  # the command's own hook is gone with it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # and so are its handlers


def test_a_command_started_with_ctrl_c_ignored_stays_deaf_to_it():
    # `cmd &` in a shell script (no job control) starts the job with SIGINT ignored; the command keeps it so.
    from tuning.cli.base import run_command

    def body() -> int:
        signal.raise_signal(signal.SIGINT)
        return 0

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert run_command("tuning.run", body, debug=False) == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("kind", [Terminated, KeyboardInterrupt], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_whose_raise_was_swallowed_still_stops_at_the_next_safe_point(kind):
    # A signal handler's exception that lands in a __del__ is dropped by Python; the flag it set makes the
    # next trial, epoch or member raise it again, and the command answers it once.
    from tuning.cli.base import run_command
    from tuning.errors import clear_stop, note_stop, raise_if_stopped

    def body() -> int:
        note_stop(kind)  # as the handler does, its own raise lost
        raise_if_stopped()
        return 0

    assert run_command("tuning.run", body, debug=False) == (143 if kind is Terminated else 130)
    raise_if_stopped()  # answered, so forgotten: a later command in this process runs
    with pytest.raises(kind):
        note_stop(kind)
        note_stop(KeyboardInterrupt if kind is Terminated else Terminated)  # the first request wins
        raise_if_stopped()
    clear_stop()
