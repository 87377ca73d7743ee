"""Failed trials, the failure limit, Ctrl-C and SIGKILL at awkward moments, with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import keras_tuner as kt
import pytest
import tensorflow as tf

import search_spaces
from search_spaces.base import SearchSpace
from tests.conftest import run_in_process
from tests.test_service import tiny_config
from tuning.cli import run
from tuning.errors import RunError
from tuning.search import tuners
from tuning.training.pipeline import DatasetFeeder


class FlakySpace(SearchSpace):
    """Each trial either trains, raises while building, runs out of memory, or diverges to NaN."""

    def build_network(self, hp):
        mode = hp.Choice("mode", ["ok", "raise", "oom", "nan"])
        if mode == "raise":
            raise ValueError("this configuration cannot be built")
        if mode == "oom":
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        init = keras.initializers.Constant(1e30 if mode == "nan" else 0.01)
        inputs = keras.Input(self.context.input_shape)
        x = keras.layers.Dense(16, activation="relu", kernel_initializer=init)(keras.layers.Flatten()(inputs))
        outputs = keras.layers.Dense(self.context.n_classes, activation="softmax", kernel_initializer=init)(x)
        return keras.Model(inputs, outputs)


class AlwaysFails(SearchSpace):
    """Builds its default configuration (Keras Tuner builds it once to learn the space) and nothing else."""

    def build_network(self, hp):
        if hp.Float("x", 0.0, 1.0, default=0.0) > 0:
            raise ValueError("no model today")
        inputs = keras.Input(self.context.input_shape)
        outputs = keras.layers.Dense(self.context.n_classes, activation="softmax")(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, outputs)


class NeverBuilds(SearchSpace):
    def build_network(self, hp):
        raise ValueError("broken space")


def test_failed_trials_are_recorded_with_their_reason_and_the_search_goes_on(toy_dataset, tmp_path):
    from search_spaces.base import SpaceContext

    space = FlakySpace(SpaceContext.for_dataset(toy_dataset, batch_size=16))
    tuner = tuners.RandomTuner(
        hypermodel=space, objective=kt.Objective("val_accuracy", "max"), max_trials=14, seed=0,
        max_consecutive_failed_trials=50, directory=str(tmp_path), project_name="p",
        feeder=DatasetFeeder(toy_dataset), trial_seed=0, log_dir=tmp_path / "logs",
    )  # fmt: skip
    tuner.search(epochs=2, verbose=0)
    by_mode: dict[str, list] = {}
    for trial in tuner.oracle.trials.values():
        by_mode.setdefault(trial.hyperparameters.get("mode"), []).append(trial)
    assert set(by_mode) == {"ok", "raise", "oom", "nan"}, "the seed should draw every mode"
    assert len(tuner.oracle.trials) == 14
    assert all(t.status == "COMPLETED" for t in by_mode["ok"])
    reasons = {"raise": "cannot be built", "oom": "OOM when allocating", "nan": "training diverged"}
    for mode, reason in reasons.items():
        for trial in by_mode[mode]:
            assert trial.status == "FAILED" and reason in trial.message, (mode, trial.message)
            saved = json.loads((tmp_path / "p" / f"trial_{trial.trial_id}" / "trial.json").read_text())
            assert saved["status"] == "FAILED" and reason in saved["message"]


def test_too_many_failures_in_a_row_stop_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(search_spaces.SPACES._entries, "always_fails", AlwaysFails)
    with pytest.raises(RunError, match=r"stopped after 2 failed trials in a row \(last: ValueError: no model today\)"):
        run_in_process(tiny_config(tmp_path, space="always_fails", max_failures=2, trials=5, tuner="random"),
                    say=lambda _: None)  # fmt: skip
    code = run.main(["digits", "--space", "always_fails", "--max-failures", "2", "--tuner", "random",
                     "--checkpoint-root", str(tmp_path / "c2"), "--log-root", str(tmp_path / "l2")])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "raise --max-failures" in err[0]


def test_a_space_that_cannot_build_at_all_is_a_run_error(tmp_path, monkeypatch):
    monkeypatch.setitem(search_spaces.SPACES._entries, "never_builds", NeverBuilds)
    with pytest.raises(RunError, match=r"search space 'never_builds' cannot build its default configuration: "
                                       r"ValueError: broken space"):  # fmt: skip
        run_in_process(tiny_config(tmp_path, space="never_builds"), say=lambda _: None)


ARGS = ["digits", "--tuner", "random", "--trials", "4", "--max-epochs", "3", "--final-epochs", "2",
        "--final-seeds", "1", "--seed", "5", "--patience", "5"]  # fmt: skip


def _sigint_as_in_a_terminal() -> None:
    # A suite started in the background (`cmd &` without job control) inherits SIGINT as
    # ignored, and Python then installs no KeyboardInterrupt handler; a user's terminal does not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def args_for(tuner: str) -> list[str]:
    """`ARGS` with another tuner; an Optuna one without pruning, so every trial completes."""
    return [a if a != "random" else tuner for a in ARGS] + (["--pruner", "none"] if tuner != "random" else [])


def start(cwd: Path, tuner: str = "random") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "TUNING_DATA_DIR"}
    return subprocess.Popen([sys.executable, "-m", "tuning.run", *args_for(tuner)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_as_in_a_terminal)  # fmt: skip


def wait_for_line(process: subprocess.Popen, prefix: str, timeout: float = 180) -> list[str]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"never saw {prefix!r}; got {seen}")


def study_states(path: Path) -> list[str]:
    """The states of an Optuna study's trials, read from its SQLite file."""
    import optuna

    return [t.state.name for t in optuna.load_study(study_name=None, storage=f"sqlite:///{path}").trials]


