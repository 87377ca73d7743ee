"""How the retraining should spend its time, measured on validation only.

    python -m bench.retraining members --dataset cifar10|FILE.npz --data-dir DIR [--epochs 30] [--seed 0]
    python -m bench.retraining equal-time --dataset FILE.npz --changes VARIANT [--epochs 60] [--seconds 400]
    python -m bench.retraining colour-prior --data-dir DIR [--epochs 30] [--seed 0]

- `members`: at equal training time, one member of `--epochs` epochs
  against the average of two members of half as many (each with a schedule
  spanning its own epochs). This decides whether the retraining, when a
  second full-length member does not fit, trains shorter members or fewer.
- `equal-time`: members of `--epochs` of the space's defaults against members of
  the defaults with `--changes` (a variant of `bench.priors`, e.g. `units-512`),
  seed after seed until each arm has trained `--seconds`: the ensemble's
  validation accuracy after each member, with the time spent so far. This
  decides a prior where its cost matters: under a budget a cheaper network
  buys more members.
- `colour-prior`: the `dense` space's CIFAR-10 default against the
  `strong-guess-budget` baseline's own network (one dropout of 0.3 after the
  last hidden layer instead of 0.1 after each), both with the space's
  default augmentation, the same epochs and the same seed.

Each arm trains through the service's own retraining where the arm is a
configuration of the space (`tuning.final.retraining.retrain`), in a fresh process.
Only the validation split is read: these figures choose defaults and rules,
so the test set stays unseen. Results are appended to
`bench/results/retraining-EXPERIMENT-DATASET.json` (a file's name without its suffix) with
command, date and commit.
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
from typing import Optional

RESULTS = Path(__file__).resolve().parent / "results"
EXPERIMENTS = ("members", "equal-time", "colour-prior")


def _retrain(data, epochs: int, seed: int, changes: Optional[dict] = None):
    """One member of the space's defaults (with `changes`), trained as the service retrains: (model, seconds)."""
    from bench.priors import configured
    from tuning.final import retraining
    from tuning.training.pipeline import DatasetFeeder

    space, hp = configured(data, changes or {}, epochs)
    with tempfile.TemporaryDirectory() as logs:
        retrained = retraining.retrain(space, hp, DatasetFeeder(data), epochs, epochs, seed, Path(logs))
    return retrained.model, retrained.wall_seconds


