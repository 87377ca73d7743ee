"""Whether Hyperband's lowest rung ranks configurations as its top rung does, with either schedule rule.

    python -m bench.rungs --dataset mnist|mnist1d --data-dir DIR [--configurations 10] [--low 2] [--top 10] [--seed 0]

Draws the configurations a default run's first rung sees (the space's
defaults, then random draws, as Hyperband's are), and trains each one:

- for `--top` epochs with a schedule spanning them: its score at the top
  rung, and its score after `--low` epochs under the *old* rule, where every
  trial's schedule spanned the top rung's epochs, so the low rung judged an
  annealing schedule still near its peak;
- for `--low` epochs with a schedule spanning them: its score at the low
  rung under the *new* rule (`tuning.search.hyperband.fit_schedule_to_rung`).

A trial's score is Keras Tuner's: the best validation accuracy over the
epochs it trained. The figure is Spearman's rank correlation (scipy)
between low-rung and top-rung scores, before and after, over the same
configurations and seeds. Each configuration trains in a fresh process.
Only the validation split is read. Writes `bench/results/rungs-DATASET.json`.
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
# Trials' early-stopping patience (`RunConfig.patience`).
PATIENCE = 3


def _space(data, epochs: int, final_epochs: int = 30):
    """The `dense` space as a default run builds it for its trials, with a schedule spanning `epochs`."""
    import keras_tuner as kt

    import search_spaces
    from search_spaces.base import SpaceContext

    context = SpaceContext.for_dataset(data, epochs=epochs, regularization_floor=epochs < final_epochs)
    space = search_spaces.get("dense")(context)
    declared = kt.HyperParameters()
    space.build(declared)
    return space, declared


def draw_configurations(data, count: int, seed: int, top: int) -> list[dict]:
    """The defaults, then `count - 1` random draws from the space, as Hyperband's first rung draws them."""
    import keras_tuner as kt

    from search_spaces.base import default_values

    _, declared = _space(data, top)
    oracle = kt.oracles.RandomSearchOracle(kt.Objective("val_accuracy", "max"), max_trials=count, seed=seed + 1)
    oracle.update_space(declared)
    drawn = [default_values(declared)]
    while len(drawn) < count:
        values = oracle.populate_space(str(len(drawn)))["values"]
        if values not in drawn:
            drawn.append(values)
    return drawn


def train(data, values: dict, epochs: int, top: int, seed: int) -> dict:
    """Trains `values` for `epochs` with a schedule spanning them; returns its validation curve and seconds."""
    from tuning.final import retraining
    from tuning.training.pipeline import DatasetFeeder

    space, declared = _space(data, epochs)
    hp = declared.copy()
    hp.values = dict(values)
    with tempfile.TemporaryDirectory() as logs:
        retrained = retraining.retrain(space, hp, DatasetFeeder(data), epochs, PATIENCE, seed, Path(logs))
    return {"val_accuracy": retrained.history.get("val_accuracy", []), "seconds": round(retrained.wall_seconds, 1),
            "parameters": int(retrained.model.count_params())}  # fmt: skip


def measure(data, values: dict, low: int, top: int, seed: int) -> dict:
    """One configuration's low-rung scores under the old and the new rule, and its top-rung score."""
    full = train(data, values, top, top, seed)
    short = train(data, values, low, top, seed)
    curve = full["val_accuracy"]
    return {"values": values, "parameters": full["parameters"], "top_score": max(curve),
            "low_score_old": max(curve[:low]), "low_score_new": max(short["val_accuracy"]),
            "top_curve": curve, "seconds": full["seconds"] + short["seconds"]}  # fmt: skip


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="bench.rungs", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--configurations", type=int, default=10)
    parser.add_argument("--low", type=int, default=2)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: configuration K, in a fresh process
    args = parser.parse_args(argv)
    if not 1 <= args.low < args.top or args.configurations < 3:
        parser.error(f"need 1 <= --low < --top and --configurations >= 3, but got low={args.low}, top={args.top}, "
                     f"configurations={args.configurations}")  # fmt: skip
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.one is not None:
        from bench.run import reference
        from tuning.cli.base import quiet_libraries
        from tuning.data.datasets import load_dataset

        quiet_libraries()
        data = load_dataset(reference(args.dataset), args.data_dir)  # a held-out task by its name, as bench.run takes it
        values = draw_configurations(data, args.configurations, args.seed, args.top)[args.one]
        print(json.dumps(measure(data, values, args.low, args.top, args.seed)))
        return 0
    from scipy.stats import spearmanr

    from bench.memory import _commit

    command = "python -m bench.rungs " + " ".join(argv)
    found = []
    for k in range(args.configurations):
        done = subprocess.run([sys.executable, "-m", "bench.rungs", *argv, "--one", str(k)], capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return done.returncode
        found.append(json.loads(done.stdout.strip().splitlines()[-1]))
        last = found[-1]
        print(f"[rungs] {k}: top {last['top_score']:.4f}  low old {last['low_score_old']:.4f}  "
              f"low new {last['low_score_new']:.4f}  ({last['seconds']:.0f}s)", flush=True)  # fmt: skip
    top = [c["top_score"] for c in found]
    before = spearmanr([c["low_score_old"] for c in found], top)
    after = spearmanr([c["low_score_new"] for c in found], top)
    result = {
        "dataset": args.dataset, "low_epochs": args.low, "top_epochs": args.top, "seed": args.seed,
        "spearman_before": float(before.statistic), "spearman_before_p": float(before.pvalue),
        "spearman_after": float(after.statistic), "spearman_after_p": float(after.pvalue),
        "defaults_rank_at_low_before": 1 + sum(c["low_score_old"] > found[0]["low_score_old"] for c in found),
        "defaults_rank_at_low_after": 1 + sum(c["low_score_new"] > found[0]["low_score_new"] for c in found),
        "defaults_rank_at_top": 1 + sum(c["top_score"] > found[0]["top_score"] for c in found),
        "configurations": found, "command": command, "date": time.strftime("%Y-%m-%d"), "commit": _commit(),
    }  # fmt: skip
    (RESULTS / f"rungs-{args.dataset}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "configurations"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
