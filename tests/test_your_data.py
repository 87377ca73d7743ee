"""A user's own data and hypermodel end to end: each format through `tuning.run` and `tuning.tune`, workers, a kill
and a resume, and an export that a fresh process loads with plain Keras and feeds raw rows and raw pixels."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tuning
from tests.conftest import run_cli
from tests.data.userdata import digit_images, digits_npz, space_file, wine_csv
from tuning.errors import UsageError

QUICK = ["--trials", "2", "--max-epochs", "1", "--final-seeds", "1", "--final-epochs", "2", "--time-budget", "none",
         "--seed", "0"]  # fmt: skip
OPTIONS = dict(trials=2, max_epochs=1, final_seeds=1, final_epochs=2, time_budget=None, seed=0)

# Run in a fresh process without `tuning`: load the export with plain Keras and predict the user's raw input.
RAW_PREDICTIONS = r'''
import csv, json, sys
import numpy as np
import keras
from pathlib import Path
from PIL import Image

kind, export, data = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
model = keras.models.load_model(export / "model.keras", safe_mode=True)
names = json.loads((export / "metrics.json").read_text())["dataset"]["class_names"]
if kind == "csv":
    rows = list(csv.DictReader(open(data)))
    columns = {k: np.array([float(r[k]) for r in rows]) for k in ("alcohol", "malic_acid", "ash", "hue")}
    columns["cellar"] = np.array([r["cellar"] for r in rows], dtype=object)
    truth = [r["cultivar"] for r in rows]
    predicted = model.predict(columns, verbose=0).argmax(axis=1)
elif kind == "folder":
    files = sorted(data.rglob("*.png"))
    pixels = np.stack([np.asarray(Image.open(f))[..., None] for f in files])
    truth = [f.parent.name for f in files]
    predicted = model.predict(pixels, verbose=0).argmax(axis=1)
else:
    arrays = np.load(data)
    truth = [str(v) for v in arrays["y_test"]]
    predicted = model.predict(arrays["x_test"], verbose=0).argmax(axis=1)
print(json.dumps({"accuracy": float(np.mean([names[p] == t for p, t in zip(predicted, truth)])),
                  "tuning_loaded": "tuning" in sys.modules}))
'''


def raw_accuracy(kind: str, export: Path, data: Path, cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", RAW_PREDICTIONS, kind, str(export), str(data)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_npz_of_feature_vectors_runs_from_the_command_line_and_its_export_takes_the_raw_rows(tmp_path):
    path = digits_npz(tmp_path)
    done = run_cli([str(path), *QUICK], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "64 features an example, so feature vectors" in done.stdout
    export = tmp_path / "checkpoints" / "digits_rows-hyperband" / "best"
    metrics = json.loads((export / "metrics.json").read_text())
    seen = raw_accuracy("npz", export, path, tmp_path)
    assert not seen["tuning_loaded"] and seen["accuracy"] == pytest.approx(metrics["final"]["test_accuracy"], abs=1e-9)
    assert "raw feature vectors of 64 numbers" in (export / "README.md").read_text()


def test_a_csv_export_predicts_raw_rows_text_included_in_a_fresh_process(tmp_path):
    path = wine_csv(tmp_path)
    done = run_cli([str(path), "--label", "cultivar", *QUICK], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    export = tmp_path / "checkpoints" / "wine-hyperband" / "best"
    metrics = json.loads((export / "metrics.json").read_text())
    assert metrics["dataset"]["kind"] == "table" and metrics["dataset"]["class_names"] == ["class_0", "class_1", "class_2"]
    seen = raw_accuracy("csv", export, path, tmp_path)  # every row: training, validation and test together
    assert not seen["tuning_loaded"] and seen["accuracy"] > 0.5
    card = (export / "README.md").read_text()
    assert "dtype=object" in card and "20% of the rows held out" in card


def test_an_image_folder_through_tune_exports_a_model_of_raw_pixels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = digit_images(tmp_path, layout="split")
    result = tuning.tune(str(root), say=lambda line: None, **OPTIONS)
    assert result.run_name == "digit_images-hyperband" and 0.0 <= result.test_accuracy <= 1.0
    low, high = result.test_accuracy_ci95
    assert low <= result.test_accuracy <= high
    seen = raw_accuracy("folder", result.export_dir, root / "test", tmp_path)
    assert seen["accuracy"] == pytest.approx(result.test_accuracy, abs=1e-9)


def test_an_image_folder_runs_from_the_command_line_and_its_export_takes_raw_pixels(tmp_path):
    root = digit_images(tmp_path, per_class=20, layout="split")
    done = run_cli([str(root), *QUICK, "--trials", "1"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    export = tmp_path / "checkpoints" / "digit_images-hyperband" / "best"
    metrics = json.loads((export / "metrics.json").read_text())
    assert metrics["dataset"]["kind"] == "images"
    seen = raw_accuracy("folder", export, root / "test", tmp_path)
    assert not seen["tuning_loaded"] and seen["accuracy"] == pytest.approx(metrics["final"]["test_accuracy"], abs=1e-9)


def test_tune_takes_arrays_a_dataframe_and_a_build_model_function(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNING_DATA_CACHE", str(tmp_path / "cache"))
    x, y = np.random.default_rng(0).normal(size=(120, 5)), np.arange(120) % 3
    x[:, 0] += 3 * y  # learnable

    def build_model(hp):
        import keras

        model = keras.Sequential([keras.layers.Dense(hp.Int("units", 8, 16, step=8), activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])  # fmt: skip
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    result = tuning.tune((x[:90], y[:90]), test=(x[90:], y[90:]), build_model=build_model, say=lambda line: None,
                         class_names=["a", "b", "c"], **OPTIONS)  # fmt: skip
    assert result.record.dataset.class_names == ["a", "b", "c"] and result.record.search.space.startswith("in-process:")
    assert list((tmp_path / "cache").glob("arrays-*.npz")) and not list((tmp_path / "checkpoints").glob(".data"))


# A text column runs by default through the command line (the CSV tests above) and a DataFrame through
# tune() in the test before; the two together with -m slow.
@pytest.mark.slow
def test_tune_takes_a_dataframe_with_a_text_column(tmp_path, monkeypatch):
    pandas = pytest.importorskip("pandas", reason="pandas is in the test extra; a DataFrame needs it")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNING_DATA_CACHE", str(tmp_path / "cache"))
    x, y = np.random.default_rng(0).normal(size=(120, 2)), np.arange(120) % 3
    x[:, 0] += 3 * y
    frame = pandas.DataFrame({"size": x[:, 0], "shade": np.where(x[:, 1] > 0, "dark", "light"), "kind": y.astype(str)})
    table = tuning.tune(frame, label="kind", say=lambda line: None, name="frame", **OPTIONS)
    assert table.record.dataset.kind == "table" and table.test_accuracy > 0.4


def test_tune_refuses_an_unknown_option_and_arrays_without_a_test_split(tmp_path):
    with pytest.raises(UsageError, match="tune\\(\\) takes no option 'epochs'; its options are tuning.run's"):
        tuning.tune("digits", epochs=3)
    with pytest.raises(UsageError, match="give test=\\(x_test, y_test\\)"):
        tuning.tune((np.ones((4, 2)), np.arange(4) % 2))


def test_a_user_space_file_reaches_two_workers(tmp_path):
    path, space = digits_npz(tmp_path), space_file(tmp_path)
    done = run_cli([str(path), "--space", str(space), "--workers", "2", "--tuner", "random", "--trials", "4",
                    "--max-epochs", "1", "--final-seeds", "1", "--final-epochs", "1", "--time-budget", "none",
                    "--seed", "0"], cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    trials = list((tmp_path / "checkpoints" / "digits_rows-random").glob("trial_*/trial.json"))
    assert len(trials) == 4 and all(json.loads(t.read_text())["status"] == "COMPLETED" for t in trials)
    assert {"units", "learning_rate"} <= set(json.loads(trials[0].read_text())["hyperparameters"]["values"])


def test_a_csv_run_killed_during_its_search_resumes_and_a_changed_file_is_refused(tmp_path):
    path = wine_csv(tmp_path)

    def command(trials: int) -> list[str]:
        return [sys.executable, "-m", "tuning.run", str(path), "--label", "cultivar", "--tuner", "random", "--trials",
                str(trials), "--max-epochs", "3", "--final-seeds", "1", "--final-epochs", "1", "--time-budget", "none",
                "--seed", "0"]  # fmt: skip

    process = subprocess.Popen(command(30), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = tmp_path / "checkpoints" / "wine-random"
    deadline = time.monotonic() + 240
    while len(list(run_dir.glob("trial_*/trial.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {t.parent.name for t in run_dir.glob("trial_*/trial.json") if json.loads(t.read_text())["status"] == "COMPLETED"}
    assert finished, "no trial finished before the kill"
    done = subprocess.run(command(len(finished) + 2), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "already finished" in done.stdout and (run_dir / "best" / "model.keras").exists()
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    path.write_text(path.read_text().replace("north", "west"))
    refused = subprocess.run(command(len(finished) + 2), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "data_fingerprint was" in refused.stderr and "--overwrite" in refused.stderr
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before


def test_a_branching_model_is_exported_as_it_is_and_mc_dropout_says_it_skipped(tmp_path, monkeypatch):
    import keras

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNING_DATA_CACHE", str(tmp_path / "cache"))
    x, y = np.random.default_rng(1).normal(size=(90, 4)), np.arange(90) % 2
    x[:, 1] += 2 * y

    def build_model(hp):  # two branches joined: not a chain of layers
        inputs = keras.Input((4,))
        left = keras.layers.Dense(hp.Int("units", 4, 8, step=4), activation="relu")(inputs)
        right = keras.layers.Dropout(0.2)(keras.layers.Dense(4, activation="tanh")(inputs))
        outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Concatenate()([left, right]))
        model = keras.Model(inputs, outputs)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    lines: list[str] = []
    result = tuning.tune((x[:70], y[:70]), test=(x[70:], y[70:]), build_model=build_model, say=lines.append, **OPTIONS)
    assert any("MC dropout: skipped, since the model is not a chain of layers" in line for line in lines)
    assert result.record.final.mc_dropout is None
    loaded = keras.models.load_model(result.export_dir / "model.keras")
    predicted = loaded.predict(x[70:], verbose=0).argmax(axis=1)
    assert float(np.mean(predicted == y[70:])) == pytest.approx(result.test_accuracy, abs=1e-9)
    assert any(isinstance(layer, keras.layers.Concatenate) for layer in loaded.layers)
