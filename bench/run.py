"""Benchmarks: accuracy and time to accuracy against baselines, training overhead, memory.

    python -m bench.run {accuracy,overhead,memory,all,render} --data-dir DIR [--budget-minutes 20]
                        [--datasets mnist,cifar10] [--methods tuning,...] [--seeds 1] [--first-seed 0]

Every method runs in a fresh process of this interpreter, one after the
other, on the same data, the same split (the service's: the last 5,000
training images validate) and the same wall-clock budget, and reads the
test set once at the end:

- `keras-tuner`: the Keras Tuner getting-started recipe (Hyperband,
  max_epochs=10, factor=3, Adam, 1-3 dense layers of 32-512 units,
  relu/tanh, optional dropout, learning rate 1e-4 to 1e-2 log), then a
  retraining of the best configuration;
- `exercise-mlp`: the exercises' hand-tuned 300-100 ReLU MLP, SGD at 0.3,
  early stopping;
- `strong-guess`: one strong hand-picked configuration per dataset, 30 epochs;
- `strong-guess-budget`: the same guess with the augmentation the `dense`
  space turns on by default, trained seed after seed (30 epochs each) to
  fill the budget, exporting the average of the seeds' probabilities;
- `tuning-defaults-only`: the ablation, `tuning.run --trials 1` under the
  same budget (the space's defaults, no search);
- `tuning`: `tuning.run` with its defaults and `--time-budget M`.

Results go to `bench/results/*.json`. From them, `docs/benchmarks.md`'s
tables (and `bench/results/RESULTS.md`) and the README's headline block
are rewritten; `render` only rewrites them. `tests/test_docs.py` checks
that both are what the files say.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from bench import heldout_methods

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
METHODS = ("keras-tuner", "exercise-mlp", "strong-guess", "strong-guess-budget", "keras-tuner-hyperband", "optuna-tpe",
           "hand-guess-budget", "tuning-defaults-only", "tuning")  # fmt: skip
TARGETS = {"mnist": 0.98, "cifar10": 0.50, "digits": 0.95, "mnist1d": 0.70, "letter": 0.95, "animal_mnist": 0.90}
# The held-out tasks (issue 33), as the files `python -m bench.heldout` writes: run as a user's own data.
HELDOUT_DIR = ROOT / "bench" / "heldout_data"
HELDOUT = ("mnist1d", "letter", "animal_mnist")
SEARCH_SHARE = 0.75  # of the budget, for the baselines that search and then retrain
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


# ----------------------------------------------------------------------------- shared pieces


class Clock:
    """Wall time since the method started, and a best-validation-accuracy curve over it."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.curve: list[tuple[float, float]] = []

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def record(self, val_accuracy: float, at: Optional[float] = None) -> None:
        """Adds a point: the best validation accuracy so far, at `at` (`time.time()`; default now)."""
        seconds = self.elapsed() if at is None else at - self.started_wall
        best = max([val_accuracy, *(v for _, v in self.curve)])
        self.curve.append((round(seconds, 1), round(float(best), 4)))


