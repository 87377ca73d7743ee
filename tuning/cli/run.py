"""`python -m tuning.run DATASET [options]`: the command line of the service.

Owns: turning argv into a `RunConfig`, mapping errors to exit codes (0 done,
1 the run failed, 2 bad input, 130 interrupted), keeping TensorFlow and
Keras Tuner quiet, and the closing summary. Contains no ML logic: that is
`tuning.service.tune_and_export`, which this process runs with
`freeze_setup=True` since it does nothing else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from tuning.cli.base import Parser, quiet_libraries, run_command
from tuning.config.options import add_arguments, from_arguments
from tuning.config.run_config import RunConfig
from tuning.text import calibration_warning, format_values

PROG = "tuning.run"


def build_parser() -> argparse.ArgumentParser:
    """The parser of `tuning.run`: one argument per `RunConfig` option (`tuning.config.options`), and `--debug`."""
    parser = Parser(
        prog=PROG,
        description="Tune a dense Keras classifier, retrain the best configuration, "
        "evaluate it once on the test set and export it.",
    )
    add_arguments(parser, RunConfig)
    parser.add_argument("--debug", action="store_true", help="show tracebacks and library logs")
    return parser


def parse_config(argv: Sequence[str]) -> tuple[RunConfig, bool]:
    """Parses argv into a validated `RunConfig` and the `--debug` flag."""
    args = build_parser().parse_args(list(argv))
    return from_arguments(RunConfig, args, command=("python", "-m", PROG, *argv)), args.debug


def summary(result) -> str:
    """The closing lines: best hyperparameters, accuracy, where things are."""
    record = result.record
    final, search = record.final, record.search
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(search.trials_by_status.items()))
    spread = final.test_accuracy_spread
    return "\n".join([
        f"done: {counts} in {search.wall_seconds:.0f}s; retrained in {final.wall_seconds:.0f}s",
        *(["the time budget could not pay for a search, so the defaults were retrained with its time "
           "(a longer --time-budget lets the search run)"] if search.search_paid is False else []),
        f"best: {format_values(result.hyperparameters)}",
        f"validation accuracy {final.val_accuracy:.4f}, test accuracy {final.test_accuracy:.4f} "
        f"(95% CI {final.test_accuracy_ci95[0]:.4f}-{final.test_accuracy_ci95[1]:.4f}, "
        f"ECE {final.test_ece:.4f}; " + (f"average of {len(final.members)} seeds, " if len(final.members) > 1 else "")
        + "tested once after selection)",
        f"over {len(final.seeds)} retraining seed(s): test accuracy {spread['mean']:.4f} ± {spread['std']:.4f}",
        *([f"MC dropout ({mc['passes']} passes): test accuracy {mc['accuracy']:.4f}, ECE {mc['ece']:.4f}"]
          if (mc := final.mc_dropout) else []),
        *([f"learning rate searched in [{b[0]:.2e}, {b[1]:.2e}], the bounds of the range test (--lr-range auto)"]
          if (b := (record.learning_rate_range_test or {}).get("bounds")) else []),
        *([warning] if (warning := calibration_warning(final.test_ece)) else []),
        f"seed {record.seed}; rerun with: {record.reproducing_command()}",
        f"export: {result.export_dir}/model.keras (and saved_model/, metrics.json)",
        f"model card: {result.export_dir}/README.md, with confusion_matrix.png, learning_curves.png and "
        "search_progress.png beside it",
        f"report: python -m tuning.report {record.run}"
        + ("" if (root := result.export_dir.parent.parent) == Path("checkpoints") else f" --checkpoint-root {root}"),
        f"dashboard: tensorboard --logdir {result.log_dir}, then open http://localhost:6006/#hparams "
        "(curves without smoothing: http://localhost:6006/#scalars&_smoothingWeight=0; trials/ and retrain/ runs apart)",
    ])  # fmt: skip


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line and returns its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)

    def body() -> int:
        config, debug = parse_config(argv)
        if not debug:
            quiet_libraries()
        from tuning import service  # the boundary: TensorFlow loads here, after argv was checked

        result = service.tune_and_export(config, say=lambda line: print(line, flush=True), freeze_setup=True)
        if isinstance(result, service.WorkerResult):
            print(f"worker {result.worker_id}: ran {result.trials_run} trial(s); the chief retrains and exports")
        else:
            print(summary(result))
        return 0

    return run_command(PROG, body, debug="--debug" in argv,
                       on_interrupt="interrupted; finished trials are saved, rerun the same command to resume")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
