"""The training overhead of two checkouts, measured in alternation on one machine.

    python -m bench.alternate --before DIR --after DIR --data-dir DIR [--rounds 5]

Runs `python -m bench.run overhead` with each checkout's code (`PYTHONPATH`
and working folder set to it), before, after, before, after, ... for
`--rounds` rounds, so that a machine whose speed drifts slows both alike.
Each run writes its own `overhead.json` into a temporary folder; this module
collects them and writes `bench/results/overhead-alternated.json`: every
run's throughput ratio (a trial's samples/s over a bare `fit`'s) and its
share of trial time outside `fit`, and per checkout the median and the range.
Issue 24's targets are a ratio of at least 0.95 and under 3% outside `fit`.
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

RESULTS = Path(__file__).resolve().parent / "results"
FIELDS = ("throughput_ratio", "outside_fit_fraction", "outside_fit_seconds_per_trial")


def commit(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def overhead_once(tree: Path, data_dir: str) -> dict:
    """One `bench.run overhead` with `tree`'s code; returns its overhead.json."""
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
        argv = [sys.executable, "-m", "bench.run", "overhead", "--data-dir", data_dir, "--results", folder,
                "--readme", str(Path(folder) / "README.md"), "--benchmarks", str(Path(folder) / "benchmarks.md")]  # fmt: skip
        Path(folder, "README.md").write_text("")
        Path(folder, "benchmarks.md").write_text("")
        done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"{tree}: exit {done.returncode}: {done.stderr[-2000:]}")
        return json.loads(Path(folder, "overhead.json").read_text())


def summary(runs: list[dict]) -> dict:
    """Per field: the median, the lowest and the highest over the runs."""
    return {field: {"median": round(statistics.median(r[field] for r in runs), 4),
                    "min": min(r[field] for r in runs), "max": max(r[field] for r in runs)} for field in FIELDS}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.alternate", description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the checkout before the change")
    parser.add_argument("--after", type=Path, required=True, help="the checkout after it")
    parser.add_argument("--data-dir", required=True, help="offline MNIST (mnist.npz)")
    parser.add_argument("--rounds", type=int, default=5, help="before/after pairs (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS / "overhead-alternated.json")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, but got rounds={args.rounds}")
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for round_number in range(args.rounds):
        for side, tree in (("before", args.before), ("after", args.after)):
            found = overhead_once(tree, args.data_dir)
            runs[side].append({"round": round_number, **{f: found[f] for f in FIELDS}})
            print(f"[alternate] round {round_number} {side}: {runs[side][-1]}", flush=True)
    result = {
        "command": "python -m bench.alternate " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"), "before": commit(args.before), "after": commit(args.after),
        "what": "bench.run overhead (MNIST, 2x256 relu, 3 epochs, 3 repeats) with each checkout's code, alternated",
        "targets": {"throughput_ratio": ">= 0.95", "outside_fit_fraction": "< 0.03"},
        "runs": runs, "summary": {side: summary(found) for side, found in runs.items()},
    }  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
