"""Which regularizers the `dense` space's defaults should turn on: each measured against the prior, on validation.

    python -m bench.priors --dataset mnist --data-dir DIR [--epochs 15] [--seeds 1] [--variants a,b,...]

Trains the space's default configuration for the dataset's profile, and the
same configuration with one hyperparameter changed (`VARIANTS`), through the
service's own retraining (`tuning.final.retraining.retrain`: the training split, a
schedule spanning the epochs, the best validation epoch kept), and records
each one's best validation accuracy and wall time. Only the validation split
is read: these figures choose defaults, so the test set stays unseen.
Writes `bench/results/priors-DATASET.json`.
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
# One change each, against the profile's defaults; "prior" is the defaults themselves.
VARIANTS: dict[str, dict] = {
    "prior": {},
    "no-augmentation": {"translate": 0, "flip": False},
    "label-smoothing-0.1": {"label_smoothing": 0.1},
    "max-norm-3": {"max_norm": 3.0},
    "input-dropout-0.2": {"input_dropout": 0.2},
    "weight-decay-1e-2": {"weight_decay": 1e-2},
    "dropout-0.1": {"dropout": 0.1},
    # Feature vectors and tables (the held-out tasks, issue 33): the features prior against its neighbours.
    "units-1024": {"units_0": 1024, "units_1": 1024, "units_2": 1024},
    "units-256": {"units_0": 256, "units_1": 256, "units_2": 256},
    "layers-2": {"num_layers": 2},
    "layers-4": {"num_layers": 4, "units_3": 512},
    "no-batch-norm": {"normalization": "none"},
    "dropout-0.3": {"dropout": 0.3},
    "weight-decay-1e-4": {"weight_decay": 1e-4},
    "label-smoothing-0.05": {"label_smoothing": 0.05},
    "lr-5e-3": {"learning_rate": 5e-3},
    # The single changes that each helped on both features tasks' validation, combined (settles the features prior).
    "wide-dropout-0.1": {"units_0": 1024, "units_1": 1024, "units_2": 1024, "dropout": 0.1},
    "wide-dropout-0.1-lr-5e-3": {"units_0": 1024, "units_1": 1024, "units_2": 1024, "dropout": 0.1, "learning_rate": 5e-3},
    "dropout-0.1-lr-5e-3": {"dropout": 0.1, "learning_rate": 5e-3},
    # The features prior at half the width: the same validation accuracy on letter at half the time.
    "units-512": {"units_0": 512, "units_1": 512, "units_2": 512},
}
FEATURE_VARIANTS = ("prior", "units-1024", "units-256", "layers-2", "layers-4", "no-batch-norm", "dropout-0.1",
                    "dropout-0.3", "input-dropout-0.2", "weight-decay-1e-4", "label-smoothing-0.05", "lr-5e-3")


def configured(data, changes: dict, epochs: int):
    """The `dense` space for `data` with a schedule spanning `epochs`, and its defaults with `changes`: (space, hp)."""
    import keras_tuner as kt

    import search_spaces
    from search_spaces.base import SpaceContext, default_values

    space = search_spaces.get("dense")(SpaceContext.for_dataset(data, epochs=epochs))
    declared = kt.HyperParameters()
    space.build(declared)
    values = {**default_values(declared), **changes}
    for _ in range(2):  # a changed depth declares its layers' units: build again to learn them
        hp = declared.copy()
        hp.values = values
        space.build(hp)
        values = {**default_values(hp), **values}
    if not data.mirror_invariant:
        values.pop("flip", None)
    hp = declared.copy()
    hp.values = values
    return space, hp


def measure(dataset_name: str, data_dir: Optional[str], variant: str, epochs: int, seed: int) -> dict:
    """Trains one variant and returns its best validation accuracy, epochs and seconds."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from bench.run import reference
    from tuning.cli.base import quiet_libraries
    from tuning.data.datasets import load_dataset
    from tuning.final import retraining
    from tuning.training.pipeline import DatasetFeeder

    quiet_libraries()
    data = load_dataset(reference(dataset_name), data_dir)
    space, hp = configured(data, VARIANTS[variant], epochs)
    with tempfile.TemporaryDirectory() as logs:
        retrained = retraining.retrain(space, hp, DatasetFeeder(data), epochs, epochs, seed, Path(logs))
    val = retrained.history["val_accuracy"]
    return {"variant": variant, "changes": VARIANTS[variant], "seed": seed, "epochs": epochs,
            "best_val_accuracy": max(val), "last_val_accuracy": val[-1], "seconds": round(retrained.wall_seconds, 1)}  # fmt: skip


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.priors", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, or 'features' for FEATURE_VARIANTS")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: VARIANT:SEED, in a fresh process
    args = parser.parse_args(argv)
    if args.one:
        variant, seed = args.one.rsplit(":", 1)
        print(json.dumps(measure(args.dataset, args.data_dir, variant, args.epochs, int(seed))))
        return 0
    variants = list(FEATURE_VARIANTS) if args.variants == "features" else [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or args.epochs < 1 or args.seeds < 1:
        print(f"bench.priors: error: variants must be among {', '.join(VARIANTS)}, epochs and seeds at least 1, "
              f"but got variants={unknown or variants}, epochs={args.epochs}, seeds={args.seeds}", file=sys.stderr)  # fmt: skip
        return 2
    out = RESULTS / f"priors-{args.dataset}.json"
    found = json.loads(out.read_text()) if out.exists() else {"runs": []}
    command = "python -m bench.priors " + " ".join(argv if argv is not None else sys.argv[1:])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    for seed in range(args.seeds):
        for variant in variants:
            argv_one = [sys.executable, "-m", "bench.priors", "--dataset", args.dataset, "--epochs", str(args.epochs),
                        "--one", f"{variant}:{seed}"] + (["--data-dir", args.data_dir] if args.data_dir else [])  # fmt: skip
            done = subprocess.run(argv_one, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
            if done.returncode != 0:
                print(f"[priors] {variant} seed {seed} failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result.update(command=command, date=time.strftime("%Y-%m-%d"), commit=commit)
            found["runs"].append(result)
            out.write_text(json.dumps(found, indent=1) + "\n")
            print(f"[priors] {args.dataset} {variant} seed {seed}: best val {result['best_val_accuracy']:.4f} "
                  f"({result['seconds']:.0f}s)", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
