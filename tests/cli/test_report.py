"""The model card's figures and `tuning.report`, on runs finished and in progress."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.conftest import run_in_process
from tests.search.test_optuna_oracle import Interrupt
from tests.test_service import tiny_config
from tuning.cli import report
from tuning.data import datasets
from tuning.training import callbacks

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_two_retrain_seeds_export_their_average_with_card_and_pictures(tmp_path):
    result = run_in_process(tiny_config(tmp_path, tuner="random", trials=2, final_seeds=2, final_epochs=3),
                         say=lambda _: None)  # fmt: skip
    final = result.metrics["final"]
    seeds = final["seeds"]
    assert [s["seed"] for s in seeds] == [3, 4] and final["members"] == [3, 4]
    assert seeds[0]["val_accuracy"] != seeds[1]["val_accuracy"] or seeds[0]["test_accuracy"] != seeds[1]["test_accuracy"]
    best = max(seeds, key=lambda s: s["val_accuracy"])
    assert final["curves_seed"] == best["seed"]
    exported = keras.models.load_model(result.export_dir / "model.keras", safe_mode=True)
    assert [layer.name for layer in exported.layers if isinstance(layer, keras.Model)] == ["member_0", "member_1"]
    val = datasets.load_dataset("digits", None).val
    accuracy = float(np.mean(exported.predict(val.x, verbose=0).argmax(axis=1) == val.y))
    assert final["val_accuracy"] == pytest.approx(accuracy)  # the figures are the exported ensemble's
    low, high = final["test_accuracy_ci95"]
    assert low < final["test_accuracy"] < high
    assert final["search_validation_gap"] == pytest.approx(
        result.metrics["search"]["best_trial_val_accuracy"] - final["val_accuracy_spread"]["mean"]
    )
    assert {"processor", "cpu_count", "gpus"} <= set(result.metrics["machine"])
    assert result.metrics["command"]
    for picture in ("confusion_matrix.png", "learning_curves.png", "search_progress.png"):
        assert (result.export_dir / picture).read_bytes()[:8] == PNG_MAGIC
    card = (result.export_dir / "README.md").read_text()
    for section in ("## How good it is", "95% Wilson interval", "### Retrain variance", "### Pictures",
                    "(confusion_matrix.png)", "## What it is", "parameters", "## How it was found",
                    "Rerun the search with", "Versions:", "Machine:", "## How to load it", "saved_model",
                    "## Known limits", "The average of the class probabilities of 2 networks (`member_0` to `member_1`)"):  # fmt: skip
        assert section in card, section


def test_report_on_a_finished_run(tmp_path, capsys):
    run_in_process(tiny_config(tmp_path, tuner="random", trials=2, final_seeds=1), say=lambda _: None)
    assert report.main(["digits-random", "--checkpoint-root", str(tmp_path / "checkpoints")]) == 0
    out = capsys.readouterr().out
    assert "finished; 2 trial(s): 2 completed" in out and "95% CI" in out
    assert out.count("COMPLETED") == 2


def test_report_on_a_run_in_progress(tmp_path, monkeypatch, capsys):
    original = callbacks.search_callbacks
    Interrupt.calls = 0
    monkeypatch.setattr(callbacks, "search_callbacks", lambda *args: [*original(*args), Interrupt()])
    with pytest.raises(KeyboardInterrupt):
        run_in_process(tiny_config(tmp_path, tuner="random", trials=4, max_epochs=2, patience=5), say=lambda _: None)
    assert report.main(["digits-random", "--checkpoint-root", str(tmp_path / "checkpoints")]) == 0
    out = capsys.readouterr().out
    assert "in progress (no export yet)" in out
    assert "1 completed, 1 running" in out


def test_report_unknown_run(tmp_path, capsys):
    assert report.main(["nope", "--checkpoint-root", str(tmp_path)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
