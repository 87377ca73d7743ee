"""One tuning run from a `RunConfig` to an export: the order of the steps.

Owns: the sequence (check the input, load data, lock the run, resume or start
afresh, search, retrain, evaluate once, export), turning the `RunConfig`
into the search's `SearchPlan` and a worker's `WorkerSpec`, and the
`RunResult`. Each step is someone else's: data (`tuning.datasets`), the files
of a run (`tuning.run_files`), spaces (`search_spaces`), the search
(`tuning.search`, a worker's side too), HParams (`tuning.hparams`),
retraining and the test evaluation (`tuning.evaluate`), the record
(`tuning.metrics`) and the files of the export (`tuning.export`). Nothing
under `checkpoints/` changes until the input has been checked and the data
loaded.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

import search_spaces
from search_spaces._optimizers import ANNEALING_SCHEDULES
from search_spaces.base import SpaceContext
from tuning import datasets, distributed, evaluate, events, export, hparams, lr_range, optuna_oracle, search, tuners
from tuning.budget import TimeBudget
from tuning.config import RunConfig
from tuning.errors import UsageError
from tuning.events import Listener, Say
from tuning.lock import RunLock
from tuning.metrics import DatasetFigures, FinalFigures, RunMetrics, SearchFigures, machine, versions
from tuning.pipeline import DatasetFeeder
from tuning.plan import WorkerSpec, WorkerTemplate
from tuning.run_files import choose_seed
from tuning.search import WorkerResult


__all__ = ["run", "RunResult", "WorkerResult", "search_plan"]


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced.

    Args:
        export_dir: `checkpoints/RUN/best`.
        log_dir: `logs/RUN`.
        record: The typed contents of `metrics.json`.
        hyperparameters: The exported configuration.
    """

    export_dir: Path
    log_dir: Path
    record: RunMetrics
    hyperparameters: dict

    @property
    def metrics(self) -> dict:
        """`metrics.json` as a dict, as it reads from the file."""
        return self.record.to_dict()


def run(config: RunConfig, say: Say = print, listen: Listener | None = None) -> RunResult | WorkerResult:
    """Searches, retrains the best configuration, reads the test set after selection, and exports.

    A worker (`role="worker"`) only runs the trials its chief hands out and
    returns a `WorkerResult`; the chief (or the one process) does the rest.

    Args:
        config: The validated run.
        say: Where progress lines go. Defaults to `print`.
        listen: Receives the run's events (`tuning.events`) as they happen. Defaults to None.
    """
    began = time.time()
    space_class = _preflight(config)
    if config.role == "worker":
        return search.join(worker_spec(config, began), say)
    files = config.files
    previous = files.previous(config.identity(), config.overwrite)
    dataset = _load(config, say)
    with RunLock(files.run_dir):
        seed = choose_seed(config.seed, previous, config.overwrite)
        if config.overwrite:
            files.clear()
        listen = events.fan_out(events.JsonLinesLog(files.log_dir / events.EVENTS_FILE), listen)
        feeder = DatasetFeeder(dataset)
        lr_bounds = _learning_rate_bounds(config, dataset, space_class, feeder, seed, previous, say)
        plan = search_plan(config, began)
        say(_budget_line(config, plan))
        files.write(config.identity(), seed, lr_bounds, budget_began=plan.budget.began if plan.budget else None)
        context = SpaceContext.for_dataset(
            dataset, batch_size=config.batch_size, epochs=config.max_epochs, learning_rate_bounds=lr_bounds,
            regularization_floor=config.regularization_floor,
        )  # fmt: skip
        outcome = _timed_search(config, plan, space_class(context), feeder, seed, previous, lr_bounds, say, listen)
        retrains, epochs = _retrain(config, plan, outcome, space_class, context, feeder, dataset, seed, say, listen)
        finishing = time.monotonic()
        assessed = _assess(config, retrains, epochs, dataset, outcome)
        record = _record(config, seed, dataset, outcome, assessed, lr_bounds)
        hyperparameters = {k: v for k, v in outcome.hyperparameters.values.items() if not k.startswith("tuner/")}
        figures = export.Figures(
            confusion=assessed.matrix, class_names=list(dataset.class_names), history=assessed.shown.history,
            best_epoch=assessed.shown.best_epoch, trial_scores=outcome.trial_scores, trial_seconds=outcome.trial_seconds,
        )  # fmt: skip
        export_dir = export.write_export(files.export_dir, assessed.model, hyperparameters, record, figures)
        listen(events.Exported(str(export_dir), assessed.test["accuracy"], time.time()))
        say(f"tested and exported in {time.monotonic() - finishing:.1f}s; {time.time() - began:.0f}s since the run began")
    return RunResult(export_dir, files.log_dir, record, hyperparameters)