def _curve(clock: Clock):
    """A callback that adds each epoch's validation accuracy to `clock`'s curve."""
    import keras

    class Curve(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs and "val_accuracy" in logs:
                clock.record(logs["val_accuracy"])

    return Curve()


def reference(dataset: str) -> str:
    """What `tuning.run` is given for `dataset`: a built-in name, or a held-out task's file."""
    if dataset not in HELDOUT:
        return dataset
    path = HELDOUT_DIR / f"{dataset}.npz"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run python -m bench.heldout first")
    return str(path)


def _load(dataset: str, data_dir: Optional[str]):
    from tuning.data.datasets import load_dataset

    return load_dataset(reference(dataset), data_dir)


def _fit_to_deadline(model, data, batch_size: int, epochs: int, patience: int, deadline: float, clock: Clock,
                     x_transform: Callable = lambda x: x):  # fmt: skip
    import keras

    from tuning.training.callbacks import Deadline

    model.fit(
        x_transform(data.train.x), data.train.y, batch_size=batch_size, epochs=epochs,
        validation_data=(x_transform(data.val.x), data.val.y), verbose=0,
        callbacks=[keras.callbacks.EarlyStopping("val_accuracy", patience=patience, restore_best_weights=True),
                   Deadline(deadline), _curve(clock)],
    )  # fmt: skip
    return model


def _test_accuracy(model, data, x_transform: Callable = lambda x: x) -> float:
    return float(model.evaluate(x_transform(data.test.x), data.test.y, batch_size=1024, verbose=0)[1])


# ----------------------------------------------------------------------------- the four methods


def method_keras_tuner(data, budget: float, seed: int, workdir: Path, clock: Clock) -> dict:
    """The Keras Tuner getting-started recipe, as users copy it."""
    import keras
    import keras_tuner as kt

    from tuning.training.callbacks import Deadline

    search_deadline = time.time() + SEARCH_SHARE * budget

    from bench.memory import getting_started_model

    build_model = getting_started_model(data.input_shape, data.n_classes)

    class Budgeted(kt.Hyperband):
        def pre_create_trial(self):
            if time.time() >= search_deadline:
                self.oracle.max_trials = len(self.oracle.trials)  # the next create_trial says STOPPED

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            ended = self.oracle.get_trial(trial.trial_id)
            if ended.score is not None:
                clock.record(ended.score)

    tuner = Budgeted(build_model, objective="val_accuracy", max_epochs=10, factor=3, seed=seed + 1,
                     directory=str(workdir), project_name="kt", overwrite=True)  # fmt: skip
    tuner.oracle.max_trials = 10_000
    tuner.search(data.train.x, data.train.y, validation_data=(data.val.x, data.val.y), epochs=10, verbose=0,
                 callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=5), Deadline(search_deadline)])  # fmt: skip
    trials = len(tuner.oracle.trials)
    best_hp = tuner.get_best_hyperparameters(1)[0]
    keras.utils.set_random_seed(seed)
    model = _fit_to_deadline(tuner.hypermodel.build(best_hp), data, 32, 50, 3, clock.started_wall + budget, clock)
    return {"trials": trials, "test_accuracy": _test_accuracy(model, data), "best": best_hp.values}


