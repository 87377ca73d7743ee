"""How the share of local moves (`--local-share`) changes a search: the measurement behind its default.

    python -m bench.local_share [--dataset digits] [--shares 0,0.25,0.5,0.75] [--seeds 3] [--trials 30]
                                [--tuner hyperband] [--max-epochs 10] [--data-dir DIR]

Runs `tuning.run DATASET --trials N --local-share S --seed K` for every share
and seed (with a one-epoch, one-seed retraining: only the search is looked
at), then reads the trials Keras Tuner wrote and records, per run: the best
validation score among the trials trained longest, the median score of the
new configurations at the lowest fidelity (how good the proposals are), and
the share of trials within one point of the best. Only validation scores are
read. Writes `bench/results/local-share-DATASET.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

RESULTS = Path(__file__).resolve().parent / "results"


def trial_scores(run_dir: Path) -> list[dict]:
    """`{score, epochs, round}` of every completed trial in a Keras Tuner project."""
    found = []
    for path in sorted(run_dir.glob("trial_*/trial.json")):
        trial = json.loads(path.read_text())
        if trial.get("status") != "COMPLETED" or trial.get("score") is None:
            continue
        values = trial["hyperparameters"]["values"]
        found.append({"score": trial["score"], "epochs": values.get("tuner/epochs"), "round": values.get("tuner/round", 0)})
    return found


def summarize(trials: list[dict]) -> dict:
    """The figures one run is judged by (see the module docstring)."""
    top = max((t["epochs"] or 0) for t in trials)
    best = max(t["score"] for t in trials if (t["epochs"] or 0) == top)
    fresh = [t["score"] for t in trials if not t["round"]]
    return {"trials": len(trials), "best_at_top_fidelity": best, "top_epochs": top,
            "median_new_configuration": statistics.median(fresh),
            "share_within_1pt_of_best": sum(t["score"] >= best - 0.01 for t in trials) / len(trials)}  # fmt: skip


def one_run(args, share: float, seed: int, workdir: Path) -> dict:
    argv = [sys.executable, "-m", "tuning.run", args.dataset, "--trials", str(args.trials), "--tuner", args.tuner,
            "--max-epochs", str(args.max_epochs),
            "--local-share", str(share), "--seed", str(seed), "--final-seeds", "1", "--final-epochs", "1",
            "--name", "run", "--checkpoint-root", str(workdir / "c"), "--log-root", str(workdir / "l")]  # fmt: skip
    argv += ["--data-dir", args.data_dir] if args.data_dir else []
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1:])
    return {"share": share, "seed": seed, "seconds": round(time.monotonic() - started, 1),
            **summarize(trial_scores(workdir / "c" / "run"))}  # fmt: skip


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.local_share", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir")
    parser.add_argument("--tuner", default="hyperband")
    parser.add_argument("--shares", default="0,0.25,0.5,0.75")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--max-epochs", type=int, default=10)
    args = parser.parse_args(argv)
    shares = [float(s) for s in args.shares.split(",") if s]
    command = "python -m bench.local_share " + " ".join(argv if argv is not None else sys.argv[1:])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    runs = []
    for seed in range(args.seeds):
        for share in shares:
            with tempfile.TemporaryDirectory() as tmp:
                run = one_run(args, share, seed, Path(tmp))
            runs.append(run)
            print(f"[local-share] share {share} seed {seed}: {run}", flush=True)
    by_share = {
        str(share): {key: statistics.mean(r[key] for r in runs if r["share"] == share)
                     for key in ("best_at_top_fidelity", "median_new_configuration", "share_within_1pt_of_best")}
        for share in shares
    }  # fmt: skip
    out = RESULTS / f"local-share-{args.dataset}-{args.tuner}.json"
    out.write_text(json.dumps({"command": command, "date": time.strftime("%Y-%m-%d"), "commit": commit,
                               "mean_by_share": by_share, "runs": runs}, indent=1) + "\n")  # fmt: skip
    print(json.dumps(by_share, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
