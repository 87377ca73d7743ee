"""One tuning run from a `RunConfig` to an export: the order of the steps.

Owns: the sequence (check names, load data, lock the run, resume or start
afresh, search, retrain, evaluate once, export) and the `RunResult`. Every
step is someone else's: data (`tuning.datasets`), spaces
(`search_spaces`), tuners (`tuning.tuners`), HParams (`tuning.hparams`),
retraining and the test evaluation (`tuning.evaluate`), files
(`tuning.export`). Nothing under `checkpoints/` changes until the input has
been checked and the data loaded.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

import search_spaces
from search_spaces._optimizers import ANNEALING_SCHEDULES
from search_spaces.base import SpaceContext
from tuning import datasets, trial_times, tuners
from tuning.budget import TimeBudget
from tuning.config import DEFAULT_FINAL_SEEDS, OPTUNA_TUNERS, RunConfig
from tuning.errors import RunError, TuningError, UsageError
from tuning.lock import LOCK_NAME, RunLock

Say = Callable[[str], None]
RUN_FILE = "run.json"


@dataclass(frozen=True)
class WorkerResult:
    """What a worker of a distributed search did.

    Args:
        worker_id: Its name.
        trials_run: Trials it ran to the end (a retried one counts once).
        recycled: It stopped after `--recycle-after` trials, to be replaced.
    """

    worker_id: str
    trials_run: int
    recycled: bool = False


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced.

    Args:
        export_dir: `checkpoints/RUN/best`.
        log_dir: `logs/RUN`.
        metrics: The contents of `metrics.json`.
        hyperparameters: The exported configuration.
    """

    export_dir: Path
    log_dir: Path
    metrics: dict
    hyperparameters: dict