def method_exercise_mlp(data, budget: float, seed: int, workdir: Path, clock: Clock) -> dict:
    """300-100 ReLU, SGD at learning rate 0.3, early stopping: the exercises' hand-tuned MNIST MLP."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(data.input_shape), keras.layers.Flatten(),
        keras.layers.Dense(300, activation="relu"), keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(data.n_classes, activation="softmax"),
    ])  # fmt: skip
    model.compile(keras.optimizers.SGD(learning_rate=0.3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    _fit_to_deadline(model, data, 32, 100, 10, clock.started_wall + budget, clock)
    return {"test_accuracy": _test_accuracy(model, data)}


def strong_guess_model(data, epochs: int, batch: int, augment: bool):
    """The strong hand-picked configuration for `data`, compiled, and the input transform it needs.

    MNIST: 2x1024 ReLU, dropout 0.3, Adam warmed up to 2e-3 then cosine.
    CIFAR-10: standardized inputs, 3x1024 Dense-BN-ReLU, dropout 0.3, AdamW
    (weight decay 1e-4) warmed up to 1e-3 then cosine. With `augment`, the
    augmentation the `dense` space turns on by default for the data's profile
    goes in front: shifts of up to 2 pixels for digits; left-right flips and
    shifts of up to 3 pixels for photos (Keras preprocessing layers, active in
    training only).
    """
    import keras
    import numpy as np

    steps = epochs * int(np.ceil(len(data.train) / batch))
    colour = data.name == "cifar10"
    if colour:
        mean = data.train.x.mean(axis=0, keepdims=True)
        std = data.train.x.std(axis=0, keepdims=True) + 1e-7

        def transform(x):
            return (x - mean) / std

        layers = []
        for _ in range(3):
            layers += [keras.layers.Dense(1024), keras.layers.BatchNormalization(), keras.layers.Activation("relu")]
        layers.append(keras.layers.Dropout(0.3))
        peak, optimizer = 1e-3, lambda lr: keras.optimizers.AdamW(lr, weight_decay=1e-4)
    else:

        def transform(x):
            return x

        layers = [keras.layers.Dense(1024, activation="relu"), keras.layers.Dropout(0.3),
                  keras.layers.Dense(1024, activation="relu"), keras.layers.Dropout(0.3)]  # fmt: skip
        peak, optimizer = 2e-3, lambda lr: keras.optimizers.Adam(lr)
    front = []
    if augment:
        height, width = data.input_shape[:2]
        pixels = min(3 if colour else 2, min(height, width) // 8)  # as the space's default
        front = [] if colour else [keras.layers.Reshape((height, width, 1))]
        front += [keras.layers.RandomFlip("horizontal")] if colour else []
        front.append(keras.layers.RandomTranslation(pixels / height, pixels / width, fill_mode="constant"))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=steps - steps // 10, warmup_target=peak, warmup_steps=steps // 10
    )
    model = keras.Sequential([keras.Input(data.input_shape), *front, keras.layers.Flatten(), *layers,
                              keras.layers.Dense(data.n_classes, activation="softmax")])  # fmt: skip
    model.compile(optimizer(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, transform


def method_strong_guess(data, budget: float, seed: int, workdir: Path, clock: Clock) -> dict:
    """One strong hand-picked configuration (see the issue): the search has to beat a good single guess."""
    import keras

    keras.utils.set_random_seed(seed)
    epochs, batch = 30, 128
    model, transform = strong_guess_model(data, epochs, batch, augment=False)
    _fit_to_deadline(model, data, batch, epochs, epochs, clock.started_wall + budget, clock, transform)
    return {"test_accuracy": _test_accuracy(model, data, transform)}


# The most members `strong-guess-budget` averages, as `tuning.run` retrains under a time budget.
BUDGET_MAX_SEEDS = 8
# A member planned shorter than this is not trained: it would pull the average down.
MIN_MEMBER_EPOCHS = 10


def plan_members(seconds_left: float, seconds_per_epoch: float, epochs: int, seeds: int) -> tuple[int, int]:
    """`(members, epochs)`: as many full-length members as fit in 90% of the time left, else one shorter one."""
    usable = max(0.0, seconds_left) * 0.9
    fit = int(usable / (epochs * seconds_per_epoch))
    if fit >= 1:
        return min(seeds, fit), epochs
    return 1, max(1, int(usable / seconds_per_epoch))


def method_strong_guess_budget(data, budget: float, seed: int, workdir: Path, clock: Clock) -> dict:
    """The strong guess with the space's default augmentation, trained to fill the whole budget.

    Seeds of 30 epochs each (a cosine schedule spans each one) are trained
    while the time left holds another one, planned from the measured time of
    the first with `plan_members` (the service's planner when these results
    were first measured, kept so that they stay comparable), and the export
    is the average of their class probabilities: what `tuning.run` does with
    the time its search leaves.
    """
    import keras
    import numpy as np

    epochs, batch = 30, 128
    deadline = clock.started_wall + budget
    members, plan = [], (1, epochs)  # the first seed measures the epoch time the plan needs
    while len(members) < plan[0] and time.time() < deadline:
        keras.utils.set_random_seed(seed * 1000 + len(members))
        started = time.monotonic()
        model, transform = strong_guess_model(data, plan[1], batch, augment=True)
        _fit_to_deadline(model, data, batch, plan[1], plan[1], deadline, clock, transform)
        members.append(model)
        if len(members) == 1:
            more, more_epochs = plan_members(deadline - time.time(), (time.monotonic() - started) / epochs,
                                                epochs, BUDGET_MAX_SEEDS - 1)  # fmt: skip
            plan = (1 + more, more_epochs) if more_epochs >= MIN_MEMBER_EPOCHS else (1, epochs)
    x_test = transform(data.test.x)
    probabilities = np.mean([m.predict(x_test, batch_size=1024, verbose=0) for m in members], axis=0)
    member_tests = [_test_accuracy(m, data, transform) for m in members]
    return {"test_accuracy": float(np.mean(probabilities.argmax(axis=1) == data.test.y)), "members": len(members),
            "member_test_accuracies": member_tests, "epochs_per_member": [epochs] + [plan[1]] * (len(members) - 1)}  # fmt: skip


def method_tuning(data, budget: float, seed: int, workdir: Path, clock: Clock, data_dir: Optional[str] = None,
                  **options) -> dict:  # fmt: skip
    """`tuning.run` with its defaults and `--time-budget`; `options` set other `RunConfig` fields."""
    from tuning import service
    from tuning.config.run_config import RunConfig
    from tuning.records import events

    def listen(event) -> None:  # every epoch of every trial and retraining member, at the time it ended
        if isinstance(event, events.EpochEnded) and event.logs.get("val_accuracy") is not None:
            clock.record(float(event.logs["val_accuracy"]), at=event.at)

    config = RunConfig(
        dataset=reference(data.name), data_dir=data_dir, seed=seed, time_budget=budget / 60, overwrite=True,
        checkpoint_root=str(workdir / "checkpoints"), log_root=str(workdir / "logs"), **options,
    )  # fmt: skip
    lines: list[str] = []  # what a user would have read, kept for people reading the result
    result = service.tune_and_export(config, say=lines.append, listen=listen)
    final = result.record.final
    return {"trials": sum(result.record.search.trials_by_status.values()),
            "test_accuracy": final.test_accuracy, "best": result.hyperparameters, "members": len(final.members),
            "epochs_per_member": [s.get("epochs_planned", final.epoch_budget) for s in final.seeds],
            "search_seconds": result.record.search.wall_seconds, "retrain_seconds": final.wall_seconds,
            "final_rung": final.final_rung, "printed": lines}  # fmt: skip


def method_tuning_defaults_only(data, budget: float, seed: int, workdir: Path, clock: Clock,
                                data_dir: Optional[str] = None) -> dict:  # fmt: skip
    """The ablation: `tuning.run --trials 1`, the space's defaults and no search, under the same budget."""
    return method_tuning(data, budget, seed, workdir, clock, data_dir, trials=1)