def _timed_search(config, plan, hypermodel, feeder, seed: int, previous, lr_bounds, say: Say,
                  listen: Listener | None = None) -> search.SearchOutcome:  # fmt: skip
    """Runs the search; its wall time, summed over every process that searched, goes to `run.json`.

    A process stopped by an error or Ctrl-C still adds its time; one killed
    outright (SIGKILL, power loss) cannot, and its time is missing from the sum.
    """
    earlier = float((previous or {}).get("search_seconds", 0.0)) if not config.overwrite else 0.0
    started = time.monotonic()

    def record(total: float) -> None:
        config.files.write(config.identity(), seed, lr_bounds, search_seconds=total,
                           budget_began=plan.budget.began if plan.budget else None)  # fmt: skip

    try:
        outcome = search.run_search(plan, hypermodel, feeder, seed, say, listen)
    except BaseException:
        record(earlier + time.monotonic() - started)
        raise
    outcome = replace(outcome, wall_seconds=earlier + outcome.wall_seconds)
    record(outcome.wall_seconds)
    return outcome


def search_plan(config: RunConfig, began: float) -> search.SearchPlan:
    """The search part of a run's configuration, as `tuning.search` takes it."""
    host, port = config.oracle_address()
    role = config.role or ("chief" if config.workers else "local")
    budget = None if config.time_budget is None else TimeBudget.of_minutes(
        config.time_budget, config.final_epochs, config.max_epochs, began)
    return search.SearchPlan(
        tuner=config.tuner, trials=config.trials, max_epochs=config.max_epochs, patience=config.patience,
        max_failures=config.max_failures, keep_checkpoints=config.keep_checkpoints, local_share=config.local_share,
        files=config.files, study_name=config.run_name, space=config.space_name, pruner=config.pruner_name,
        storage_url=config.storage, role=role, oracle_host=host, oracle_port=port, workers=config.workers,
        worker_id=config.worker_name if role == "worker" else None, chief_timeout=config.chief_timeout,
        recycle_after=config.recycle_after, budget=budget, worker_template=worker_template(config) if config.workers else None,
    )  # fmt: skip


def worker_template(config: RunConfig) -> WorkerTemplate:
    """What a worker needs besides its plan to rebuild this run's data and space."""
    return WorkerTemplate(dataset=config.dataset, space=config.space_name, identity=config.identity(),
                          data_dir=config.data_dir, batch_size=config.batch_size)  # fmt: skip


def worker_spec(config: RunConfig, began: float) -> WorkerSpec:
    """What `--role worker` needs: the plan, the data, the space, and what it must share with its chief."""
    return WorkerSpec(search_plan(config, began), worker_template(config), seed=config.seed, threads=config.threads)


def _preflight(config: RunConfig):
    """Every name and folder checked before anything is touched; returns the space's class."""
    space_class = search_spaces.get(config.space_name)
    tuners.TUNERS.get(config.tuner)
    if config.tuner in optuna_oracle.SAMPLERS.names():
        optuna_oracle.PRUNERS.get(config.pruner_name)
        optuna_oracle.SAMPLERS.get(config.tuner)(0)  # gp refuses here when PyTorch is missing
    datasets.DATASETS.get(config.dataset)  # an unknown name raises here, listing the choices
    _check_writable(Path(config.checkpoint_root), "checkpoint")
    _check_writable(Path(config.log_root), "log")
    _check_writable(config.run_dir, "run")
    if config.role != "worker":  # a busy run is refused now, not after the data has loaded
        RunLock(config.run_dir).check_free()
    if config.role == "worker" or config.workers or config.role == "chief":
        distributed.check_address(*config.oracle_address(), serve=config.role != "worker")
    if config.storage is not None and config.tuner in optuna_oracle.SAMPLERS.names():
        optuna_oracle.open_storage(config.storage)  # an unreachable server is refused before anything is touched
    if config.threads is not None and config.role != "worker":  # a worker sets its own (`tuning.search.join`)
        tf.config.threading.set_intra_op_parallelism_threads(config.threads)
        tf.config.threading.set_inter_op_parallelism_threads(config.threads)
    return space_class


def _load(config: RunConfig, say: Say) -> datasets.Dataset:
    started = time.monotonic()
    dataset = datasets.load_dataset(config.dataset, config.data_dir)
    say(
        f"{config.dataset}: {len(dataset.train)} train / {len(dataset.val)} validation / "
        f"{len(dataset.test)} test examples from {dataset.source} ({time.monotonic() - started:.1f}s)"
    )
    return dataset