def run(config: RunConfig, say: Say = print) -> RunResult | WorkerResult:
    """Searches, retrains the best configuration, reads the test set after selection, and exports.

    A worker (`role="worker"`) only runs the trials its chief hands out and
    returns a `WorkerResult`; the chief (or the one process) does the rest.

    Args:
        config: The validated run.
        say: Where progress lines go. Defaults to `print`.
    """
    began = time.time()
    space_class = search_spaces.get(config.space_name)
    tuners.TUNERS.get(config.tuner)
    if config.tuner in OPTUNA_TUNERS:
        from tuning import optuna_oracle

        optuna_oracle.PRUNERS.get(config.pruner_name)
        optuna_oracle.SAMPLERS.get(config.tuner)(0)  # gp refuses here when PyTorch is missing
    datasets.DATASETS.get(config.dataset)  # an unknown name raises here, listing the choices
    _check_writable(Path(config.checkpoint_root), "checkpoint")
    _check_writable(Path(config.log_root), "log")
    if config.threads is not None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(config.threads)
        tf.config.threading.set_inter_op_parallelism_threads(config.threads)
    if config.role == "worker":
        return _run_worker(config, space_class, say)
    previous = _previous_run(config)

    started = time.monotonic()
    dataset = datasets.load_dataset(config.dataset, config.data_dir)
    say(
        f"{config.dataset}: {len(dataset.train)} train / {len(dataset.val)} validation / "
        f"{len(dataset.test)} test examples from {dataset.source} ({time.monotonic() - started:.1f}s)"
    )

    # Imported here so that bad input is refused before TensorFlow starts.
    from tuning import evaluate, export, hparams
    from tuning.pipeline import DatasetFeeder

    with RunLock(config.run_dir):
        seed = _choose_seed(config, previous)
        if config.overwrite:
            _clear_run(config)

        feeder = DatasetFeeder(dataset)
        lr_bounds = _learning_rate_bounds(config, dataset, space_class, feeder, seed, previous, say)
        _write_run_file(config, seed, lr_bounds)
        context = SpaceContext.for_dataset(
            dataset, batch_size=config.batch_size, epochs=config.max_epochs, learning_rate_bounds=lr_bounds
        )
        hypermodel = space_class(context)
        budget = None if config.time_budget is None else TimeBudget.of_minutes(config.time_budget, config.final_epochs, began)
        run_end = None if budget is None else budget.end()
        try:
            tuner = tuners.make_tuner(config, hypermodel, feeder, seed, say, budget=budget)
        except (TuningError, KeyboardInterrupt):
            raise
        except Exception as error:  # Keras Tuner builds the default configuration to learn the space
            raise RunError(
                f"search space {config.space_name!r} cannot build its default configuration: "
                f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            ) from error
        finished_before = len(tuner.oracle.end_order)
        if finished_before:
            say(f"resuming {config.run_name}: {finished_before} trial(s) already finished")
        say(f"searching {config.space_name} with {config.tuner}: {tuners.describe_fidelity(tuner.oracle, config.trials, config.max_epochs)}; "
            f"TensorBoard: tensorboard --logdir {config.log_dir}")  # fmt: skip
        if budget is not None:
            say(budget.describe())
        hparams.write_experiment(config.log_dir, tuner.session_table)

        from tuning.callbacks import search_callbacks

        search_started = time.monotonic()
        try:
            if config.role == "chief" or config.workers:
                _search_as_chief(config, tuner, seed, say, budget.start_by if budget else None)
            else:
                tuner.search(
                    epochs=config.max_epochs,
                    callbacks=search_callbacks(config.patience, config.log_dir, budget.stop_at if budget else None),
                    verbose=0,
                )
        except RuntimeError as error:
            if "consecutive failures" not in str(error):
                raise
            last = str(error).strip().splitlines()[-1]
            raise RunError(
                f"stopped after {config.max_failures} failed trials in a row (last: {last}); "
                "raise --max-failures or narrow the search, then rerun to resume"
            ) from None
        search_seconds = time.monotonic() - search_started

        counts = tuners.trial_counts(tuner.oracle)
        if not counts.get("COMPLETED"):
            raise RunError(f"no trial completed ({counts}); see the reasons above")
        best_trial, kept_defaults = tuners.choose_final(tuner.oracle, len(dataset.val))
        if kept_defaults:
            say(kept_defaults)
        best_hp = best_trial.hyperparameters
        times = trial_times.read_all(config.run_dir)
        final_seeds, final_epochs = config.seeds_to_retrain, config.final_epochs
        per_epoch = tuner.seconds_per_epoch(best_trial.trial_id)
        if run_end is not None:
            left = run_end - time.time()
            if per_epoch:
                final_seeds, final_epochs = evaluate.plan_retraining(left, per_epoch, final_epochs, final_seeds)
            else:  # the best trial ran before a resume or on a worker: its epoch time is unknown here
                final_seeds = min(final_seeds, DEFAULT_FINAL_SEEDS)
            say(f"time budget: retraining {final_seeds} seed(s) of up to {final_epochs} epochs "
                f"({per_epoch or float('nan'):.1f}s each) in the {left:.0f}s left")  # fmt: skip
        say(
            f"best trial {best_trial.trial_id}: val_accuracy={best_trial.score:.4f}; "
            f"retraining it with {final_seeds} seed(s)" + (" and exporting their average" if final_seeds > 1 else "")
        )
        say(_retraining_cost(final_seeds, final_epochs, per_epoch, budgeted=run_end is not None))
        # The retraining gets its own context so that a schedule spans all of its epochs, and an
        # annealing schedule runs to its end: its gains come last, where early stopping would cut it.
        final_hypermodel = space_class(replace(context, epochs=final_epochs))
        annealing = best_hp.values.get("lr_schedule") in ANNEALING_SCHEDULES
        final_patience = final_epochs if annealing else config.patience
        retrains = []
        for k in range(final_seeds):
            if k and run_end is not None and time.time() >= run_end:
                say(f"time budget spent: exporting {k} retraining seed(s) instead of {final_seeds}")
                break
            retrained = evaluate.retrain(
                final_hypermodel, best_hp, feeder, final_epochs, final_patience, seed + k, config.log_dir,
                deadline=run_end, say=say,
            )
            val = evaluate.evaluate_split(retrained.model, dataset.val)
            say(f"retrain seed {seed + k}: val_accuracy={val['accuracy']:.4f} after {retrained.epochs_run} epochs "
                f"({retrained.wall_seconds:.0f}s)")  # fmt: skip
            hparams.write_session(
                hparams.retrain_session_dir(config.log_dir, retrained.seed), tuner.session_table, best_hp.values,
                "retraining", hparams.retraining_metrics(retrained.history, retrained.best_epoch,
                                                         retrained.wall_seconds, retrained.model.count_params()),
                group=f"retrain seed {retrained.seed}",
            )  # fmt: skip
            retrains.append((retrained, val))
        # The export averages every retrained seed, so no score chooses among them; the
        # learning curves shown are those of the seed best on validation.
        shown, shown_val = max(retrains, key=lambda pair: pair[1]["accuracy"])
        # What is evaluated is exactly what is saved: the average, without its training-only layers.
        exported = export.inference_model(evaluate.average([retrained.model for retrained, _ in retrains]))
        val = shown_val if len(retrains) == 1 else evaluate.evaluate_split(exported, dataset.val)
        test = evaluate.evaluate_once(exported, dataset.test, mc_passes=config.mc_passes)
        per_seed = []
        for retrained, seed_val in retrains:
            seed_test = test if len(retrains) == 1 else evaluate.evaluate_split(retrained.model, dataset.test)
            per_seed.append({"seed": retrained.seed, "val_accuracy": seed_val["accuracy"],
                             "test_accuracy": seed_test["accuracy"], "epochs_run": retrained.epochs_run})  # fmt: skip
        hparams.write_session(
            config.log_dir / hparams.EXPORT_SESSION, tuner.session_table, best_hp.values, "export",
            {"score": val["accuracy"], "epochs": max(r.epochs_run for r, _ in retrains), "val_loss": val["loss"],
             "seconds": sum(r.wall_seconds for r, _ in retrains), "parameters": exported.count_params(),
             "test_accuracy": test["accuracy"]},
            group="export",
        )  # fmt: skip
        matrix = evaluate.confusion_matrix(exported, dataset.test, dataset.n_classes)
        correct = int(np.trace(matrix))
        val_spread = evaluate.spread([s["val_accuracy"] for s in per_seed])

        ended = [tuner.oracle.trials[t] for t in tuner.oracle.end_order]
        hyperparameters = {k: v for k, v in best_hp.values.items() if not k.startswith("tuner/")}
        metrics = {
            "run": config.run_name,
            "command": " ".join(config.command) or "(called from Python)",
            "seed": seed,
            "dataset": {
                "name": dataset.name,
                "source": dataset.source,
                "sizes": {"train": len(dataset.train), "val": len(dataset.val), "test": len(dataset.test)},
                "input_shape": list(dataset.input_shape),
                "n_classes": dataset.n_classes,
                "class_names": list(dataset.class_names),
                "max_value": datasets.DATASETS.get(dataset.name).max_value,
                "fingerprint": dataset.fingerprint(),
            },
            "search": {
                "tuner": config.tuner,
                "space": config.space_name,
                "max_trials": config.trials,
                "max_epochs": config.max_epochs,
                "fidelity": tuners.describe_fidelity(tuner.oracle, config.trials, config.max_epochs),
                "trial_epochs": _trial_epochs(tuner, ended),
                "time_budget_minutes": config.time_budget,
                "workers": config.workers,
                "optuna": {"pruner": config.pruner_name, "storage": config.storage_url, "study_name": config.run_name}
                if config.tuner in OPTUNA_TUNERS else None,
                "trials_by_status": counts,
                "best_trial_id": best_trial.trial_id,
                "defaults_kept_within_noise": kept_defaults is not None,
                "best_trial_val_accuracy": float(best_trial.score),
                "wall_seconds": round(search_seconds, 2),
                "mean_trial_seconds": round(sum(times.values()) / len(times), 2) if times else None,
            },
            "final": {
                "members": [retrained.seed for retrained, _ in retrains],
                "curves_seed": shown.seed,
                "val_accuracy": val["accuracy"],
                "val_loss": val["loss"],
                "test_accuracy": test["accuracy"],
                "test_loss": test["loss"],
                "test_accuracy_ci95": list(evaluate.wilson_interval(correct, int(matrix.sum()))),
                "test_ece": test["ece"],
                "mc_dropout": test["mc_dropout"],
                "seeds": per_seed,
                "val_accuracy_spread": val_spread,
                "test_accuracy_spread": evaluate.spread([s["test_accuracy"] for s in per_seed]),
                "search_validation_gap": float(best_trial.score) - val_spread["mean"],
                "epoch_budget": final_epochs,
                "epochs_run": shown.epochs_run,
                "best_epoch": shown.best_epoch,
                "parameters": int(exported.count_params()),
                "wall_seconds": round(sum(r.wall_seconds for r, _ in retrains), 2),
                "history": shown.history,
            },
            "learning_rate_range_test": None if lr_bounds is None else {"bounds": list(lr_bounds)},
            "machine": machine(),
            "versions": _versions(),
        }
        figures = export.Figures(
            confusion=matrix,
            class_names=list(dataset.class_names),
            history=shown.history,
            best_epoch=shown.best_epoch,
            trial_scores=[t.score if t.status == "COMPLETED" else None for t in ended],
            trial_seconds=[times.get(t.trial_id, 0.0) for t in ended],
        )
        export_dir = export.write_export(config.export_dir, exported, hyperparameters, metrics, figures)
    return RunResult(export_dir, config.log_dir, metrics, hyperparameters)


