"""The command line: argv to config, and bad input to one line and exit code 2."""

from __future__ import annotations

import pytest

from tuning.cli import run
from tuning.errors import UsageError


def test_argv_becomes_a_typed_config():
    config, debug = run.parse_config(
        ["cifar10", "--trials", "7", "--tuner", "random", "--max-epochs", "4", "--patience", "2",
         "--batch-size", "64", "--data-dir", "/d", "--seed", "5", "--name", "x", "--overwrite",
         "--final-epochs", "9", "--max-failures", "2", "--debug"]
    )  # fmt: skip
    assert debug is True
    assert (config.dataset, config.trials, config.tuner, config.max_epochs) == ("cifar10", 7, "random", 4)
    assert (config.patience, config.batch_size, config.data_dir, config.seed) == (2, 64, "/d", 5)
    assert (config.run_name, config.overwrite, config.final_epochs, config.max_failures) == ("x", True, 9, 2)
    assert config.command[:3] == ("python", "-m", "tuning.run")


def test_defaults():
    config, debug = run.parse_config(["mnist"])
    assert debug is False
    assert (config.trial_cap, config.tuner, config.space_name, config.batch_size, config.seed) == (
        1_000, "hyperband", "dense", None, None
    )
    # The main job ends within the hour by default, filling it with up to 8 retraining members.
    assert config.time_budget == 55.0 and config.default_time_budget and config.seeds_to_retrain == 8


@pytest.mark.parametrize("value, minutes", [("20", 20.0), ("none", None), ("None", None), ("off", None)])
def test_the_default_time_budget_can_be_changed_or_lifted(value, minutes):
    config, _ = run.parse_config(["mnist", "--time-budget", value])
    assert config.time_budget == minutes and not config.default_time_budget
    assert config.seeds_to_retrain == (3 if minutes is None else 8)


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required: DATASET"),
        (["mnist", "--trials", "abc"], "argument --trials: invalid int value: 'abc'"),
        (["mnist", "--trials", "0"], "--trials must be at least 1, but got trials=0"),
        (["mnist", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_parse_errors_are_usage_errors(argv, message):
    with pytest.raises(UsageError, match=message):
        run.parse_config(argv)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["imagenet"], "DATASET must be a built-in dataset (cifar10, digits, mnist), a .npz file, a .csv file or a folder"),
        (["digits", "--tuner", "grid"], "unknown tuner 'grid'; choose one of: bayesian, cmaes, gp, hyperband, random, tpe"),
        (["digits", "--space", "conv"], "unknown search space 'conv'; choose one of: "),
        (["digits", "--max-epochs", "0"], "--max-epochs must be at least 1, but got max_epochs=0"),
        (["digits", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
        (["mnist", "--data-dir", "/no/such/dir"], "data directory '/no/such/dir' does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("tuning.run: error: ") and message in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "checkpoints").exists()


def test_unwritable_checkpoint_root_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert run.main(["digits", "--checkpoint-root", str(blocker / "sub")]) == 2
    assert "cannot write the checkpoint directory" in capsys.readouterr().err


def test_bad_options_are_refused_before_tensorflow_loads():
    """Parsing and checking the options needs neither TensorFlow nor Keras: bad input is refused in well under a second."""
    import subprocess
    import sys

    probe = ("import sys; from tuning import run; code = run.main(['digits', '--trials', '0']); "
             "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["2", "False", "False"], done.stdout + done.stderr
    assert done.stderr.strip() == "tuning.run: error: --trials must be at least 1, but got trials=0"
