"""A smoke run of the benchmarks on digits: every stage runs and writes what the README shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _bench(*argv: str, cwd=REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TUNING_DATA_DIR", None)
    return subprocess.run([sys.executable, "-m", "bench.run", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_bench_accuracy_smoke(tmp_path):
    results, readme, page = tmp_path / "results", tmp_path / "README.md", tmp_path / "benchmarks.md"
    readme.write_text("# project\n\nText that must survive.\n")
    common = ["--datasets", "digits", "--results", str(results), "--readme", str(readme), "--benchmarks", str(page)]
    done = _bench("accuracy", "--methods", "exercise-mlp,tuning", "--budget-minutes", "0.1", "--first-seed", "1", *common)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(results.glob("*seed0.json"))
    for method in ("exercise-mlp", "tuning"):
        result = json.loads((results / f"accuracy-digits-{method}-seed1.json").read_text())
        assert result["seed"] == 1
        assert 0.3 < result["test_accuracy"] <= 1.0
        assert result["curve"] and result["best_val_accuracy"] == max(v for _, v in result["curve"])
        assert result["wall_seconds"] < 120
        assert 0 < result["speed_gauge_seconds"]["before"] < 60 and 0 < result["speed_gauge_seconds"]["after"] < 60
    text = readme.read_text()
    assert "Text that must survive." in text and text.count("<!-- bench:start -->") == 1
    for method in ("exercise-mlp", "tuning"):  # the headline: one seed, so no spread to show
        assert f"| digits | {method} | 0.1 | 1 | **{json.loads((results / f'accuracy-digits-{method}-seed1.json').read_text())['test_accuracy']:.4f}** | n/a |" in text
    tables = page.read_text()
    assert "| digits | exercise-mlp | 1 |" in tables and "| digits | tuning | 1 |" in tables


@pytest.mark.slow  # the overhead benchmark's smoke run, with -m slow only
def test_bench_overhead_smoke(tmp_path):
    results, readme, page = tmp_path / "results", tmp_path / "README.md", tmp_path / "benchmarks.md"
    readme.write_text("# project\n")
    done = _bench("overhead", "--datasets", "digits", "--results", str(results), "--readme", str(readme),
                  "--benchmarks", str(page))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    overhead = json.loads((results / "overhead.json").read_text())
    assert overhead["trials"] == overhead["repeats"] == 3
    assert 0.2 < overhead["throughput_ratio"] < 5 and 0 <= overhead["outside_fit_fraction"] < 1
    assert "Overhead (digits" in page.read_text()


def test_bench_refuses_bad_arguments_with_one_line(tmp_path):
    done = _bench("accuracy", "--methods", "magic", "--results", str(tmp_path), "--readme", str(tmp_path / "R.md"))
    assert done.returncode == 2
    assert ("methods must be among keras-tuner, exercise-mlp, strong-guess, strong-guess-budget, keras-tuner-hyperband, "
            "optuna-tpe, hand-guess-budget, tuning-defaults-only, tuning") in done.stderr
    done = _bench("accuracy", "--first-seed", "-1", "--results", str(tmp_path), "--readme", str(tmp_path / "R.md"))
    assert done.returncode == 2 and "first_seed=-1" in done.stderr


def test_bench_retraining_equal_time_needs_a_known_variant():
    done = subprocess.run([sys.executable, "-m", "bench.retraining", "equal-time", "--dataset", "digits", "--changes", "units-7"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert "equal-time needs --changes among" in done.stderr and "changes='units-7'" in done.stderr
