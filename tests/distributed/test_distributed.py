"""A chief and worker processes on localhost: each trial once, one export, a killed worker, a silent chief."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tuning.config.run_config import RunConfig

TRIALS = 4
COMMON = ["digits", "--trials", str(TRIALS), "--max-epochs", "2", "--final-seeds", "1", "--final-epochs", "3",
          "--mc-passes", "2", "--seed", "0", "--workers", "2"]  # fmt: skip


def _oracle_state(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "oracle.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _trial_statuses(run_dir: Path) -> dict[str, str]:
    return {
        json.loads(path.read_text())["trial_id"]: json.loads(path.read_text())["status"]
        for path in run_dir.glob("trial_*/trial.json")
    }


def _times_by_worker(run_dir: Path) -> dict[str, set[str]]:
    return {path.stem.split("-", 1)[1]: set(json.loads(path.read_text())) for path in run_dir.glob("search_times-*.json")}


def _assert_complete_search_exported_once(run_dir: Path, output: str, expected_run_times: dict[str, int]) -> None:
    state = _oracle_state(run_dir)
    assert _trial_statuses(run_dir) == {str(i): "COMPLETED" for i in range(TRIALS)}
    assert sorted(state["end_order"]) == [str(i) for i in range(TRIALS)]  # each trial ended once
    assert state["run_times"] == {str(i): expected_run_times.get(str(i), 1) for i in range(TRIALS)}
    assert state["ongoing_trials"] == {}  # a resume would retry nothing
    by_worker = _times_by_worker(run_dir)
    assert set().union(*by_worker.values()) == {str(i) for i in range(TRIALS)}
    assert set(by_worker) <= {"w0", "w1"}
    # The chief alone retrains and exports, once.
    assert output.count("retrain seed 0:") == 1
    assert output.count("export: ") == 1
    assert (run_dir / "best" / "model.keras").is_file()
    metrics = json.loads((run_dir / "best" / "metrics.json").read_text())
    counts = metrics["search"]["trials_by_status"]
    assert set(counts) <= {"COMPLETED", "PRUNED"} and sum(counts.values()) == TRIALS  # Optuna may prune, across processes
    assert sum(line.startswith("trial ") for line in output.splitlines()) == TRIALS  # one progress line per trial


# With -m slow only: the same checks run by default on a chief and 2 workers with Keras Tuner's
# oracle below (a worker killed mid-trial), and with Optuna's in tests/search/test_storage.py
# (PostgreSQL; the journal file with -m slow).
@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["random", "tpe"])
def test_a_chief_and_two_workers_run_each_trial_once_and_export_once(tmp_path, tuner):
    done = run_cli([*COMMON, "--tuner", tuner], tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = tmp_path / "checkpoints" / f"digits-{tuner}"
    _assert_complete_search_exported_once(run_dir, done.stdout, {})
    assert "starting 2 worker process(es)" in done.stdout
    if tuner == "tpe":
        import optuna

        study = optuna.load_study(study_name=f"digits-{tuner}", storage=f"sqlite:///{run_dir / 'study.db'}")
        states = [t.state.name for t in study.trials]
        assert len(states) == TRIALS and set(states) <= {"COMPLETE", "PRUNED"}
        counts = json.loads((run_dir / "best" / "metrics.json").read_text())["search"]["trials_by_status"]
        assert states.count("PRUNED") == counts.get("PRUNED", 0)  # a worker's pruning reached the chief's count


def _worker_pid(worker_id: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "tuning.worker" in cmdline and f'"worker_id": "{worker_id}"' in cmdline:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker's process through /proc")
@pytest.mark.parametrize("tuner", ["random", pytest.param("tpe", marks=pytest.mark.slow)])
def test_a_worker_killed_mid_trial_is_restarted_and_its_trial_retried(tmp_path, tuner):
    env = dict(os.environ)
    env.pop("TUNING_DATA_DIR", None)
    parent = subprocess.Popen(
        [sys.executable, "-m", "tuning.run", *COMMON, "--tuner", tuner, "--max-epochs", "4"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    run_dir = tmp_path / "checkpoints" / f"digits-{tuner}"
    killed_trial = None
    try:
        deadline = time.monotonic() + 180
        while killed_trial is None and time.monotonic() < deadline and parent.poll() is None:
            ongoing = _oracle_state(run_dir).get("ongoing_trials", {})
            pid = _worker_pid("w0") if "w0" in ongoing else None
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed_trial = ongoing["w0"]
            time.sleep(0.05)
        stdout, stderr = parent.communicate(timeout=300)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert killed_trial is not None, "worker w0 never started a trial"
    assert parent.returncode == 0, stderr[-2000:]
    assert "starting 2 worker process(es)" in stdout
    assert "worker w0 died (SIGKILL); restarting it (1/3) to retry its trial" in stdout
    # The killed run never ended, so the retry is the trial's one and only ending, on the restarted w0.
    _assert_complete_search_exported_once(run_dir, stdout, {})
    assert killed_trial in _times_by_worker(run_dir)["w0"]


# The recycling decision is tested by default (tests/search/test_trial_listeners.py); the process
# replaced for real, with -m slow (90 s on 2 cores).
@pytest.mark.slow
def test_a_recycled_worker_is_replaced_and_no_trial_is_lost_or_repeated(tmp_path):
    argv = [*COMMON, "--tuner", "random", "--recycle-after", "3"]
    argv[argv.index("--workers") + 1] = "1"
    done = run_cli(argv, tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # 3 trials, then a fresh process runs the 4th: two processes, one recycling.
    assert done.stdout.count("worker w0 recycled after 3 trial(s)") == 1
    _assert_complete_search_exported_once(tmp_path / "checkpoints" / "digits-random", done.stdout, {})


def test_a_worker_without_a_chief_gives_up_after_the_timeout(tmp_path):
    started = time.monotonic()
    done = run_cli(["digits", "--role", "worker", "--oracle", "127.0.0.1:9", "--chief-timeout", "2"], tmp_path, timeout=120)
    assert done.returncode == 1
    assert "no chief created" in done.stderr and "within 2s" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 60


def test_a_worker_whose_chief_is_gone_gives_up_after_the_timeout(tmp_path):
    config = RunConfig(dataset="digits", checkpoint_root=str(tmp_path / "checkpoints"))
    config.run_dir.mkdir(parents=True)
    (config.run_dir / "run.json").write_text(json.dumps({"identity": config.identity(), "seed": 0, "learning_rate_bounds": None}))
    done = run_cli(["digits", "--role", "worker", "--oracle", "127.0.0.1:9", "--chief-timeout", "3",
                    "--checkpoint-root", str(tmp_path / "checkpoints")], tmp_path, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "the chief at 127.0.0.1:9 did not answer within 3s" in done.stderr
    assert "Traceback" not in done.stderr


def test_workers_split_the_cores_fairly():
    from tuning.distributed.cores import worker_threads

    cores = len(os.sched_getaffinity(0))
    assert worker_threads(1) == cores
    assert worker_threads(cores) == 1
    assert worker_threads(cores * 4) == 1

