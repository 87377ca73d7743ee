"""The Optuna study on real storage: a PostgreSQL server started for the test, and a journal file.

The server is Debian's `postgresql` (`.ci/run` installs it): `initdb` into a
temporary folder, `pg_ctl start` on 127.0.0.1 and a free port, one database
per test, and the folder deleted at the end. Where PostgreSQL or its Python
driver is missing, the PostgreSQL tests skip and say why.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.distributed.test_distributed import (
    COMMON,
    TRIALS,
    _assert_complete_search_exported_once,
    _oracle_state,
    _trial_statuses,
)  # fmt: skip


def _pg_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))  # Debian keeps them off PATH
    return candidates[-1] if candidates else None


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL server on 127.0.0.1."""

    root: Path
    port: int
    as_user: list[str]
    running: bool = False

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, _pg_tool("pg_ctl"), "-D", str(self.root / "data"), *args],
                       check=True, capture_output=True, timeout=120)  # fmt: skip

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root}"
        if not self.running:
            self._ctl("-l", str(self.root / "server.log"), "-w", "-o", options, "start")
            self.running = True

    def stop(self) -> None:
        if self.running:
            self._ctl("-m", "immediate", "-w", "stop")
            self.running = False

    def new_database(self, name: str) -> str:
        subprocess.run([_pg_tool("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="module")
def postgres():
    for tool in ("initdb", "pg_ctl", "createdb"):
        if _pg_tool(tool) is None:
            pytest.skip(f"PostgreSQL's {tool} is not installed (apt-get install postgresql; .ci/run installs it)")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is missing: pip install -e '.[postgres]'")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="tuning-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: the postgres user runs it and owns its folder
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser, so PostgreSQL cannot be started as its own user")
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    from tuning.distributed.addresses import free_port

    server = PostgresServer(root, free_port("127.0.0.1"), as_user)
    try:
        subprocess.run([*as_user, _pg_tool("initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8"], check=True, capture_output=True, timeout=120)  # fmt: skip
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _study_trials(url: str, name: str) -> list:
    import optuna

    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def test_a_chief_and_two_workers_share_one_study_on_postgresql(tmp_path, postgres):
    url = postgres.new_database("chief_and_workers")
    done = run_cli([*COMMON, "--tuner", "tpe", "--storage", url, "--max-epochs", "3"], tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = tmp_path / "checkpoints" / "digits-tpe"
    _assert_complete_search_exported_once(run_dir, done.stdout, {})
    assert not (run_dir / "study.db").exists()  # the study went to PostgreSQL, not to the default SQLite file

    trials = _study_trials(url, "digits-tpe")
    assert sorted(t.user_attrs["keras_tuner_trial_id"] for t in trials) == [str(i) for i in range(TRIALS)]
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    # Pruning reads each epoch's score from the server: the workers wrote them there, one per epoch trained.
    for trial in trials:
        assert sorted(trial.intermediate_values) == list(range(len(trial.intermediate_values)))
        assert len(trial.intermediate_values) == (3 if trial.state.name == "COMPLETE" else trial.user_attrs["pruned_at_epoch"])
    counts = json.loads((run_dir / "best" / "metrics.json").read_text())["search"]["trials_by_status"]
    assert [t.state.name for t in trials].count("PRUNED") == counts.get("PRUNED", 0)

    optuna_cli = Path(sys.executable).with_name("optuna")
    listed = subprocess.run([str(optuna_cli), "trials", "--storage", url, "--study-name", "digits-tpe", "-f", "json"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert sorted(row["number"] for row in json.loads(listed.stdout)) == list(range(TRIALS))


def test_a_lost_server_stops_the_run_with_one_line_and_a_rerun_resumes(tmp_path, postgres):
    url = postgres.new_database("lost_server")
    argv = ["digits", "--tuner", "tpe", "--pruner", "none", "--storage", url, "--trials", "6", "--max-epochs", "3",
            "--final-seeds", "1", "--final-epochs", "1", "--mc-passes", "2", "--seed", "0"]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TUNING_DATA_DIR", None)
    run_dir = tmp_path / "checkpoints" / "digits-tpe"
    process = subprocess.Popen([sys.executable, "-m", "tuning.run", *argv], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while list(_trial_statuses(run_dir).values()).count("COMPLETED") < 2 and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1][-2000:]
            time.sleep(0.05)
        postgres.stop()
        # Finished means the oracle recorded the end; a trial whose end the lost server interrupted is retried.
        finished_before = set(_oracle_state(run_dir).get("end_order", []))
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
        postgres.start()
    assert len(finished_before) >= 1
    assert process.returncode == 1, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith("tuning.run")]
    assert len(lines) == 1 and "lost the Optuna storage postgresql://postgres@127.0.0.1" in lines[0], stderr[-2000:]
    assert "rerun the same command to resume" in lines[0]
    assert "Traceback" not in stderr
    assert not (run_dir / "best").exists()

    resumed = run_cli(argv, tmp_path, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    statuses = _trial_statuses(run_dir)
    assert statuses == {str(i): "COMPLETED" for i in range(6)}
    for trial_id in finished_before:  # kept, not run again
        assert f"trial {trial_id}  [" not in resumed.stdout
    trials = _study_trials(url, "digits-tpe")
    by_id = {t.user_attrs["keras_tuner_trial_id"]: t for t in trials if "keras_tuner_trial_id" in t.user_attrs}
    assert sorted(by_id) == [str(i) for i in range(6)]
    assert all(by_id[str(i)].state.name == "COMPLETE" for i in range(6))
    # A trial asked for just as the server went away never reached Keras Tuner: the resumed run failed it.
    assert all(t.state.name == "FAIL" for t in trials if "keras_tuner_trial_id" not in t.user_attrs)
    assert not [t.number for t in trials if t.state.name == "RUNNING"]


# By default a chief and two workers share a study on PostgreSQL (above); the journal file with -m slow.
@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["tpe"])
def test_a_chief_and_two_workers_share_one_journal_file(tmp_path, tuner):
    journal = tmp_path / "shared" / "study.journal"
    journal.parent.mkdir()
    done = run_cli([*COMMON, "--tuner", tuner, "--storage", f"journal:{journal}"], tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = tmp_path / "checkpoints" / f"digits-{tuner}"
    _assert_complete_search_exported_once(run_dir, done.stdout, {})
    import optuna
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name=f"digits-{tuner}",
                              storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))  # fmt: skip
    assert sorted(t.user_attrs["keras_tuner_trial_id"] for t in study.trials) == [str(i) for i in range(TRIALS)]
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
    assert all(t.intermediate_values for t in study.trials)  # the workers reported their epochs into the file
    counts = json.loads((run_dir / "best" / "metrics.json").read_text())["search"]["trials_by_status"]
    assert [t.state.name for t in study.trials].count("PRUNED") == counts.get("PRUNED", 0)  # workers' pruning reached the chief