RUNNERS = {"keras-tuner": method_keras_tuner, "exercise-mlp": method_exercise_mlp,
           "strong-guess": method_strong_guess, "strong-guess-budget": method_strong_guess_budget,
           **heldout_methods.RUNNERS, "tuning-defaults-only": method_tuning_defaults_only, "tuning": method_tuning}  # fmt: skip


def _commit() -> str:
    from bench.memory import _commit as commit

    return commit()


# This machine's speed drifts: the same configuration of the same ablation trained mnist1d at 1.05-1.12 s
# an epoch in one 10-minute part and at 0.57-0.63 s in the next (bench/results/accuracy-mnist1d-tuning-
# defaults-only-seed{1,2}.json, 1426382). A part records a fixed workload's time before and after it, so
# that a part run in a slow spell shows it.
GAUGE_MATMULS = 200


def speed_gauge(matmuls: int = GAUGE_MATMULS) -> float:
    """Seconds for a fixed TensorFlow workload on the CPU: `matmuls` products of two 1024×1024 float32 matrices.

    Args:
        matmuls: How many products. Defaults to `GAUGE_MATMULS` (1.2-1.4 s here).
    """
    import tensorflow as tf

    a = tf.random.stateless_normal((1024, 1024), seed=(0, 0))
    tf.matmul(a, a).numpy()  # the first call sets up the kernel
    started = time.perf_counter()
    for _ in range(matmuls):
        b = tf.matmul(a, a)
    b.numpy()
    return round(time.perf_counter() - started, 3)


