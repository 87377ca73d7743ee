"""A default run of the command line, timed, recorded in `bench/results/default-DATASET-seedS.json`.

    python -m bench.default_run DATASET --data-dir DIR [--seed 0] [--workdir DIR] [--out NAME] [-- EXTRA TUNING.RUN ARGS]

Runs `python -m tuning.run DATASET --data-dir DIR --seed S [EXTRA]` in a fresh
process, in `--workdir` (default: a temporary folder), and records the
dataset, the test accuracy and its interval, the wall time, the command, the
date and the commit, with the run's own key figures from `metrics.json`.
`--out` names the file instead (`budget60-cifar10-seed2.json` for a run given
`-- --time-budget 60`), so runs of the same seed under two budgets both stay.
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


def trial_table(run_dir: Path) -> list[dict]:
    """Every trial of a Keras Tuner project: id, status, score, the epochs it was given, and the trial it continued."""
    table = []
    for path in sorted(run_dir.glob("trial_*/trial.json")):
        trial = json.loads(path.read_text())
        values = trial["hyperparameters"]["values"]
        table.append({"id": trial["trial_id"], "status": trial["status"], "score": trial.get("score"),
                      "epochs": values.get("tuner/epochs"), "parent": values.get("tuner/trial_id")})  # fmt: skip
    return table


def rung_correlation(trials: list[dict]) -> dict:
    """Spearman's correlation between each Hyperband lineage's score at its first rung and at the top rung.

    A lineage is a configuration followed through its promotions; only those
    that reached the top rung (the most epochs any trial was given) count,
    and only those whose first rung was lower.
    """
    from scipy.stats import spearmanr

    by_id = {t["id"]: t for t in trials}
    top = max((t["epochs"] or 0 for t in trials), default=0)
    pairs = []
    for trial in trials:
        if trial["epochs"] != top or trial["parent"] is None or trial["score"] is None:
            continue
        root = trial
        while root["parent"] is not None and root["parent"] in by_id:
            root = by_id[root["parent"]]
        if root["score"] is not None and root["epochs"] < top:
            pairs.append((root["score"], trial["score"], root["epochs"]))
    found = {"top_epochs": top, "lineages": len(pairs), "pairs": pairs}
    if len(pairs) >= 3:
        result = spearmanr([p[0] for p in pairs], [p[1] for p in pairs])
        found.update(spearman=float(result.statistic), p_value=float(result.pvalue))
    return found


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="bench.default_run", description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir")
    parser.add_argument("--out", help="the results file's name; defaults to default-DATASET-seedS.json")
    args = parser.parse_args(own)
    command = ["python", "-m", "tuning.run", args.dataset, "--data-dir", args.data_dir, "--seed", str(args.seed), *extra]
    from bench.memory import _commit
    from tuning.records.metrics import RunMetrics

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, *command[1:]], cwd=workdir, capture_output=True, text=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(RESULTS.parents[1])))  # fmt: skip
        wall = time.monotonic() - started
        (workdir / "stdout.txt").write_text(done.stdout)
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
            return done.returncode
        run_dir = next(p.parent.parent for p in (workdir / "checkpoints").glob("*/best/metrics.json"))
        metrics = RunMetrics.read(run_dir / "best" / "metrics.json")
        winner = json.loads((run_dir / "best" / "hyperparameters.json").read_text())
        trials = trial_table(run_dir)
    final, search = metrics.final, metrics.search
    result = {
        "dataset": args.dataset, "test_accuracy": final.test_accuracy, "test_accuracy_ci95": final.test_accuracy_ci95,
        "wall_seconds": round(wall, 1), "command": " ".join(command), "date": time.strftime("%Y-%m-%d"),
        "commit": _commit(), "seed": args.seed, "val_accuracy": final.val_accuracy, "test_ece": final.test_ece,
        "members": final.members, "member_epochs": [s.get("epochs_planned") for s in final.seeds],
        "seed_test_accuracies": [s["test_accuracy"] for s in final.seeds],
        "search_seconds": search.wall_seconds, "retrain_seconds": final.wall_seconds,
        "trials_by_status": search.trials_by_status, "best_trial": search.best_trial_id,
        "best_trial_val_accuracy": search.best_trial_val_accuracy, "winner": winner,
        "search_paid": search.search_paid, "costly_trial_share": search.costly_trial_share,
        "rung_correlation": rung_correlation(trials), "trials": trials,
        "summary": done.stdout.strip().splitlines()[-16:],
        # what a user read besides the trial lines (the trials are in "trials"): the split, each member's plan
        "printed": [line for line in done.stdout.splitlines() if line.strip() and not line.startswith("trial ")],
    }  # fmt: skip
    out = RESULTS / (args.out or f"default-{args.dataset}-seed{args.seed}.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("dataset", "test_accuracy", "wall_seconds", "commit")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