def _trial_epochs(tuner, ended: list) -> dict | None:
    """The fewest and most epochs the ended trials trained (counted in this process, else as planned)."""
    counts = [tuner.epochs_trained.get(t.trial_id) or t.hyperparameters.values.get("tuner/epochs") for t in ended]
    counts = [int(c) for c in counts if c]
    return {"min": min(counts), "max": max(counts)} if counts else None


def _retraining_cost(seeds: int, epochs: int, per_epoch: float | None, budgeted: bool) -> str:
    """What the retraining will cost, said before it starts, and how to make it cheaper."""
    if per_epoch is None:
        return f"retraining: {seeds} × up to {epochs} epochs (epoch time unknown in this process)"
    minutes = seeds * epochs * per_epoch / 60
    line = f"retraining: {seeds} × up to {epochs} epochs at {per_epoch:.1f}s an epoch, about {minutes:.1f} min"
    if minutes > 2 and not budgeted:
        line += "; for a quicker look pass --final-seeds 1 --final-epochs 5, or --time-budget MINUTES"
    return line


def _search_as_chief(config: RunConfig, tuner, seed: int, say: Say, start_by: Callable[[], float] | None) -> None:
    """Serves the search to workers (started here with `--workers`), then tidies the checkpoints."""
    from tuning import distributed

    host, port = config.oracle_address()
    if port == 0:
        port = distributed.free_port(host)
    distributed.set_tuner_environment(distributed.CHIEF_ID, host, port)
    pool = distributed.WorkerPool(config, seed, host, port, say) if config.workers else None
    if pool is None:
        say(f"chief serving on {host}:{port}; start workers with --role worker --oracle {host}:{port}")
    distributed.serve(tuner, host, port, say, config.trials, pool, start_by=start_by)
    tuner.oracle._check_consecutive_failures()
    tuner._drop_checkpoints()  # workers leave this to the chief, which knows every trial