def run_method(args) -> int:
    """One method in this process (`python -m bench.run _method ...`): writes its JSON to --out."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tuning.cli.base import quiet_libraries

    quiet_libraries()
    data = _load(args.dataset, args.data_dir)
    gauge_before = speed_gauge()
    clock = Clock()
    budget = args.budget_minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        runner = RUNNERS[args.method]
        extra = {"data_dir": args.data_dir} if args.method.startswith("tuning") else {}
        outcome = runner(data, budget, args.seed, Path(tmp), clock, **extra)
    wall_seconds = round(clock.elapsed(), 1)
    target = TARGETS.get(args.dataset)
    reached = next((t for t, v in clock.curve if target is not None and v >= target), None)
    result = {
        "method": args.method, "dataset": args.dataset, "seed": args.seed, "budget_minutes": args.budget_minutes,
        "wall_seconds": wall_seconds, "best_val_accuracy": max((v for _, v in clock.curve), default=None),
        "val_target": target, "seconds_to_val_target": reached, "curve": clock.curve, **outcome,
        "speed_gauge_seconds": {"before": gauge_before, "after": speed_gauge()}, "commit": _commit(),
    }  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    return 0


# ----------------------------------------------------------------------------- overhead


def overhead(args) -> dict:
    """Samples/s inside a `tuning` trial against a bare `model.fit`, and the time a trial spends outside `fit`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tuning.cli.base import quiet_libraries

    quiet_libraries()
    import keras
    import keras_tuner as kt
    import numpy as np

    from tuning.config.run_config import RunConfig
    from tuning.search import tuners
    from tuning.service import search_plan
    from tuning.training import callbacks
    from tuning.training.pipeline import DatasetFeeder

    data = _load(args.datasets[0], args.data_dir)
    epochs, batch, repeats = 3, 128, 3

    def build(hp=None):
        if hp is not None:
            hp.Fixed("batch_size", batch)
        model = keras.Sequential([keras.Input(data.input_shape), keras.layers.Flatten(),
                                  keras.layers.Dense(256, activation="relu"), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(data.n_classes, activation="softmax")])  # fmt: skip
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    class FitTimer(keras.callbacks.Callback):
        """Wall time of each training epoch (validation included) and of the whole `fit`."""

        def __init__(self, sink: dict) -> None:
            super().__init__()
            self.sink = sink

        def on_train_begin(self, logs=None):
            self.sink.setdefault("fits", []).append([time.monotonic(), None])
            self._epoch = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            self.sink.setdefault("epochs", []).append(time.monotonic() - self._epoch)

        def on_train_end(self, logs=None):
            self.sink["fits"][-1][1] = time.monotonic()

        def __deepcopy__(self, memo):  # Keras Tuner deep-copies callbacks; keep writing to the same sink
            return FitTimer(self.sink)

    n = len(data.train)
    bare: dict = {}
    inside: dict = {}
    search_seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(dataset=data.name, tuner="random", trials=repeats, max_epochs=epochs, seed=0,
                           checkpoint_root=str(Path(tmp) / "checkpoints"), log_root=str(Path(tmp) / "logs"))  # fmt: skip

        class Fixed(kt.HyperModel):
            def build(self, hp):
                hp.Int("replica", 0, repeats - 1)  # distinct trials of one model, so the oracle runs `repeats`
                return build(hp)

        feeder = DatasetFeeder(data)
        tuner = None
        # Bare fits and trials alternate, so that a machine whose speed drifts (this one
        # does, by 10-30% over minutes) slows both sides alike.
        for r in range(repeats):
            keras.utils.set_random_seed(r)
            model = build()
            model.fit(data.train.x, data.train.y, batch_size=batch, epochs=epochs, verbose=0,
                      validation_data=(data.val.x, data.val.y), callbacks=[FitTimer(bare)])  # fmt: skip
            started = time.monotonic()
            if tuner is None:
                tuner = tuners.make_tuner(search_plan(config, time.time()), Fixed(), feeder, 0, lambda line: None)
            tuner.oracle.max_trials = r + 1  # one more trial on the same tuner
            tuner.search(epochs=epochs, verbose=0,
                         callbacks=[*callbacks.search_callbacks(epochs + 1, config.log_dir), FitTimer(inside)])  # fmt: skip
            search_seconds += time.monotonic() - started
    # The first epoch of every fit includes tracing; steady-state throughput uses the later ones.
    steady = [t for i, t in enumerate(bare["epochs"]) if i % epochs]
    bare_throughput = n / float(np.median(steady))
    steady_inside = [t for i, t in enumerate(inside["epochs"]) if i % epochs]
    inside_throughput = n / float(np.median(steady_inside))
    fit_seconds = [end - start for start, end in inside["fits"]]
    trials_run = len(fit_seconds)
    outside_total = max(0.0, search_seconds - sum(fit_seconds))
    result = {
        "dataset": data.name, "model": "2x256 relu, Adam, batch 128", "epochs": epochs, "repeats": repeats,
        "note": "bare fits and trials alternate; throughput from the median of epochs 2..E (the first includes tracing); outside-fit time is the "
                "search's wall time (tuner construction, oracle, build, compile, checkpoints, TensorBoard) minus fit time",
        "bare_fit_samples_per_s": round(bare_throughput), "tuning_trial_samples_per_s": round(inside_throughput),
        "throughput_ratio": round(inside_throughput / bare_throughput, 3),
        "search_seconds": round(search_seconds, 2), "trials": trials_run, "fit_seconds": [round(t, 2) for t in fit_seconds],
        "outside_fit_seconds_per_trial": round(outside_total / trials_run, 2),
        "outside_fit_fraction": round(outside_total / search_seconds, 4),
    }  # fmt: skip
    return result


