"""Whether two checkouts give the same run: the same trials, scores, members and exported predictions for one seed.

    python -m bench.same_run --before DIR --after DIR [--out bench/results/same-run-digits.json]

Runs `python -m tuning.run ARGS` once with each checkout's code (`PYTHONPATH`),
each in a fresh folder, with no time budget (a budget makes a run depend on
the clock), and compares what the runs wrote: every trial's hyperparameters,
status and score (`checkpoints/RUN/trial_*/trial.json`), each retraining
member's validation and test accuracy (`metrics.json`), and the exported
model's predictions on 200 digits images. Reads files only, so both checkouts
may differ in everything but the file layout. A refactor that claims to keep
behaviour shows it here.
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
RUNS = {
    "hyperband": ["digits", "--tuner", "hyperband", "--trials", "8", "--max-epochs", "4", "--seed", "7",
                  "--final-seeds", "2", "--final-epochs", "3", "--time-budget", "none"],
    "tpe": ["digits", "--tuner", "tpe", "--trials", "6", "--max-epochs", "3", "--seed", "7",
            "--final-seeds", "1", "--final-epochs", "3", "--time-budget", "none"],
}  # fmt: skip


def commit(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def run_once(tree: Path, argv: list[str]) -> dict:
    """Runs one checkout's `tuning.run`; returns its trials, members and the exported model's test predictions."""
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("TUNING_DATA_DIR", None)
        where = subprocess.run([sys.executable, "-c", "import tuning, search_spaces; print(tuning.__file__, search_spaces.__file__)"],
                               cwd=folder, env=env, capture_output=True, text=True).stdout.split()  # fmt: skip
        if not where or not all(Path(p).resolve().is_relative_to(tree.resolve()) for p in where):
            raise RuntimeError(f"PYTHONPATH={tree} does not win over the installed package: {where}")
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "tuning.run", *argv], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=1800)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{tree}: exit {done.returncode}: {done.stderr[-2000:]}")
        run_dir = next((Path(folder) / "checkpoints").iterdir())
        return {"seconds": round(time.monotonic() - started, 1), "trials": _trials(run_dir),
                **_members(run_dir), "predictions": _predictions(run_dir)}  # fmt: skip


def _trials(run_dir: Path) -> list[dict]:
    found = []
    for path in sorted(run_dir.glob("trial_*/trial.json")):
        trial = json.loads(path.read_text())
        values = {k: v for k, v in trial["hyperparameters"]["values"].items()}
        found.append({"id": trial["trial_id"], "status": trial["status"], "score": trial["score"], "values": values})
    return found


def _members(run_dir: Path) -> dict:
    final = json.loads((run_dir / "best" / "metrics.json").read_text())["final"]
    return {"members": [{k: s[k] for k in ("seed", "val_accuracy", "test_accuracy", "epochs_run")} for s in final["seeds"]],
            "test_accuracy": final["test_accuracy"]}  # fmt: skip


def _predictions(run_dir: Path) -> list[list[float]]:
    """The exported model's class probabilities on 200 digits images, as a plain `keras.models.load_model` gives them."""
    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    metrics = json.loads((run_dir / "best" / "metrics.json").read_text())
    images, _ = load_digits(return_X_y=True)
    model = keras.models.load_model(run_dir / "best" / "model.keras")
    scaled = (images.reshape(-1, 8, 8) / metrics["dataset"]["max_value"]).astype("float32")
    return np.round(model.predict(scaled[:200], verbose=0), 6).tolist()


def compare(before: dict, after: dict) -> dict:
    """What differs between two runs' records, field by field."""
    import numpy as np

    gap = float(np.max(np.abs(np.array(before["predictions"]) - np.array(after["predictions"]))))
    return {"same_trials": before["trials"] == after["trials"], "same_members": before["members"] == after["members"],
            "same_test_accuracy": before["test_accuracy"] == after["test_accuracy"],
            "largest_prediction_difference": gap, "trials": len(after["trials"])}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.same_run", description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the checkout before the change")
    parser.add_argument("--after", type=Path, required=True, help="the checkout after it")
    parser.add_argument("--out", type=Path, default=RESULTS / "same-run-digits.json")
    args = parser.parse_args(argv)
    result = {"command": "python -m bench.same_run " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d"), "before": commit(args.before), "after": commit(args.after), "runs": {}}  # fmt: skip
    for name, run_argv in RUNS.items():
        before, after = run_once(args.before, run_argv), run_once(args.after, run_argv)
        result["runs"][name] = {"argv": run_argv, **compare(before, after),
                                "seconds": {"before": before["seconds"], "after": after["seconds"]}}  # fmt: skip
        print(f"[same_run] {name}: {result['runs'][name]}", flush=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