def _run_worker(config: RunConfig, space_class, say: Say) -> WorkerResult:
    """One worker of a distributed search: the chief's run file, the data, then trials until told to stop."""
    from tuning import distributed

    distributed.wait_for_run_file(config.run_dir / RUN_FILE, config.chief_timeout, say)
    previous = _previous_run(config)
    seed = int(previous["seed"])
    if config.seed is not None and config.seed != seed:
        raise UsageError(f"--seed must match the chief's seed {seed}, but got seed={config.seed}; drop --seed on workers")
    lr_bounds = previous.get("learning_rate_bounds")
    dataset = datasets.load_dataset(config.dataset, config.data_dir)
    from tuning.callbacks import search_callbacks
    from tuning.pipeline import DatasetFeeder

    worker_id = config.worker_name
    with RunLock(config.run_dir, name=f".worker-{worker_id}.lock"):
        context = SpaceContext.for_dataset(
            dataset, batch_size=config.batch_size, epochs=config.max_epochs,
            learning_rate_bounds=tuple(lr_bounds) if lr_bounds else None,
        )  # fmt: skip
        host, port = config.oracle_address()
        distributed.set_tuner_environment(worker_id, host, port)
        distributed.set_chief_timeout(config.chief_timeout)
        tuner = tuners.make_tuner(config, space_class(context), DatasetFeeder(dataset), seed, say)
        say(f"asking the chief at {host}:{port} for trials")
        result = distributed.work(
            tuner, config,
            epochs=config.max_epochs, callbacks=search_callbacks(config.patience, config.log_dir), verbose=0,
        )  # fmt: skip
    return WorkerResult(worker_id, *result)