# ----------------------------------------------------------------------------- orchestration


def _subprocess(argv: list[str], timeout: float) -> int:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.call([sys.executable, "-m", "bench.run", *argv], cwd=ROOT, env=env, timeout=timeout)


def accuracy(args) -> list[dict]:
    results = []
    for dataset in args.datasets:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for method in args.methods:
                out = args.results / f"accuracy-{dataset}-{method}-seed{seed}.json"
                print(f"[bench] {dataset} {method} seed {seed}: budget {args.budget_minutes} min", flush=True)
                argv = ["_method", method, "--dataset", dataset, "--seed", str(seed), "--out", str(out),
                        "--budget-minutes", str(args.budget_minutes)] + (["--data-dir", args.data_dir] if args.data_dir else [])  # fmt: skip
                code = _subprocess(argv, timeout=args.budget_minutes * 60 * 3 + 600)
                if code != 0 or not out.exists():
                    print(f"[bench] {dataset} {method} seed {seed} failed (exit {code})", flush=True)
                    continue
                result = json.loads(out.read_text())
                result.update(command=args.command, date=time.strftime("%Y-%m-%d"))
                out.write_text(json.dumps(result, indent=1, default=str))
                print(f"[bench]   test {result['test_accuracy']:.4f}, best val {result['best_val_accuracy']}, "
                      f"{result['wall_seconds']:.0f}s, to target: {result['seconds_to_val_target']}", flush=True)  # fmt: skip
                results.append(result)
    return results


def memory(args) -> list[dict]:
    found = []
    for engine in ("tuning", "tuning-workers", "keras-tuner"):
        argv = ["-m", "bench.memory", "--engine", engine, "--dataset", args.datasets[0], "--trials", "30"]
        argv += ["--data-dir", args.data_dir] if args.data_dir else []
        subprocess.call([sys.executable, *argv], cwd=ROOT)
        path = RESULTS / f"memory-{engine}.json"  # where bench.memory writes
        if path.exists():
            found.append(json.loads(path.read_text()))
            if args.results.resolve() != RESULTS.resolve():
                (args.results / path.name).write_text(path.read_text())
    return found


# Where the committed results were measured. A constant, not read from the machine that renders
# them: rendering on another machine must not change what the files say.
MACHINE = "the project's 2-core machine (24 GiB, no GPU)"