def _announce_retraining(config: RunConfig, plan: search.SearchPlan, outcome: search.SearchOutcome, say: Say) -> None:
    """Says what is retrained, how many members, and what it will cost."""
    seeds, epochs, per_epoch = config.seeds_to_retrain, config.final_epochs, outcome.seconds_per_epoch
    if outcome.search_paid is False:
        say("time budget: the search could not afford enough trials to pay for itself; the retraining gets its time")
    members = f"up to {seeds} members" if plan.budget is not None else f"{seeds} seed(s)"
    say(f"best trial {outcome.trial.trial_id}: val_accuracy={outcome.score:.4f}; retraining it with {members}"
        + (" and exporting their average" if seeds > 1 else ""))  # fmt: skip
    if plan.budget is not None:
        say(f"time budget: the retraining fills the {plan.budget.end() - time.time():.0f}s left, less the test evaluation "
            f"and export, with members of {epochs} epochs stretched up to {evaluate.MAX_STRETCH * epochs} "
            f"({per_epoch or float('nan'):.1f}s an epoch), each planned when it starts")  # fmt: skip
    else:
        say(_retraining_cost(seeds, epochs, per_epoch, budgeted=False))


def _retrain(config, plan, outcome, space_class, context, feeder, dataset, seed: int,
             say: Say, listen=None) -> tuple[list[tuple[Any, dict]], int]:  # fmt: skip
    """Retrains the chosen configuration member after member; each member is an HParams session.

    Without a time budget, `seeds_to_retrain` members of `--final-epochs`.
    Under one, each member's epochs are planned when it starts, from the time
    left and the times measured so far (`evaluate.MemberPlanner`); its
    schedule spans its own epochs.

    Returns the retrained members with their validation scores, and the most epochs one was given.
    """
    _announce_retraining(config, plan, outcome, say)
    hp = outcome.hyperparameters
    annealing = hp.values.get("lr_schedule") in ANNEALING_SCHEDULES
    planner = None if plan.budget is None else evaluate.MemberPlanner(
        end=plan.budget.end(), full_epochs=config.final_epochs, cap=config.seeds_to_retrain, mc_passes=config.mc_passes,
        test_per_validation=len(dataset.test) / max(1, len(dataset.val)), seconds_per_epoch=outcome.seconds_per_epoch,
    )  # fmt: skip
    retrains: list[tuple[Any, dict]] = []
    while True:
        k = len(retrains)
        epochs = (config.final_epochs if k < config.seeds_to_retrain else None) if planner is None else planner.next_epochs()
        if epochs is None:
            break
        started = time.monotonic()
        if planner is not None:
            say(f"time budget: member {k + 1} (seed {seed + k}) trains {epochs} epochs "
                f"in the {plan.budget.end() - time.time():.0f}s left")  # fmt: skip
        # A schedule spans all of the member's epochs, and an annealing schedule runs to its
        # end: its gains come last, where early stopping would cut it. Under a budget every
        # member trains its planned epochs: the time is already its, and the best epoch is kept.
        hypermodel = space_class(replace(context, epochs=epochs))
        most = evaluate.MAX_STRETCH * config.final_epochs
        patience = most if planner is not None else (epochs if annealing else config.patience)
        replan = None if planner is None else _member_replan(planner, k, epochs, most, dataset.val, say)
        retrained = evaluate.retrain(hypermodel, hp, feeder, epochs, patience, seed + k, config.log_dir,
                                     deadline=planner.deadline if planner else None, say=say, listen=listen,
                                     replan=replan)  # fmt: skip
        val = evaluate.evaluate_split(retrained.model, dataset.val)
        if planner is not None:
            passes = evaluate.time_passes(retrained.model, dataset.val)
            planner.record(retrained, time.monotonic() - started, passes)
        say(f"retrain seed {seed + k}: val_accuracy={val['accuracy']:.4f} after {retrained.epochs_run} epochs "
            f"({retrained.wall_seconds:.0f}s)")  # fmt: skip
        hparams.write_session(
            hparams.retrain_session_dir(config.log_dir, retrained.seed), outcome.session_table, hp.values, "retraining",
            hparams.retraining_metrics(retrained.history, retrained.best_epoch, retrained.wall_seconds,
                                       retrained.model.count_params()),
            group=f"retrain seed {retrained.seed}",
        )  # fmt: skip
        retrains.append((retrained, val))
        if listen is not None:
            listen(events.MemberEnded(retrained.seed, retrained.epochs_run, retrained.epochs_planned, val["accuracy"],
                                      retrained.wall_seconds, time.time()))  # fmt: skip
    if planner is not None and len(retrains) < config.seeds_to_retrain:
        say(f"time budget: {len(retrains)} member(s) retrained; another would not finish in time")
    return retrains, max(r.epochs_planned for r, _ in retrains)


