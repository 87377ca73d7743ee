"""`python -m tuning.run DATASET [options]`: the command line of the service.

Owns: turning argv into a `RunConfig`, mapping errors to exit codes (0 done,
1 the run failed, 2 bad input, 130 interrupted), keeping TensorFlow and
Keras Tuner quiet, and the closing summary. Contains no ML logic: that is
`tuning.service.run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from tuning.cli import Parser, quiet_libraries, run_command
from tuning.config import RunConfig

PROG = "tuning.run"


def build_parser() -> argparse.ArgumentParser:
    from tuning.datasets import DATASETS  # cheap: numpy only; tuners would start TensorFlow

    parser = Parser(
        prog=PROG,
        description="Tune a dense Keras classifier, retrain the best configuration, "
        "evaluate it once on the test set and export it.",
    )
    parser.add_argument("dataset", metavar="DATASET", help=f"one of: {', '.join(DATASETS.names())}")
    parser.add_argument("--trials", type=int, default=RunConfig.trials, help=f"upper bound on trials, for every tuner; at least 1 (default {RunConfig.trials})")
    parser.add_argument("--tuner", default=RunConfig.tuner, help=f"hyperband, bayesian, random, or Optuna's tpe, cmaes, gp (default {RunConfig.tuner})")
    parser.add_argument("--space", help="a module in search_spaces/ (default: the dataset's default, 'dense')")
    parser.add_argument("--max-epochs", type=int, default=RunConfig.max_epochs, help=f"epochs per trial; Hyperband's top rung; at least 1 (default {RunConfig.max_epochs})")
    parser.add_argument("--patience", type=int, default=RunConfig.patience, help=f"early-stopping patience in epochs; at least 0 (default {RunConfig.patience})")
    parser.add_argument("--batch-size", type=int, help="fixed batch size; at least 1 (default: tuned by the space)")
    parser.add_argument("--data-dir", help="offline data folder (default: $TUNING_DATA_DIR, then download)")
    parser.add_argument("--seed", type=int, help="seed of the trial sequence and the weights, 0 to 2**32 - 1 (default: random, recorded)")
    parser.add_argument("--name", help="run name, a plain folder name of at most 200 bytes (default DATASET-TUNER): checkpoints/RUN and logs/RUN")
    parser.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming RUN")
    parser.add_argument("--final-epochs", type=int, default=RunConfig.final_epochs, help=f"epochs of a full-length retraining member, at least 1; under a time budget members are planned from it, up to twice as long, to fill the time (default {RunConfig.final_epochs})")
    parser.add_argument("--max-failures", type=int, default=RunConfig.max_failures, help=f"failed trials in a row that stop the search; at least 1 (default {RunConfig.max_failures})")
    parser.add_argument("--pruner", help="Optuna tuners only: none, median (default) or hyperband")
    parser.add_argument("--storage", help="Optuna tuners only: storage URL (default sqlite:///checkpoints/RUN/study.db)")
    parser.add_argument("--lr-range", default=RunConfig.lr_range, help="'auto': run the learning-rate range test first and search within its bounds (default off)")
    parser.add_argument("--final-seeds", type=int, help="retrain the best configuration this many times and export the average of their predictions at least 1 (default: as many as the time budget holds, up to 8; 3 with --time-budget none)")
    parser.add_argument("--keep-checkpoints", default=RunConfig.keep_checkpoints, help="trial weights kept on disk: all, best (default) or none")
    parser.add_argument("--mc-passes", type=int, default=RunConfig.mc_passes, help=f"stochastic passes of the MC-dropout evaluation; at least 1 (default {RunConfig.mc_passes})")
    parser.add_argument("--workers", type=int, help="run a chief and N worker processes on this machine, sharing the cores; at least 1 (default: one process)")
    parser.add_argument("--role", help="chief or worker: one process of a search spread over hosts (needs --oracle)")
    parser.add_argument("--oracle", help="HOST:PORT the chief serves on and workers connect to (default with --workers: 127.0.0.1 and a free port)")
    parser.add_argument("--worker-id", help="with --role worker: its name, 1-64 letters, digits, ., _ or -, without 'chief'; restart a dead worker under the same name to retry its trial (default worker-HOST-PID)")
    parser.add_argument("--chief-timeout", type=int, default=RunConfig.chief_timeout, help=f"seconds a worker waits for a silent chief before giving up; at least 1 (default {RunConfig.chief_timeout})")
    parser.add_argument("--threads", type=int, help="TensorFlow CPU threads for this process; at least 1 (default: all cores)")
    parser.add_argument("--recycle-after", type=int, help="with --workers or --role worker: replace a worker process by a fresh one after this many trials, returning its memory; at least 1 (default never)")
    parser.add_argument("--time-budget", type=time_budget, default=RunConfig.time_budget, metavar="MINUTES",
                        help="wall-clock minutes for the whole run, export included, above 0 and at most a week, or 'none' for no limit: the search gets at "
                        "most 60%% (none past its first trial when it cannot afford 4 full trials), the retraining fills the "
                        f"rest with up to 8 members (default {RunConfig.time_budget:g})")  # fmt: skip
    parser.add_argument("--local-share", type=float, default=RunConfig.local_share, help=f"share of new trials, once 4 have finished, that are local moves of the best so far, 0 to 1; 0 leaves them to the tuner (default {RunConfig.local_share})")
    parser.add_argument("--checkpoint-root", default=RunConfig.checkpoint_root, help=f"where runs keep their search state and export: ROOT/RUN (default {RunConfig.checkpoint_root}); on many hosts, a folder every host sees")
    parser.add_argument("--log-root", default=RunConfig.log_root, help=f"where runs keep their TensorBoard logs: ROOT/RUN (default {RunConfig.log_root})")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and library logs")
    return parser


def time_budget(text: str) -> Optional[float]:
    """`--time-budget`'s value: minutes, or None for 'none' (no limit)."""
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be minutes or 'none', but got {text!r}") from None


