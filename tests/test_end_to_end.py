"""Real searches through the command line, as a user runs them, and a fresh-process load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.plugins.hparams import metadata

from tests.conftest import run_cli
from tests.records.test_hparams import experiment_of, read_hparams_plugin_data
from tuning.data.datasets import load_dataset

LOAD_AND_PREDICT = """
import sys, numpy as np, keras, tensorflow as tf
model = keras.models.load_model(sys.argv[1] + "/model.keras", safe_mode=True)
served = tf.saved_model.load(sys.argv[1] + "/saved_model")
x = np.load(sys.argv[2])
np.save(sys.argv[3], model.predict(x, verbose=0))
np.save(sys.argv[4], served.serve(tf.constant(x)).numpy())
print("tuning" in sys.modules)
"""


# CI runs the default tuner end to end; an Optuna tuner's is tests/search/test_optuna_oracle.py's
# TPE search with its export, and every tuner is run by the search contract
# (tests/search/test_tuner_contract.py). The others run here with -m slow.
@pytest.mark.parametrize("tuner", ["hyperband", pytest.param("bayesian", marks=pytest.mark.slow),
                                   pytest.param("random", marks=pytest.mark.slow), pytest.param("tpe", marks=pytest.mark.slow)])
def test_search_export_and_fresh_process_load(tuner, tmp_path):
    result = run_cli(
        ["digits", "--tuner", tuner, "--trials", "3", "--max-epochs", "2", "--final-epochs", "3", "--final-seeds", "3",
         "--seed", "1"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""  # quiet: no TensorFlow start-up logs, no Keras Tuner chatter
    trial_lines = [line for line in result.stdout.splitlines() if line.startswith("trial ")]
    assert len(trial_lines) == 3 and "[3/3]" in trial_lines[-1]
    assert "test accuracy" in result.stdout and f"tensorboard --logdir logs/digits-{tuner}" in result.stdout

    best = tmp_path / "checkpoints" / f"digits-{tuner}" / "best"
    for name in ("model.keras", "saved_model/saved_model.pb", "hyperparameters.json", "metrics.json", "README.md"):
        assert (best / name).exists(), name
    metrics = json.loads((best / "metrics.json").read_text())
    assert metrics["search"]["trials_by_status"] == {"COMPLETED": 3}
    assert metrics["seed"] == 1 and metrics["dataset"]["sizes"] == {"train": 1137, "val": 300, "test": 360}
    assert 0.0 < metrics["final"]["test_accuracy"] <= 1.0 and metrics["final"]["parameters"] > 0
    assert {"tensorflow", "keras", "keras-tuner"} <= set(metrics["versions"])
    hyperparameters = json.loads((best / "hyperparameters.json").read_text())
    assert "learning_rate" in hyperparameters and not any(k.startswith("tuner/") for k in hyperparameters)
    card = (best / "README.md").read_text()
    assert "keras.models.load_model" in card and f"{metrics['final']['test_accuracy']:.4f}" in card

    # A fresh process that never imports tuning loads the export in safe mode.
    test = load_dataset("digits").test
    np.save(tmp_path / "x.npy", test.x)
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(best), str(tmp_path / "x.npy"),
         str(tmp_path / "keras.npy"), str(tmp_path / "served.npy")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip().splitlines()[-1] == "False"
    from_keras, from_saved = np.load(tmp_path / "keras.npy"), np.load(tmp_path / "served.npy")
    np.testing.assert_allclose(from_keras, from_saved, atol=1e-5)
    accuracy = float(np.mean(from_keras.argmax(axis=1) == test.y))
    assert accuracy == pytest.approx(metrics["final"]["test_accuracy"], abs=1e-6)

    # The HParams dashboard: the experiment summary, one session per trial, and the retraining.
    logs = tmp_path / "logs" / f"digits-{tuner}"
    experiment = experiment_of(logs)
    shown = {h.display_name for h in experiment.hparam_infos}
    assert {"outcome", "learning_rate", "optimizer", "num_layers", "units_0", "units_19", "momentum"} <= shown
    sessions = {
        path.parent.relative_to(logs).as_posix()
        for path in logs.rglob("events.out.tfevents.*")
        if any(tag == metadata.SESSION_START_INFO_TAG for tag, _ in read_hparams_plugin_data(path.parent))
    }
    trial_ids = sorted(p.name.removeprefix("trial_") for p in best.parent.glob("trial_*") if p.is_dir())
    assert sessions == {f"trials/{t}/execution0" for t in trial_ids} | {f"retrain/seed-{s}" for s in (1, 2, 3)} | {"export"}


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("tuning-run")
    assert script.exists(), "pip install -e . should install the tuning-run console script"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--trials" in result.stdout