def _member_replan(planner: evaluate.MemberPlanner, k: int, epochs: int, most: int, val: datasets.Split,
                   say: Say) -> evaluate.Replan:  # fmt: skip
    """Plans member `k` again from its own epochs: it was planned from the trial's or the last member's, or from none.

    Its passes over the validation split are timed then too, so that its
    deadline keeps the test evaluation's measured time, not a guess.
    """
    started = time.time()

    def replanned(model: Any, seconds_per_epoch: float, epochs_done: int) -> int:
        evaluate.evaluate_split(model, val)  # traces the predict function, as the member's score would
        planned = planner.replan(started, seconds_per_epoch, epochs_done, evaluate.time_passes(model, val))
        if planned != epochs:
            say(f"time budget: member {k + 1} now trains {planned} epochs, planned again at its own "
                f"{seconds_per_epoch:.2f}s an epoch")  # fmt: skip
        return planned

    return evaluate.Replan(replanned, most)


@dataclass(frozen=True)
class _Assessment:
    """The exported model and its one evaluation on the test set."""

    model: Any
    shown: Any  # the retraining whose curves the card shows: the seed best on validation
    val: dict
    test: dict
    per_seed: list
    matrix: np.ndarray
    epoch_budget: int
    wall_seconds: float


def _assess(config: RunConfig, retrains: list, epoch_budget: int, dataset, outcome: search.SearchOutcome) -> _Assessment:
    """Averages the retrained seeds into the export, then reads the test set, once."""
    # The export averages every retrained seed, so no score chooses among them.
    shown, shown_val = max(retrains, key=lambda pair: pair[1]["accuracy"])
    # What is evaluated is exactly what is saved: the average, without its training-only layers.
    exported = export.inference_model(evaluate.average([retrained.model for retrained, _ in retrains]))
    val = shown_val if len(retrains) == 1 else evaluate.evaluate_split(exported, dataset.val)
    test = evaluate.evaluate_once(exported, dataset.test, mc_passes=config.mc_passes)
    per_seed = []
    for retrained, seed_val in retrains:
        seed_test = test if len(retrains) == 1 else evaluate.evaluate_split(retrained.model, dataset.test)
        per_seed.append({"seed": retrained.seed, "val_accuracy": seed_val["accuracy"], "test_accuracy": seed_test["accuracy"],
                         "epochs_run": retrained.epochs_run, "epochs_planned": retrained.epochs_planned})  # fmt: skip
    wall = sum(r.wall_seconds for r, _ in retrains)
    hparams.write_session(
        config.log_dir / hparams.EXPORT_SESSION, outcome.session_table, outcome.hyperparameters.values, "export",
        {"score": val["accuracy"], "epochs": max(r.epochs_run for r, _ in retrains), "val_loss": val["loss"], "seconds": wall,
         "parameters": exported.count_params(), "test_accuracy": test["accuracy"]},
        group="export",
    )  # fmt: skip
    matrix = evaluate.confusion_matrix(exported, dataset.test, dataset.n_classes)
    return _Assessment(exported, shown, val, test, per_seed, matrix, epoch_budget, wall)