def _check_writable(root: Path, what: str) -> None:
    probe = root
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write the {what} directory {str(root)!r}: {str(probe)!r} is not writable")


def _previous_run(config: RunConfig) -> dict | None:
    """The run file of an existing RUN, after checking that this config may resume it."""
    path = config.run_dir / RUN_FILE
    if not path.exists():
        return None
    try:
        previous = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(f"{path} is unreadable ({error}); rerun with --overwrite to start afresh") from None
    if config.overwrite:
        return previous
    mismatched = {
        k: (previous.get("identity", {}).get(k), v)
        for k, v in config.identity().items()
        if previous.get("identity", {}).get(k) != v
    }
    if mismatched:
        detail = ", ".join(f"{k} was {old!r}, now {new!r}" for k, (old, new) in mismatched.items())
        if config.role == "worker":
            raise UsageError(f"this worker's settings differ from the chief's ({detail}); give it the chief's options")
        raise UsageError(
            f"run {config.run_name!r} exists with other settings ({detail}); "
            "pass --overwrite to start afresh or --name for a new run"
        )
    return previous


def _choose_seed(config: RunConfig, previous: dict | None) -> int:
    if config.seed is not None:
        return config.seed
    if previous is not None and not config.overwrite and "seed" in previous:
        return int(previous["seed"])  # a resumed run keeps the seed it started with
    return secrets.randbelow(2**31)


def _clear_run(config: RunConfig) -> None:
    for entry in config.run_dir.iterdir():
        if entry.name == LOCK_NAME:
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.rmtree(config.log_dir, ignore_errors=True)


def _write_run_file(config: RunConfig, seed: int, lr_bounds: tuple[float, float] | None) -> None:
    path = config.run_dir / RUN_FILE
    tmp = path.with_suffix(".tmp")
    record = {"identity": config.identity(), "seed": seed, "learning_rate_bounds": lr_bounds}
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)


def _learning_rate_bounds(config, dataset, space_class, feeder, seed, previous, say) -> tuple[float, float] | None:
    """With `--lr-range auto`, the bounds from a range test (or the ones a resumed run found)."""
    if config.lr_range != "auto":
        return None
    if previous is not None and not config.overwrite and previous.get("learning_rate_bounds"):
        low, high = previous["learning_rate_bounds"]
        say(f"learning-rate range test: reusing bounds {low:.2e} to {high:.2e} from the first run")
        return (low, high)
    from tuning import lr_range

    probe = space_class(SpaceContext.for_dataset(dataset, batch_size=config.batch_size, epochs=config.max_epochs))
    result, _ = lr_range.space_range_test(probe, feeder.train, {}, seed=seed)
    lr_range.write_outputs(result, config.log_dir / "lr_range", f"{config.run_name}: learning-rate range test")
    say(
        f"learning-rate range test: lowest loss at {result.best:.2e}, suggested {result.suggested:.2e}; "
        f"searching learning_rate in [{result.bounds[0]:.2e}, {result.bounds[1]:.2e}] "
        f"(plot: {config.log_dir / 'lr_range' / 'lr_range.png'})"
    )
    return result.bounds


def machine() -> dict:
    """The processor, core count and any GPUs TensorFlow sees."""
    processor = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import tensorflow as tf

    gpus = [gpu.name for gpu in tf.config.list_physical_devices("GPU")]
    return {"processor": processor, "cpu_count": os.cpu_count(), "gpus": gpus}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("tensorflow", "tensorflow-cpu", "keras", "keras-tuner", "optuna", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found