def arm_members(data, epochs: int, seed: int) -> dict:
    """One full-length member against two half-length ones, on validation."""
    from tuning.final import evaluate

    full, full_seconds = _retrain(data, epochs, seed)
    full_val = evaluate.evaluate_split(full, data.val)["accuracy"]
    half = max(1, epochs // 2)
    halves = [_retrain(data, half, seed + k) for k in range(2)]
    half_vals = [evaluate.evaluate_split(m, data.val)["accuracy"] for m, _ in halves]
    pair_val = evaluate.evaluate_split(evaluate.average([m for m, _ in halves]), data.val)["accuracy"]
    return {"one_member_epochs": epochs, "one_member_val_accuracy": full_val, "one_member_seconds": round(full_seconds, 1),
            "two_member_epochs": half, "two_member_val_accuracies": half_vals, "two_member_average_val_accuracy": pair_val,
            "two_member_seconds": round(sum(s for _, s in halves), 1)}  # fmt: skip


def _members_for(data, changes: dict, epochs: int, seed: int, seconds: float) -> dict:
    """Members of the defaults with `changes`, seed after seed, until `seconds` are spent: each one's validation
    accuracy and time, and the ensemble's validation accuracy after each."""
    from tuning.final import evaluate

    models, alone, together, spent = [], [], [], []
    # Another member starts while it is expected to end within the arm's time (5% over allowed): the arms compare at
    # the time each spent, not at more.
    while not spent or spent[-1] * (1 + 1 / len(spent)) <= 1.05 * seconds:
        model, model_seconds = _retrain(data, epochs, seed + len(models), changes)
        models.append(model)
        alone.append(evaluate.evaluate_split(model, data.val)["accuracy"])
        together.append(evaluate.evaluate_split(evaluate.average(models), data.val)["accuracy"])
        spent.append(round((spent[-1] if spent else 0.0) + model_seconds, 1))
    return {"changes": changes, "member_val_accuracies": alone, "ensemble_val_accuracies": together, "seconds": spent}


def arm_equal_time(data, epochs: int, seed: int, changes: str, seconds: float) -> dict:
    """The defaults' members against a variant's, each until `seconds` of training are spent."""
    from bench.priors import VARIANTS

    return {"epochs": epochs, "seconds_each": seconds, "variant": changes,
            "defaults": _members_for(data, {}, epochs, seed, seconds),
            "changed": _members_for(data, VARIANTS[changes], epochs, seed, seconds)}  # fmt: skip


def arm_colour_prior(data, epochs: int, seed: int) -> dict:
    """The space's colour default against the baseline's network, same augmentation, epochs and seed."""
    import keras

    from bench.run import strong_guess_model
    from tuning.final import evaluate

    ours, ours_seconds = _retrain(data, epochs, seed)
    ours_val = evaluate.evaluate_split(ours, data.val)["accuracy"]
    keras.utils.set_random_seed(seed)
    started = time.monotonic()
    model, transform = strong_guess_model(data, epochs, 128, augment=True)
    history = model.fit(transform(data.train.x), data.train.y, batch_size=128, epochs=epochs, verbose=0,
                        validation_data=(transform(data.val.x), data.val.y)).history  # fmt: skip
    return {"epochs": epochs, "space_default_val_accuracy": ours_val, "space_default_seconds": round(ours_seconds, 1),
            "baseline_network_val_accuracy": float(history["val_accuracy"][-1]),
            "baseline_network_best_val_accuracy": float(max(history["val_accuracy"])),
            "baseline_network_seconds": round(time.monotonic() - started, 1)}  # fmt: skip


ARMS = {"members": arm_members, "equal-time": arm_equal_time, "colour-prior": arm_colour_prior}


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="bench.retraining", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=EXPERIMENTS)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--changes", help="equal-time: a variant of bench.priors.VARIANTS")
    parser.add_argument("--seconds", type=float, default=400.0, help="equal-time: each arm's training time")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)  # the fresh process's side
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2, but got epochs={args.epochs}")
    if args.experiment == "colour-prior" and args.dataset != "cifar10":
        parser.error(f"colour-prior compares the colour profile's default; use --dataset cifar10, but got dataset={args.dataset!r}")
    if args.experiment == "equal-time":
        from bench.priors import VARIANTS

        if args.changes not in VARIANTS:
            parser.error(f"equal-time needs --changes among {', '.join(VARIANTS)}, but got changes={args.changes!r}")
    if args.inside:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from bench.run import reference
        from tuning.cli.base import quiet_libraries
        from tuning.data.datasets import load_dataset

        quiet_libraries()
        data = load_dataset(reference(args.dataset), args.data_dir)  # a held-out task by its name, or a file
        extra = {"changes": args.changes, "seconds": args.seconds} if args.experiment == "equal-time" else {}
        print(json.dumps(ARMS[args.experiment](data, args.epochs, args.seed, **extra)))
        return 0
    done = subprocess.run([sys.executable, "-m", "bench.retraining", *argv, "--inside"], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))  # fmt: skip
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    from bench.memory import _commit

    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(dataset=args.dataset, seed=args.seed, command="python -m bench.retraining " + " ".join(argv),
                  date=time.strftime("%Y-%m-%d"), commit=_commit())  # fmt: skip
    out = RESULTS / f"retraining-{args.experiment}-{Path(args.dataset).stem}.json"  # a file's name, not its path
    found = json.loads(out.read_text()) if out.exists() else {"runs": []}
    found["runs"].append(result)
    out.write_text(json.dumps(found, indent=1) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
