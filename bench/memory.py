"""Resident memory over a long search: `tuning` against a plain Keras Tuner script.

    python -m bench.memory --data-dir DIR [--dataset mnist] [--trials 30] [--engine tuning|tuning-workers|keras-tuner|all]

Each engine runs in its own process (`--engine all`, the default, starts
one per engine) and samples its resident set size (VmRSS) after every trial.
`tuning-workers` is `tuning` with `--workers 1 --recycle-after 10`: trials
run in a worker process that is replaced every 10 trials, and the figure is
the sum over the chief and its worker. A trial that ends while no worker is
alive (the chief reports it after the worker has exited to be replaced) is
recorded as null: the chief alone would read as a drop of a whole TensorFlow.
The figure of merit is the growth from trial 3 to the last trial. Results go
to `bench/results/memory-ENGINE.json`.
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

RESULTS = Path(__file__).resolve().parent / "results"
RECYCLE_AFTER = 10
ENGINES = ("tuning", "tuning-workers", "keras-tuner")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def tree_rss_mb() -> tuple[float, int]:
    """VmRSS of this process plus its children's (the chief and its workers), and how many children."""
    total, children = rss_mb(), 0
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == me and "VmRSS" in fields:
            total += int(fields["VmRSS"].split()[0]) / 1024
            children += 1
    return total, children


def run_tuning(args, workdir: Path, workers: bool = False) -> list[float | None]:
    from tuning import service
    from tuning.config.run_config import RunConfig

    samples: list[float | None] = []

    def say(line: str) -> None:
        if not line.startswith("trial "):
            return
        if workers:
            total, children = tree_rss_mb()
            samples.append(total if children else None)
        else:
            samples.append(rss_mb())

    config = RunConfig(
        dataset=args.dataset, tuner="random", trials=args.trials, max_epochs=args.epochs, batch_size=256,
        data_dir=args.data_dir, seed=0, overwrite=True, final_epochs=1, final_seeds=1,
        checkpoint_root=str(workdir / "checkpoints"), log_root=str(workdir / "logs"),
        **({"workers": 1, "recycle_after": args.recycle_after} if workers else {}),
    )  # fmt: skip
    service.tune_and_export(config, say=say)
    return samples


def getting_started_model(input_shape, n_classes):
    """The Keras Tuner getting-started guide's model-building function, for these data.

    Args:
        input_shape: Shape of one example.
        n_classes: Number of classes.
    """
    import keras

    def build_model(hp):
        model = keras.Sequential([keras.Input(input_shape), keras.layers.Flatten()])
        for i in range(hp.Int("num_layers", 1, 3)):
            model.add(keras.layers.Dense(hp.Int(f"units_{i}", 32, 512, step=32),
                                         activation=hp.Choice("activation", ["relu", "tanh"])))  # fmt: skip
        if hp.Boolean("dropout"):
            model.add(keras.layers.Dropout(rate=0.25))
        model.add(keras.layers.Dense(n_classes, activation="softmax"))
        model.compile(keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-2, sampling="log")),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
        return model

    return build_model


def run_keras_tuner(args, workdir: Path) -> list[float]:
    """The Keras Tuner getting-started recipe, written as users write it."""
    import keras
    import keras_tuner as kt

    from tuning.data.datasets import load_dataset

    data = load_dataset(args.dataset, args.data_dir)
    samples: list[float] = []

    build_model = getting_started_model(data.input_shape, data.n_classes)

    class Sampler(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            samples.append(rss_mb())

    tuner = kt.RandomSearch(build_model, objective="val_accuracy", max_trials=args.trials, seed=0,
                            directory=str(workdir), project_name="kt", overwrite=True)  # fmt: skip
    tuner.search(data.train.x, data.train.y, validation_data=(data.val.x, data.val.y), epochs=args.epochs,
                 batch_size=256, callbacks=[Sampler()], verbose=0)  # fmt: skip
    return samples


def _commit() -> str:
    """The checkout's short commit, so a figure can be tied to the code that produced it; "-" outside git."""
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parents[1],
                              capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "-"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "-"


def measure(args) -> dict:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        if args.engine == "keras-tuner":
            samples = run_keras_tuner(args, Path(tmp))
        else:
            samples = run_tuning(args, Path(tmp), workers=args.engine == "tuning-workers")
    measured = [s for s in samples if s is not None]
    third, last = measured[min(2, len(measured) - 1)], measured[-1]
    return {
        "engine": args.engine if args.engine != "tuning-workers" else f"tuning-workers (recycle after {args.recycle_after})",
        "dataset": args.dataset, "trials": len(samples), "epochs_per_trial": args.epochs,
        "rss_mb_after_each_trial": [None if s is None else round(s, 1) for s in samples],
        "trials_ended_with_no_worker_alive": samples.count(None),
        "rss_mb_after_trial_3": round(third, 1), "rss_mb_after_last_trial": round(last, 1),
        "growth_mb_from_trial_3": round(last - third, 1), "wall_seconds": round(time.monotonic() - started, 1),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.memory", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"), "commit": _commit(),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--engine", choices=[*ENGINES, "all"], default="all")
    parser.add_argument("--recycle-after", type=int, default=RECYCLE_AFTER, help="tuning-workers: trials per worker process (default 10)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.engine == "all":
        for engine in ENGINES:
            argv = [a for a in sys.argv[1:] if not a.startswith("--engine")]
            code = subprocess.call([sys.executable, "-m", "bench.memory", *argv, "--engine", engine])
            if code:
                return code
        return 0
    result = measure(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = f"-{args.recycle_after}" if args.engine == "tuning-workers" and args.recycle_after != RECYCLE_AFTER else ""
    (RESULTS / f"memory-{args.engine}{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.engine}: RSS {result['rss_mb_after_trial_3']:.0f} MB after trial 3, "
          f"{result['rss_mb_after_last_trial']:.0f} MB after trial {result['trials']}: "
          f"growth {result['growth_mb_from_trial_3']:+.0f} MB ({result['wall_seconds']:.0f}s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
