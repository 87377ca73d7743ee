"""The bad-input matrix: every row exits 2 with one line naming the problem, and changes nothing."""

from __future__ import annotations

import hashlib
import json
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest

from tests.data.test_datasets import write_cifar_dir, write_mnist_npz
from tests.data.userdata import digit_images, digits_npz, space_file, wine_csv, wine_rows
from tuning.cli import run


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def truncated_npz(d: Path) -> None:
    path = write_mnist_npz(d)
    path.write_bytes(path.read_bytes()[:5000])


def garbage_npz(d: Path) -> None:
    (d / "mnist.npz").write_bytes(b"this is not a zip file at all" * 100)


def hostile_cifar(d: Path) -> None:
    batches = write_cifar_dir(d)
    (batches / "data_batch_1").write_bytes(pickle.dumps({b"data": _RunsCode(), b"labels": []}))


def labels_as_floats(d: Path) -> None:
    write_mnist_npz(d, y_train=np.zeros(5_100, dtype=np.float64))


def images_with(value: float):
    def fill(d: Path) -> None:
        x = np.random.default_rng(0).uniform(0, 255, size=(5_100, 28, 28))
        x[3, 4, 5] = x[7, 0, 0] = x[9, 9, 9] = value
        write_mnist_npz(d, x_train=x)

    return fill


def truncated_cifar_batch(d: Path) -> None:
    batches = write_cifar_dir(d)
    (batches / "data_batch_2").write_bytes((batches / "data_batch_2").read_bytes()[:1000])


def empty_cifar_archive(d: Path) -> None:
    (d / "cifar-10-python.tar.gz").write_bytes(b"")


def constant_label(d: Path) -> None:
    header, rows = wine_rows()
    wine_csv(d, rows=[[*row[:-1], "class_0"] for row in rows])


def nan_column(d: Path) -> None:
    x = np.ones((60, 4))
    x[[1, 5, 9], 2] = np.nan
    np.savez(d / "gaps.npz", x_train=x, y_train=np.arange(60) % 2, x_test=np.ones((4, 4)), y_test=np.arange(4) % 2)


def unseen_test_class(d: Path) -> None:
    np.savez(d / "rows.npz", x_train=np.ones((40, 3)), y_train=np.arange(40) % 2, x_test=np.ones((3, 3)),
             y_test=np.array([0, 1, 5]))  # fmt: skip


def unreadable_image(d: Path) -> None:
    (digit_images(d, per_class=4) / "digit_1" / "broken.png").write_bytes(b"not a png")


def mixed_sizes(d: Path) -> None:
    from PIL import Image

    Image.new("L", (9, 9)).save(digit_images(d, per_class=4) / "digit_1" / "big.png")