def parse_config(argv: Sequence[str]) -> tuple[RunConfig, bool]:
    """Parses argv into a validated `RunConfig` and the `--debug` flag."""
    args = build_parser().parse_args(list(argv))
    config = RunConfig(
        dataset=args.dataset,
        tuner=args.tuner,
        trials=args.trials,
        space=args.space,
        max_epochs=args.max_epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        seed=args.seed,
        name=args.name,
        overwrite=args.overwrite,
        final_epochs=args.final_epochs,
        max_failures=args.max_failures,
        mc_passes=args.mc_passes,
        final_seeds=args.final_seeds,
        keep_checkpoints=args.keep_checkpoints,
        lr_range=args.lr_range,
        pruner=args.pruner,
        storage=args.storage,
        role=args.role,
        oracle=args.oracle,
        worker_id=args.worker_id,
        workers=args.workers,
        chief_timeout=args.chief_timeout,
        threads=args.threads,
        recycle_after=args.recycle_after,
        time_budget=args.time_budget,
        local_share=args.local_share,
        checkpoint_root=args.checkpoint_root,
        log_root=args.log_root,
        command=("python", "-m", PROG, *argv),
    )
    return config, args.debug


def summary(result) -> str:
    """The closing lines: best hyperparameters, accuracy, where things are."""
    from tuning.export import calibration_warning, reproducing_command
    from tuning.text import format_values

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
        f"seed {record.seed}; rerun with: {reproducing_command(record)}",
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
        from tuning import service

        result = service.run(config, say=lambda line: print(line, flush=True))
        if isinstance(result, service.WorkerResult):
            print(f"worker {result.worker_id}: ran {result.trials_run} trial(s); the chief retrains and exports")
        else:
            print(summary(result))
        return 0

    return run_command(PROG, body, debug="--debug" in argv,
                       on_interrupt="interrupted; finished trials are saved, rerun the same command to resume")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