def means_table(rows: list[dict], order: dict) -> list[str]:
    """Mean test accuracy per dataset and method over its seeds, with the spread, as Markdown lines."""
    import statistics

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"], r["budget_minutes"]), []).append(r)
    lines = ["| dataset | method | budget (min) | seeds | mean test acc | std | min | max | date | commit |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for (dataset, method, budget), found in sorted(groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9))):
        found = sorted(found, key=lambda r: r["seed"])
        tests = [r["test_accuracy"] for r in found]
        std = f"{statistics.stdev(tests):.4f}" if len(tests) > 1 else "n/a"
        dates = ", ".join(sorted({r.get("date") or "unrecorded" for r in found}))
        commits = ", ".join(sorted({r.get("commit") or "unrecorded" for r in found}))
        lines.append(f"| {dataset} | {method} | {budget:g} | {','.join(str(r['seed']) for r in found)} | "
                     f"**{statistics.mean(tests):.4f}** | {std} | {min(tests):.4f} | {max(tests):.4f} | {dates} | {commits} |")  # fmt: skip
    return lines + [""]


def _commands(files: list[Path]) -> list[str]:
    """One line per distinct command, with its dates, as the files record them."""
    found: dict[str, set] = {}
    for path in files:
        data = json.loads(path.read_text())
        runs = data.get("runs", [data]) if isinstance(data, dict) else [data]
        for run in runs:
            if run.get("command"):
                found.setdefault(run["command"], set()).add(run.get("date") or "unrecorded")
    return [f"- `{command}` ({', '.join(sorted(dates))})" for command, dates in sorted(found.items())]


# The README shows every method on the held-out tasks, and on MNIST and CIFAR-10 the service beside its ablation
# and the strongest baseline; docs/benchmarks.md shows every method and every seed.
HEADLINE_METHODS = {"mnist": ("strong-guess-budget", "tuning-defaults-only", "tuning"),
                    "cifar10": ("strong-guess-budget", "tuning-defaults-only", "tuning")}  # fmt: skip


def headline(results: Path = RESULTS) -> str:
    """The README's results block: mean test accuracy per dataset and method over seeds, with the spread."""
    rows = [json.loads(p.read_text()) for p in sorted(results.glob("accuracy-*.json"))]
    rows = [r for r in rows if r["method"] in HEADLINE_METHODS.get(r["dataset"], METHODS)]
    if not rows:
        return "No accuracy results yet."
    order = {m: i for i, m in enumerate(METHODS)}
    return "\n".join([
        f"Test accuracy under the same wall-clock budget per method, on {MACHINE}, from `bench/results/accuracy-*.json`: "
        "the held-out tasks nobody tuned for at 10 minutes (`python -m bench.run accuracy --budget-minutes 10 --datasets "
        "letter,mnist1d,animal_mnist --seeds 3`), MNIST and CIFAR-10 at 20 (`--data-dir DIR --budget-minutes 20 --datasets "
        "mnist,cifar10`); each row's date and commit are its files'. std is over seeds; n/a where only one seed was run, "
        "and a margin smaller than the spread is no margin:", "",
        *means_table(rows, order),
        "Every method, each seed, the time to the validation target, the overhead and memory figures: "
        "[docs/benchmarks.md](docs/benchmarks.md).",
    ])  # fmt: skip


def render(command: str, results: Path = RESULTS) -> str:
    """The Markdown of every accuracy, overhead and memory result file in `results`."""
    files = sorted(p for pattern in ("accuracy-*.json", "overhead.json", "memory-*.json") for p in results.glob(pattern))
    lines = [f"Measured on {MACHINE}, by:", "", *_commands(files), ""]
    accuracy_files = sorted(results.glob("accuracy-*.json"))
    if accuracy_files:
        rows = [json.loads(p.read_text()) for p in accuracy_files]
        order = {m: i for i, m in enumerate(METHODS)}
        lines += means_table(rows, order)
        lines += ["| dataset | method | seed | budget (min) | trials | members | best val | test acc | time to val target | wall | commit |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for r in sorted(rows, key=lambda r: (r["dataset"], r["seed"], order.get(r["method"], 9))):
            reached = f"{r['seconds_to_val_target']:.0f}s (≥{r['val_target']})" if r.get("seconds_to_val_target") is not None else f"not reached (≥{r['val_target']})"
            lines.append(f"| {r['dataset']} | {r['method']} | {r['seed']} | {r['budget_minutes']:g} | {r.get('trials', '-')} | "
                         f"{r.get('members', '-')} | {r['best_val_accuracy']:.4f} | **{r['test_accuracy']:.4f}** | {reached} | "
                         f"{r['wall_seconds']:.0f}s | {r.get('commit', '-')} |")  # fmt: skip
        lines.append("")
    over = results / "overhead.json"
    if over.exists():
        o = json.loads(over.read_text())
        lines += [f"Overhead ({o['dataset']}, {o['model']}, {o['epochs']} epochs, {o['repeats']} trials): a bare `model.fit` "
                  f"trains at {o['bare_fit_samples_per_s']} samples/s, a `tuning` trial at {o['tuning_trial_samples_per_s']} "
                  f"(ratio **{o['throughput_ratio']}**, target ≥ 0.95). Outside `fit` a trial spends "
                  f"{o['outside_fit_seconds_per_trial']}s (tuner set-up, oracle, build, compile, checkpoint, TensorBoard): "
                  f"**{100 * o['outside_fit_fraction']:.1f}%** of trial time (target < 3%).", ""]  # fmt: skip
    memory_files = sorted(results.glob("memory-*.json"))
    if memory_files:
        lines += ["| memory | trials | RSS after trial 3 | RSS after last | growth (target < 150 MB) | commit |",
                  "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for p in memory_files:
            m = json.loads(p.read_text())
            lines.append(f"| {m['engine']} | {m['trials']} | {m['rss_mb_after_trial_3']:.0f} MB | "
                         f"{m['rss_mb_after_last_trial']:.0f} MB | **{m['growth_mb_from_trial_3']:+.0f} MB** | "
                         f"{m.get('commit', '-')} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def replace_block(markdown: str, path: Path) -> None:
    """Replaces the block between the bench markers in `path`, or appends one."""
    text = path.read_text() if path.exists() else ""
    block = f"{START}\n{markdown}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def marked_block(path: Path) -> str:
    """The text between the bench markers in `path` (empty when there are none)."""
    text = path.read_text() if path.exists() else ""
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") if START in text and END in text else ""


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m bench.run`."""
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["accuracy", "overhead", "memory", "all", "render"])
    parser.add_argument("--data-dir")
    parser.add_argument("--budget-minutes", type=float, default=20.0)
    parser.add_argument("--datasets", default="mnist,cifar10")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed .. first-seed + seeds - 1")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON and RESULTS.md go (default bench/results)")
    parser.add_argument("--readme", type=Path, help="the README whose headline block is rewritten (default README.md with the default --results)")
    parser.add_argument("--benchmarks", type=Path, help="the page whose tables are rewritten (default docs/benchmarks.md with the default --results)")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parses and checks `bench.run`'s arguments; a bad value raises `ValueError` naming it."""
    args = build_parser().parse_args(argv)
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown or not 0 < args.budget_minutes < float("inf") or args.seeds < 1 or args.first_seed < 0:
        raise ValueError(f"methods must be among {', '.join(METHODS)}, budget > 0, seeds >= 1 and first seed >= 0, "
                         f"but got methods={args.methods}, budget_minutes={args.budget_minutes}, seeds={args.seeds}, "
                         f"first_seed={args.first_seed}")  # fmt: skip
    return args


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_method":
        parser = argparse.ArgumentParser(prog="bench.run _method")
        parser.add_argument("method", choices=METHODS)
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--budget-minutes", type=float, required=True)
        parser.add_argument("--data-dir")
        parser.add_argument("--out", required=True)
        return run_method(parser.parse_args(argv[1:]))
    try:
        args = parse_args(argv)
    except ValueError as error:
        print(f"bench.run: error: {error}", file=sys.stderr)
        return 2
    args.results.mkdir(parents=True, exist_ok=True)
    command = args.command = "python -m bench.run " + " ".join(argv)
    if args.what in ("overhead", "all"):
        result = overhead(args)
        result.update(command=command, date=time.strftime("%Y-%m-%d"))
        (args.results / "overhead.json").write_text(json.dumps(result, indent=1) + "\n")
        print(f"[bench] overhead: {result}", flush=True)
    if args.what in ("memory", "all"):
        memory(args)
    if args.what in ("accuracy", "all"):
        accuracy(args)
    markdown = render(command, args.results)
    (args.results / "RESULTS.md").write_text(markdown + "\n")
    ours = args.results.resolve() == RESULTS.resolve()  # other results never rewrite the repository's pages
    if args.benchmarks or ours:
        replace_block(markdown, args.benchmarks or BENCHMARKS_MD)
    if args.readme or ours:
        replace_block(headline(args.results), args.readme or README)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