def _record(config: RunConfig, seed: int, dataset, outcome: search.SearchOutcome, assessed: _Assessment,
            lr_bounds) -> RunMetrics:  # fmt: skip
    """The run's figures, as `metrics.json` holds them."""
    final = assessed
    val_spread = evaluate.spread([s["val_accuracy"] for s in final.per_seed])
    optuna = ({"pruner": config.pruner_name, "storage": config.storage_url, "study_name": config.run_name}
              if config.tuner in optuna_oracle.SAMPLERS.names() else None)  # fmt: skip
    return RunMetrics(
        run=config.run_name, command=" ".join(config.command) or "(called from Python)", seed=seed,
        dataset=DatasetFigures(
            name=dataset.name, source=dataset.source, input_shape=list(dataset.input_shape),
            sizes={"train": len(dataset.train), "val": len(dataset.val), "test": len(dataset.test)},
            n_classes=dataset.n_classes, class_names=list(dataset.class_names),
            max_value=datasets.DATASETS.get(dataset.name).max_value, fingerprint=dataset.fingerprint(),
        ),
        search=SearchFigures(
            tuner=config.tuner, space=config.space_name, max_trials=config.trials, max_epochs=config.max_epochs,
            fidelity=outcome.fidelity, trial_epochs=outcome.trial_epochs, time_budget_minutes=config.time_budget,
            workers=config.workers, optuna=optuna, trials_by_status=outcome.counts,
            best_trial_id=outcome.trial.trial_id, defaults_kept_within_noise=outcome.kept_defaults is not None,
            best_trial_val_accuracy=outcome.score, wall_seconds=round(outcome.wall_seconds, 2),
            mean_trial_seconds=outcome.mean_trial_seconds,
            search_paid=outcome.search_paid, costly_trial_share=outcome.costly_share,
        ),
        final=FinalFigures(
            members=[s["seed"] for s in final.per_seed], curves_seed=final.shown.seed,
            val_accuracy=final.val["accuracy"], val_loss=final.val["loss"],
            test_accuracy=final.test["accuracy"], test_loss=final.test["loss"],
            test_accuracy_ci95=list(evaluate.wilson_interval(int(np.trace(final.matrix)), int(final.matrix.sum()))),
            test_ece=final.test["ece"], mc_dropout=final.test["mc_dropout"], seeds=final.per_seed,
            val_accuracy_spread=val_spread,
            test_accuracy_spread=evaluate.spread([s["test_accuracy"] for s in final.per_seed]),
            search_validation_gap=outcome.score - val_spread["mean"], epoch_budget=final.epoch_budget,
            epochs_run=final.shown.epochs_run, best_epoch=final.shown.best_epoch,
            parameters=int(final.model.count_params()), wall_seconds=round(final.wall_seconds, 2),
            history=final.shown.history,
        ),
        learning_rate_range_test=None if lr_bounds is None else {"bounds": list(lr_bounds)},
        machine=machine([gpu.name for gpu in tf.config.list_physical_devices("GPU")]), versions=versions(),
    )  # fmt: skip


def _budget_line(config: RunConfig, plan: search.SearchPlan) -> str:
    """The header's line on time: when the run ends, or that it has no limit."""
    if plan.budget is not None:
        return plan.budget.describe(default=config.default_time_budget)
    return (f"no time budget (--time-budget none): the run takes as long as {config.trials} trials and "
            f"{config.seeds_to_retrain} retrainings of {config.final_epochs} epochs take")


def _retraining_cost(seeds: int, epochs: int, per_epoch: float | None, budgeted: bool) -> str:
    """What the retraining will cost, said before it starts, and how to make it cheaper."""
    if per_epoch is None:
        return f"retraining: {seeds} × up to {epochs} epochs (epoch time unknown in this process)"
    minutes = seeds * epochs * per_epoch / 60
    line = f"retraining: {seeds} × up to {epochs} epochs at {per_epoch:.1f}s an epoch, about {minutes:.1f} min"
    if minutes > 2 and not budgeted:
        line += "; for a quicker look pass --final-seeds 1 --final-epochs 5, or --time-budget MINUTES"
    return line


def _check_writable(root: Path, what: str) -> None:
    too_long = [part for part in root.parts if len(part.encode()) > 255]  # what filesystems allow for one name
    if too_long:
        raise UsageError(f"cannot write the {what} directory: its name {too_long[0][:40]!r}... is "
                         f"{len(too_long[0].encode())} bytes, over the 255 a filesystem allows; pick a shorter path")  # fmt: skip
    probe = root
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write the {what} directory {str(root)!r}: {str(probe)!r} is not writable")


def _learning_rate_bounds(config, dataset, space_class, feeder, seed, previous, say) -> tuple[float, float] | None:
    """With `--lr-range auto`, the bounds from a range test (or the ones a resumed run found)."""
    if config.lr_range != "auto":
        return None
    if previous is not None and not config.overwrite and previous.get("learning_rate_bounds"):
        low, high = previous["learning_rate_bounds"]
        say(f"learning-rate range test: reusing bounds {low:.2e} to {high:.2e} from the first run")
        return (low, high)
    probe = space_class(SpaceContext.for_dataset(dataset, batch_size=config.batch_size, epochs=config.max_epochs))
    result, _ = lr_range.space_range_test(probe, feeder.train, {}, seed=seed)
    lr_range.write_outputs(result, config.log_dir / "lr_range", f"{config.run_name}: learning-rate range test")
    say(
        f"learning-rate range test: lowest loss at {result.best:.2e}, suggested {result.suggested:.2e}; "
        f"searching learning_rate in [{result.bounds[0]:.2e}, {result.bounds[1]:.2e}] "
        f"(plot: {config.log_dir / 'lr_range' / 'lr_range.png'})"
    )
    return result.bounds
