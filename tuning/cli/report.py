"""`python -m tuning.report RUN`: a run's key figures and leaderboard in the terminal.

Owns: reading a run's files (Keras Tuner's `trial_*/trial.json`, the trial
times, the oracle's pruned list and, once it exists, `best/metrics.json`) and
printing them. Reads only, takes no lock, and so works while the run is still
going. Imports neither TensorFlow nor Keras Tuner.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from tuning.cli.base import Parser, run_command
from tuning.errors import UsageError
from tuning.records import trial_times
from tuning.records.metrics import FinalFigures, RunMetrics
from tuning.text import format_values

PROG = "tuning.report"


def read_trials(run_dir: Path) -> list[dict]:
    """Every trial of the run: id, status, score, seconds, hyperparameters."""
    times = trial_times.read_all(run_dir)
    oracle_path = run_dir / "oracle.json"
    pruned = {}
    if oracle_path.exists():
        try:
            pruned = json.loads(oracle_path.read_text()).get("pruned", {})
        except json.JSONDecodeError:  # being rewritten right now; the trials still read
            pruned = {}
    trials = []
    for path in sorted(run_dir.glob("trial_*/trial.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        trial_id = data["trial_id"]
        status = "PRUNED" if trial_id in pruned else data.get("status")
        values = {k: v for k, v in data["hyperparameters"]["values"].items() if not k.startswith("tuner/")}
        trials.append({"id": trial_id, "status": status, "score": data.get("score"),
                       "seconds": times.get(trial_id), "values": values})  # fmt: skip
    return trials


def leaderboard(trials: list[dict], top: int) -> list[str]:
    """The best `top` scored trials as aligned text rows."""
    scored = sorted((t for t in trials if t["score"] is not None), key=lambda t: t["score"], reverse=True)[:top]
    rows = [f"{'rank':>4}  {'trial':>5}  {'status':<9}  {'val_acc':>7}  {'time':>7}  hyperparameters"]
    for rank, t in enumerate(scored, 1):
        seconds = f"{t['seconds']:.1f}s" if t["seconds"] is not None else "-"
        rows.append(f"{rank:>4}  {t['id']:>5}  {t['status']:<9}  {t['score']:>7.4f}  {seconds:>7}  {format_values(t['values'])}")
    return rows


def _what_was_exported(final: FinalFigures) -> str:
    seeds = final.members
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return f"average of {len(seeds)} seeds: {', '.join(str(s) for s in seeds)}"


def key_figures(metrics: RunMetrics) -> list[str]:
    final, search = metrics.final, metrics.search
    low, high = final.test_accuracy_ci95
    val, test = final.val_accuracy_spread, final.test_accuracy_spread
    lines = [
        f"exported: {metrics.run}/best ({_what_was_exported(final)}, {final.parameters:,} parameters)",
        f"test accuracy {final.test_accuracy:.4f} (95% CI {low:.4f}-{high:.4f}), ECE {final.test_ece:.4f}",
        f"validation accuracy {final.val_accuracy:.4f}; search's best trial {search.best_trial_val_accuracy:.4f}",
        f"over {len(final.seeds)} retraining seed(s): test {test['mean']:.4f} ± {test['std']:.4f}, "
        f"validation {val['mean']:.4f} ± {val['std']:.4f}",
    ]
    if final.mc_dropout:
        mc = final.mc_dropout
        lines.append(f"MC dropout ({mc['passes']} passes): test accuracy {mc['accuracy']:.4f}, ECE {mc['ece']:.4f}")
    lines.append(f"search: {search.wall_seconds:.0f}s; retraining {final.wall_seconds:.0f}s")
    return lines


def report(run: str, checkpoint_root: str = "checkpoints", top: int = 10) -> str:
    """The report of run `run` as text."""
    root = Path(checkpoint_root)
    run_dir = root / run
    if not run_dir.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise UsageError(
            f"no run {run!r} in {str(root)!r}; runs there: {', '.join(known) if known else 'none'}"
        )
    trials = read_trials(run_dir)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    metrics_path = run_dir / "best" / "metrics.json"
    state = "finished" if metrics_path.exists() else "in progress (no export yet)"
    lines = [f"run {run}: {state}; {len(trials)} trial(s): "
             + (", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none yet")]  # fmt: skip
    if metrics_path.exists():
        lines += key_figures(RunMetrics.read(metrics_path))
    lines += ["", f"top {min(top, len(trials))} trials by validation accuracy:", *leaderboard(trials, top)]
    return "\n".join(lines)


def build_parser() -> Parser:
    """The command line of `python -m tuning.report`."""
    parser = Parser(prog=PROG, description="Print a run's key figures and its best trials.")
    parser.add_argument("run", metavar="RUN", help="the run name, e.g. mnist-hyperband")
    parser.add_argument("--checkpoint-root", default="checkpoints", help="where the run was kept (default checkpoints)")
    parser.add_argument("--top", type=int, default=10, help="trials in the leaderboard, at least 1 (default 10)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()

    def body() -> int:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
        if args.top < 1:
            raise UsageError(f"--top must be at least 1, but got top={args.top}")
        print(report(args.run, args.checkpoint_root, args.top))
        return 0

    return run_command(PROG, body, debug=False)


if __name__ == "__main__":
    sys.exit(main())