DATA = "{data}"
USER_DATA = [  # a user's own data and space: refused before anything is written
    (["{data}/wine.csv"], "a CSV DATASET needs --label COLUMN, the column to predict", wine_csv),
    (["{data}/wine.csv", "--label", "grape"], "--label 'grape' is not a column of wine.csv", wine_csv),
    (["{data}/wine.csv", "--label", "cultivar"], "--label column 'cultivar' of wine.csv holds one value only", constant_label),
    (["{data}/one.npz"], "the training labels hold only one class",
     lambda d: np.savez(d / "one.npz", x_train=np.ones((9, 2)), y_train=np.zeros(9, int), x_test=np.ones((2, 2)),
                        y_test=np.zeros(2, int))),
    (["{data}/rows.npz"], "class '5' is in the test split but never in training", unseen_test_class),
    (["{data}/gaps.npz"], "train column 2 holds NaN or infinite values (3 row(s) in all)", nan_column),
    (["{data}/empty"], "holds no class folders", lambda d: (d / "empty").mkdir()),
    (["{data}/digit_images"], "cannot read image", unreadable_image),
    (["{data}/digit_images"], "images differ in size", mixed_sizes),
    (["{data}/digits_rows.npz", "--space", "{data}/my_space.py"], "fails to import: RuntimeError: no GPU here",
     lambda d: (digits_npz(d), space_file(d, body="raise RuntimeError('no GPU here')\n"))),
    (["{data}/digits_rows.npz", "--space", "{data}/my_space.py"], "build_model returns an uncompiled model",
     lambda d: (digits_npz(d), space_file(d, body="import keras\ndef build_model(hp):\n    return keras.Sequential("
                                                 "[keras.layers.Dense(10, activation='softmax')])\n"))),
    (["{data}/digits_rows.npz", "--space", "{data}/my_space.py"], "the model's output has 3 units, but the data has 10",
     lambda d: (digits_npz(d), space_file(d, classes=3))),
    (["{data}/digits_rows.npz", "--label", "y"], "--label applies to a .csv DATASET", digits_npz),
    (["{data}/digit_images", "--image-size", "big"], "--image-size must be HxW with sides from 1 to 4096",
     lambda d: digit_images(d, per_class=2)),
    (["{data}/nowhere.csv", "--label", "y"], "DATASET '{data}/nowhere.csv' does not exist", None),
    (["{data}/notes.txt"], "DATASET must be a built-in dataset (cifar10, digits, mnist), a .npz file, a .csv file",
     lambda d: (d / "notes.txt").write_text("hello")),
]  # fmt: skip
CASES = [  # (argv, what must be named, how to fill the data directory)
    (["digits", "--trials", "0"], "--trials must be at least 1, but got trials=0", None),
    (["digits", "--trials", "many"], "argument --trials: invalid int value: 'many'", None),
    (["digits", "--max-epochs", "-1"], "--max-epochs must be at least 1, but got max_epochs=-1", None),
    (["digits", "--patience", "x"], "argument --patience: invalid int value: 'x'", None),
    (["digits", "--batch-size", "0"], "--batch-size must be at least 1, but got batch_size=0", None),
    (["digits", "--seed", "-5"], "--seed must be between 0 and 2**32 - 1, but got seed=-5", None),
    (["digits", "--final-seeds", "0"], "--final-seeds must be at least 1, but got final_seeds=0", None),
    (["digits", "--mc-passes", "0"], "--mc-passes must be at least 1, but got mc_passes=0", None),
    (["fashion"], "DATASET must be a built-in dataset (cifar10, digits, mnist), a .npz file, a .csv file or a folder "
                  "of images, but got dataset='fashion'", None),
    (["digits", "--tuner", "grid"], "unknown tuner 'grid'; choose one of:", None),
    (["digits", "--space", "conv"], "unknown search space 'conv'; choose one of:", None),
    (["digits", "--keep-checkpoints", "some"], "--keep-checkpoints must be one of all, best, none", None),
    (["digits", "--lr-range", "maybe"], "--lr-range must be one of off, auto", None),
    (["digits", "--tuner", "random", "--pruner", "median"], "--pruner applies to the Optuna tuners", None),
    (["digits", "--storage", "sqlite:///x.db"], "--storage applies to the Optuna tuners", None),
    (["digits", "--tuner", "tpe", "--pruner", "often"], "unknown pruner 'often'; choose one of:", None),
    (["digits", "--name", "a/b"], "--name must be a plain folder name", None),
    (["digits", "--workers", "0"], "--workers must be at least 1, but got workers=0", None),
    (["digits", "--role", "boss", "--oracle", "h:1"], "--role must be one of chief, worker, but got role='boss'", None),
    (["digits", "--role", "worker"], "--role worker needs --oracle HOST:PORT", None),
    (["digits", "--oracle", "h:1"], "--oracle needs --role chief, --role worker or --workers N", None),
    (["digits", "--workers", "2", "--oracle", "h:99999"], "--oracle must be HOST:PORT with a port from 1 to 65535", None),
    (["digits", "--workers", "2", "--role", "chief", "--oracle", "h:1"], "--workers starts its own chief and workers", None),
    (["digits", "--role", "worker", "--oracle", "h:1", "--overwrite"], "--overwrite is refused on a worker", None),
    (["digits", "--worker-id", "w1"], "--worker-id applies to --role worker", None),
    (["digits", "--role", "worker", "--oracle", "h:1", "--worker-id", "chief2"], "--worker-id must be", None),
    (["digits", "--time-budget", "0"], "--time-budget must be greater than 0 and at most 10080 minutes (a week), or 'none' "
                                       "for no limit, but got time_budget=0.0", None),
    (["digits", "--time-budget", "nan"], "--time-budget must be greater than 0 and at most 10080 minutes", None),
    (["digits", "--time-budget", "soon"], "argument --time-budget: must be minutes or 'none', but got 'soon'", None),
    (["digits", "--recycle-after", "5"], "--recycle-after applies to worker processes", None),
    (["digits", "--chief-timeout", "0"], "--chief-timeout must be at least 1, but got chief_timeout=0", None),
    (["digits", "--tuner", "random", "--max-epochs", "7"], "exists with other settings (max_epochs was 2, now 7)", None),
    (["mnist", "--data-dir", "/no/such/folder"], "data directory '/no/such/folder' does not exist", None),
    (["mnist", "--data-dir", DATA], "mnist.npz is corrupt or truncated", truncated_npz),
    (["mnist", "--data-dir", DATA], "mnist.npz is corrupt or truncated", garbage_npz),
    (["mnist", "--data-dir", DATA], "lacks arrays", lambda d: np.savez(d / "mnist.npz", x_train=np.zeros((1, 28, 28)))),
    (["mnist", "--data-dir", DATA], "have shape (40, 32, 32), expected (n, 28, 28)",
     lambda d: write_mnist_npz(d, x_test=np.zeros((40, 32, 32), np.uint8))),
    (["mnist", "--data-dir", DATA], "labels in", labels_as_floats),
    (["cifar10", "--data-dir", DATA], "lacks data_batch_4", lambda d: write_cifar_dir(d, skip="data_batch_4")),
    (["cifar10", "--data-dir", DATA], "refusing to load", hostile_cifar),
    (["digits", "--checkpoint-root", "{blocked}/sub"], "cannot write the checkpoint directory", None),
    # Data values, corrupt files, libraries' multi-line errors.
    (["mnist", "--data-dir", DATA], "hold 3 NaN or infinite value(s)", images_with(np.nan)),
    (["mnist", "--data-dir", DATA], "hold 3 NaN or infinite value(s)", images_with(np.inf)),
    (["cifar10", "--data-dir", DATA], "data_batch_2 is corrupt or truncated", truncated_cifar_batch),
    (["cifar10", "--data-dir", DATA], "cifar-10-python.tar.gz is corrupt or truncated", empty_cifar_archive),
    (["mnist", "--data-dir", "{data}/mnist.npz"], "does not exist or is not a directory", lambda d: write_mnist_npz(d)),
    # The network and the study's storage.
    (["digits", "--workers", "2", "--oracle", "no-such-host.invalid:5000"], "--oracle host 'no-such-host.invalid' does not resolve", None),
    (["digits", "--role", "worker", "--oracle", "no-such-host.invalid:5000"], "does not resolve", None),
    (["digits", "--workers", "2", "--oracle", "127.0.0.1:{busy_port}"], "cannot listen on 127.0.0.1:", None),
    (["digits", "--tuner", "tpe", "--storage", "nosuchdb://x"], "cannot open the Optuna storage 'nosuchdb://x'", None),
    (["digits", "--tuner", "tpe", "--storage", "postgresql://tuning@127.0.0.1:9/study"], "cannot open the Optuna storage", None),
    (["digits", "--tuner", "tpe", "--storage", "sqlite:////no/such/folder/study.db"], "cannot open the Optuna storage", None),
    (["digits", "--tuner", "tpe", "--storage", "journal:/no/such/folder/study.log"], "the journal's folder '/no/such/folder' does not exist", None),
    # The run folder and the operating system.
    (["digits", "--tuner", "random", "--max-epochs", "2"], "run 'digits-random' is in use by process", "{hold_lock}"),
    (["digits", "--name", "x" * 250], "--name must be at most 200 bytes", None),
    (["digits", "--checkpoint-root", "c" * 300], "is 300 bytes, over the 255 a filesystem allows", None),
    (["digits", "--log-root", "{data}/" + "l" * 256], "cannot write the log directory", None),
    (["digits", "--local-share", "1.5"], "--local-share must be between 0 and 1, but got local_share=1.5", None),
    (["digits", "--threads", "0"], "--threads must be at least 1, but got threads=0", None),
    (["digits", "--final-epochs", "0"], "--final-epochs must be at least 1, but got final_epochs=0", None),
    (["digits", "--max-failures", "0"], "--max-failures must be at least 1, but got max_failures=0", None),
    # Values no run can honour, names no shell user can type, a study other processes cannot reach.
    (["digits", "--max-epochs", "100000"], "--max-epochs must be at most 1000, but got max_epochs=100000", None),
    (["digits", "--local-share", "nan"], "--local-share must be between 0 and 1, but got local_share=nan", None),
    (["digits", "--name", "a\nb"], "--name must not contain control characters, but got name='a\\nb'", None),
    (["digits", "--data-dir", ""], "--data-dir must not be empty, but got data_dir=''", None),
    (["digits", "--tuner", "tpe", "--workers", "2", "--storage", "sqlite://"], "lives in this process's memory", None),
    *USER_DATA,
]  # fmt: skip


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.mark.parametrize("argv, named, fill", CASES, ids=[f"{i:02d}" for i in range(len(CASES))])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(argv, named, fill, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNING_DATA_DIR", raising=False)
    existing = tmp_path / "checkpoints" / "digits-random"
    existing.mkdir(parents=True)
    identity = {"dataset": "digits", "tuner": "random", "space": "dense", "batch_size": None,
                "max_epochs": 2, "lr_range": "off", "regularization_floor": True}  # fmt: skip
    (existing / "run.json").write_text(json.dumps({"identity": identity, "seed": 1}))
    (existing / "trial_0").mkdir()
    (existing / "trial_0" / "trial.json").write_text('{"trial_id": "0"}')
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    held = None
    if fill == "{hold_lock}":  # another live process's lock: this test's own, on its own file description
        from tuning.records.lock import RunLock

        held = RunLock(existing).__enter__()
    elif fill:
        fill(data_dir)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    before = snapshot(tmp_path / "checkpoints")

    argv = [a.replace("{data}", str(data_dir)).replace("{blocked}", str(blocked))
            .replace("{busy_port}", str(busy.getsockname()[1])) for a in argv]  # fmt: skip
    if "--max-epochs" not in argv and argv[0] == "digits" and "--tuner" in argv and "random" in argv:
        argv += ["--max-epochs", "2"]
    try:
        assert run.main(argv) == 2
    finally:
        busy.close()
        if held is not None:
            held.__exit__(None, None, None)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    named = named.replace("{data}", str(data_dir))
    assert lines[0].startswith("tuning.run: error: ") and named in lines[0], lines[0]
    assert "Traceback" not in captured.out + captured.err
    assert snapshot(tmp_path / "checkpoints") == before
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "logs").exists()


def test_the_matrix_has_at_least_twenty_rows():
    assert len(CASES) >= 20