def finished_trials(run_dir: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in run_dir.glob("trial_*/trial.json")
            if json.loads(p.read_text())["status"] == "COMPLETED"}  # fmt: skip


def assert_valid_export(run_dir: Path) -> None:
    best = run_dir / "best"
    metrics = json.loads((best / "metrics.json").read_text())
    assert metrics["search"]["trials_by_status"] == {"COMPLETED": 4}
    assert (best / "model.keras").exists() and (best / "saved_model" / "saved_model.pb").exists()
    assert not list(run_dir.glob("best.tmp-*")), "a half-written export was left behind"


# An Optuna study killed mid-trial resumes in tests/search/test_optuna_oracle.py by default; here with -m slow.
@pytest.mark.parametrize("moment, tuner", [pytest.param("trial 1  [2/", "tpe", marks=pytest.mark.slow), ("best trial", "random")])
def test_sigkill_then_rerun_finishes_without_repeating_finished_trials(moment, tuner, tmp_path):
    process = start(tmp_path, tuner)
    wait_for_line(process, moment)
    if moment == "trial 1  [2/":
        time.sleep(0.3)  # into the third trial
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    run_dir = tmp_path / "checkpoints" / f"digits-{tuner}"
    before = finished_trials(run_dir)
    assert len(before) >= 2
    study = run_dir / "study.db"
    if tuner != "random":  # the killed trial's Optuna twin is left RUNNING by the killed process
        assert "RUNNING" in study_states(study), study_states(study)

    rerun = subprocess.run([sys.executable, "-m", "tuning.run", *args_for(tuner)], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    if tuner != "random":  # once the run resumed and ended, no trial of the study is left RUNNING
        assert "RUNNING" not in study_states(study) and study_states(study).count("COMPLETE") == 4, study_states(study)
    trial_lines = [l for l in rerun.stdout.splitlines() if l.startswith("trial ")]
    assert len(trial_lines) == 4 - len(before)  # finished trials are not run again
    after = finished_trials(run_dir)
    assert len(after) == 4
    for name, text in before.items():
        assert json.loads(after[name])["score"] == json.loads(text)["score"]
    assert_valid_export(run_dir)


def test_ctrl_c_saves_state_prints_how_to_resume_and_exits_130_and_a_leftover_export_does_not_count(tmp_path):
    process = start(tmp_path)
    wait_for_line(process, "trial 0  [1/")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "rerun the same command to resume" in err and "Traceback" not in err
    run_dir = tmp_path / "checkpoints" / "digits-random"
    interrupted = json.loads((run_dir / "run.json").read_text())["search_seconds"]
    assert interrupted > 0  # the interrupted process's search time is kept for the total
    (run_dir / "best.tmp-99999").mkdir()  # a half-written export left by a process that died must not count
    (run_dir / "best.tmp-99999" / "model.keras").write_bytes(b"half")
    rerun = subprocess.run([sys.executable, "-m", "tuning.run", *ARGS], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert "already finished" in rerun.stdout
    assert_valid_export(run_dir)
    total = json.loads((run_dir / "best" / "metrics.json").read_text())["search"]["wall_seconds"]
    assert total > interrupted  # both processes' search time, summed


def test_second_run_on_the_same_directory_is_refused_at_once(tmp_path):
    process = start(tmp_path)
    try:
        wait_for_line(process, "searching")
        second = subprocess.run([sys.executable, "-m", "tuning.run", *ARGS], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        assert second.returncode == 2
        assert f"run 'digits-random' is in use by process {process.pid}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        process.kill()
        process.wait()
