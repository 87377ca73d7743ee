"""One tuning run from a `RunConfig` to an export: the order of the steps.

Owns: the sequence of `tune_and_export` (check the input, load data, lock
the run, resume or start afresh, search, retrain, evaluate once, export),
turning the `RunConfig` into the search's `SearchPlan`, a worker's
`WorkerSpec` and the `RetrainingPlan`, the process-wide steps at a run's
start (Keras Tuner's patches, TensorFlow's threads), and the
`TuningResult`. Each step is someone else's: data (`tuning.data`), the files
of a run (`tuning.records.run_files`), spaces (`search_spaces`), the search
(`tuning.search`) and its distribution (`tuning.distributed`), the
retraining (`tuning.final.retraining`), the test evaluation
(`tuning.final.assessment`), the record (`tuning.records.metrics`) and the
files of the export (`tuning.final.export`). Nothing under `checkpoints/`
changes until the input has been checked and the data loaded.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from search_spaces.base import SpaceContext
from tuning import distributed, search
from tuning.config import RunConfig
from tuning.data import datasets
from tuning.distributed.worker import WorkerResult
from tuning.errors import UsageError
from tuning.final import evaluate, export, retraining
from tuning.final.assessment import Assessment, assess
from tuning.records import events, run_files, state
from tuning.records.events import Listener, Say
from tuning.records.lock import RunLock
from tuning.records.metrics import DatasetFigures, FinalFigures, RunMetrics, SearchFigures, machine, versions
from tuning.records.run_files import choose_seed
from tuning.search import kt_patches, lr_range, optuna_oracle, spaces, tuners
from tuning.search.budget import TimeBudget
from tuning.search.plan import OPTUNA_TUNERS, WorkerSpec, WorkerTemplate
from tuning.training.pipeline import DatasetFeeder
from tuning.training.threads import use_threads

__all__ = ["tune_and_export", "TuningResult", "WorkerResult", "search_plan"]


@dataclass(frozen=True)
class TuningResult:
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

    @property
    def test_accuracy(self) -> float:
        """The exported model's accuracy on the test split, read once."""
        return self.record.final.test_accuracy

    @property
    def test_accuracy_ci95(self) -> tuple[float, float]:
        """Its 95% Wilson interval."""
        low, high = self.record.final.test_accuracy_ci95
        return (low, high)

    @property
    def run_name(self) -> str:
        """The run's name (`checkpoints/RUN`), which a rerun resumes."""
        return self.record.run


def tune_and_export(config: RunConfig, say: Say = print, listen: Listener | None = None,
                    freeze_setup: bool = False) -> TuningResult | WorkerResult:  # fmt: skip
    """Searches, retrains the best configuration, reads the test set after selection, and exports.

    A worker (`role="worker"`) only runs the trials its chief hands out and
    returns a `WorkerResult`; the chief (or the one process) does the rest.
    Its first step applies the Keras Tuner patches (`kt_patches.apply`),
    which every run needs for its saves and resume.

    Args:
        config: The validated run.
        say: Where progress lines go. Defaults to `print`.
        listen: Receives the run's events (`tuning.records.events`) as they happen. Defaults to None.
        freeze_setup: Exempt what is alive once the tuner is built from garbage
            collection (`tuning.search.run_search`); for a process that does
            nothing but this run, as `python -m tuning.run`. Defaults to False.
    """
    began = time.time()
    space = _preflight(config)
    if config.role == "worker":
        return distributed.join(worker_spec(config, began), say)
    kt_patches.apply()
    files = config.files
    previous = files.previous(config.identity(), config.overwrite)
    if previous is not None and not config.overwrite:  # a damaged state file is named now, before anything changes
        state.check_state(files.run_dir, files.log_dir, _study_file(config))
    dataset = _load(config, say)
    identity = run_identity(config, dataset, space)
    files.previous(identity, config.overwrite)  # the data's and the space's files must be the run's own
    context = SpaceContext.for_dataset(dataset, batch_size=config.batch_size, epochs=config.max_epochs,
                                       regularization_floor=config.regularization_floor)  # fmt: skip
    spaces.check_builds(space, context)
    with RunLock(files.run_dir):
        seed = choose_seed(config.seed, previous, config.overwrite)
        if config.overwrite:
            files.clear()
        listen = events.fan_out(events.JsonLinesLog(files.log_dir / events.EVENTS_FILE), listen)
        feeder = DatasetFeeder(dataset)
        lr_bounds = _learning_rate_bounds(config, dataset, space, feeder, seed, previous, say)
        plan = search_plan(config, began, identity)
        say(_budget_line(config, plan))
        files.write(identity, seed, lr_bounds, budget_began=plan.budget.began if plan.budget else None)
        context = replace(context, learning_rate_bounds=lr_bounds)
        outcome = _timed_search(config, plan, space.factory(context), feeder, seed, previous, lr_bounds, say, listen,
                                freeze_setup, identity)  # fmt: skip
        retrained = _retrain(config, plan, outcome, space, context, feeder, dataset, seed, say, listen)
        finishing = time.monotonic()
        values = {k: v for k, v in retrained.hyperparameters.values.items() if not k.startswith("tuner/")}
        assessed = assess(retrained.members, dataset, config.mc_passes, config.log_dir, outcome.session_table,
                          retrained.hyperparameters.values, say)  # fmt: skip
        record = _record(config, seed, dataset, outcome, assessed, lr_bounds, retrained.final_rung)
        figures = export.Figures(
            confusion=assessed.matrix, class_names=list(dataset.class_names), history=assessed.shown.history,
            best_epoch=assessed.shown.best_epoch, trial_scores=outcome.trial_scores, trial_seconds=outcome.trial_seconds,
        )  # fmt: skip
        export_dir = export.write_export(files.export_dir, assessed.model, values, record, figures, dataset.raw_input)
        listen(events.Exported(str(export_dir), assessed.test["accuracy"], time.time()))
        say(f"tested and exported in {time.monotonic() - finishing:.1f}s; {time.time() - began:.0f}s since the run began")
    return TuningResult(export_dir, files.log_dir, record, values)


def _timed_search(config, plan, hypermodel, feeder, seed: int, previous, lr_bounds, say: Say,
                  listen: Listener | None, freeze_setup: bool, identity: dict) -> search.SearchOutcome:  # fmt: skip
    """Runs the search; its wall time, summed over every process that searched, goes to `run.json`.

    A process stopped by an error or Ctrl-C still adds its time; one killed
    outright (SIGKILL, power loss) cannot, and its time is missing from the sum.
    """
    earlier = float((previous or {}).get("search_seconds", 0.0)) if not config.overwrite else 0.0
    started = time.monotonic()

    def record(total: float) -> None:
        config.files.write(identity, seed, lr_bounds, search_seconds=total,
                           budget_began=plan.budget.began if plan.budget else None)  # fmt: skip

    try:
        drive = distributed.serve_workers(plan, seed, say) if plan.role == "chief" else None
        outcome = search.run_search(plan, hypermodel, feeder, seed, say, listen, drive=drive,
                                     freeze_setup=freeze_setup)  # fmt: skip
    except BaseException:
        record(earlier + time.monotonic() - started)
        raise
    outcome = replace(outcome, wall_seconds=earlier + outcome.wall_seconds)
    record(outcome.wall_seconds)
    return outcome


def run_identity(config: RunConfig, dataset: datasets.Dataset, space: spaces.ResolvedSpace) -> dict:
    """What a rerun must share to resume: the options, and the fingerprints of the user's data and space files."""
    identity = config.identity()
    if dataset.source_fingerprint is not None:
        identity["data_fingerprint"] = dataset.source_fingerprint
    if space.fingerprint is not None:
        identity["space_fingerprint"] = space.fingerprint
    return identity


def search_plan(config: RunConfig, began: float, identity: dict | None = None) -> search.SearchPlan:
    """The search part of a run's configuration, as `tuning.search` takes it.

    Args:
        config: The run.
        began: `time.time()` when the run began, which a time budget counts from.
        identity: What workers must share (`run_identity`). Defaults to None (`config.identity()`).
    """
    host, port = config.oracle_address()
    role = config.role or ("chief" if config.workers else "local")
    budget = None if config.time_budget is None else TimeBudget.of_minutes(
        config.time_budget, config.final_epochs, config.max_epochs, began, members=config.seeds_to_retrain)
    return search.SearchPlan(
        tuner=config.tuner, trials=config.trial_cap, max_epochs=config.max_epochs, patience=config.patience,
        max_failures=config.max_failures, keep_checkpoints=config.keep_checkpoints, local_share=config.local_share,
        files=config.files, study_name=config.run_name, space=config.space_name, pruner=config.pruner_name,
        storage_url=config.storage, role=role, oracle_host=host, oracle_port=port, workers=config.workers,
        worker_id=config.worker_name if role == "worker" else None, chief_timeout=config.chief_timeout,
        recycle_after=config.recycle_after, budget=budget, worker_template=worker_template(config, identity) if config.workers else None,
    )  # fmt: skip


def worker_template(config: RunConfig, identity: dict | None = None) -> WorkerTemplate:
    """What a worker needs besides its plan to rebuild this run's data and space."""
    return WorkerTemplate(dataset=config.dataset, space=config.space_name, identity=identity or config.identity(),
                          data_dir=config.data_dir, batch_size=config.batch_size,
                          data_options=dataclasses.asdict(config.data_options()))  # fmt: skip


def worker_spec(config: RunConfig, began: float) -> WorkerSpec:
    """What `--role worker` needs: the plan, the data, the space, and what it must share with its chief."""
    return WorkerSpec(search_plan(config, began), worker_template(config), seed=config.seed, threads=config.threads)


def _preflight(config: RunConfig) -> spaces.ResolvedSpace:
    """Every name and folder checked before anything is touched; returns the space `--space` names."""
    space = spaces.resolve(config.space_name)
    tuners.TUNERS.get(config.tuner)
    if config.tuner in OPTUNA_TUNERS:
        optuna_oracle.PRUNERS.get(config.pruner_name)
        optuna_oracle.SAMPLERS.get(config.tuner)(0)  # gp refuses here when PyTorch is missing
    _check_writable(Path(config.checkpoint_root), "checkpoint")
    _check_writable(Path(config.log_root), "log")
    _check_writable(config.run_dir, "run")
    if config.role != "worker":  # a busy run is refused now, not after the data has loaded
        RunLock(config.run_dir).check_free()
    if config.role == "worker" or config.workers or config.role == "chief":
        distributed.check_address(*config.oracle_address(), serve=config.role != "worker")
    if config.storage is not None and config.tuner in OPTUNA_TUNERS:
        optuna_oracle.open_storage(config.storage)  # an unreachable server is refused before anything is touched
    if config.threads is not None and config.role != "worker":  # a worker sets its own (`tuning.distributed.join`)
        use_threads(config.threads)
    return space


def _load(config: RunConfig, say: Say) -> datasets.Dataset:
    """The run's data; says where it came from, its splits, and what was decided from it."""
    started = time.monotonic()
    dataset = datasets.load_dataset(config.dataset, config.data_dir, config.data_options())
    say(f"{dataset.name}: {len(dataset.train)} train / {len(dataset.val)} validation / {len(dataset.test)} test "
        f"examples, {dataset.n_classes} classes, from {dataset.source} ({time.monotonic() - started:.1f}s)")  # fmt: skip
    for note in dataset.notes:
        say(note)
    return dataset


def retraining_plan(config: RunConfig, plan: search.SearchPlan) -> retraining.RetrainingPlan:
    """The retraining part of a run's configuration, as `tuning.final.retraining` takes it."""
    return retraining.RetrainingPlan(
        full_epochs=config.final_epochs, members=config.seeds_to_retrain, patience=config.patience,
        mc_passes=config.mc_passes, log_dir=config.log_dir, end=None if plan.budget is None else plan.budget.end(),
        trial_epochs=config.max_epochs,
    )  # fmt: skip


def _retrain(config: RunConfig, plan: search.SearchPlan, outcome: search.SearchOutcome, space: spaces.ResolvedSpace,
             context: SpaceContext,
             feeder: DatasetFeeder, dataset: datasets.Dataset, seed: int, say: Say,
             listen: Listener | None) -> retraining.Retraining:  # fmt: skip
    """Retrains the chosen configuration as the run's members; each member is an HParams session and an event.

    When the search chose another configuration than the space's defaults,
    the two meet first in a final rung at the members' length (`retraining.retrain_members`).
    """
    members = retraining_plan(config, plan)
    retraining.announce(members, outcome.trial.trial_id, outcome.score, outcome.seconds_per_epoch, outcome.search_paid, say)
    listeners: list[retraining.MemberListener] = [retraining.MemberSession(config.log_dir, outcome.session_table)]
    if listen is not None:
        listeners.append(retraining.MemberEvent(listen))
    defaults = outcome.defaults_to_compare
    alternative = None if defaults is None else (defaults.trial_id, outcome.trial.trial_id, defaults.hyperparameters)
    return retraining.retrain_members(
        members, lambda epochs: space.factory(replace(context, epochs=epochs)), outcome.hyperparameters, feeder, dataset,
        seed, outcome.seconds_per_epoch, say, listeners, listen, alternative=alternative,
    )  # fmt: skip


def _record(config: RunConfig, seed: int, dataset, outcome: search.SearchOutcome, assessed: Assessment,
            lr_bounds, final_rung: dict | None = None) -> RunMetrics:  # fmt: skip
    """The run's figures, as `metrics.json` holds them."""
    final = assessed
    val_spread = evaluate.spread([s["val_accuracy"] for s in final.per_seed])
    optuna = ({"pruner": config.pruner_name, "storage": config.storage_url, "study_name": config.run_name}
              if config.tuner in OPTUNA_TUNERS else None)  # fmt: skip
    return RunMetrics(
        run=config.run_name, command=" ".join(config.command) or "(called from Python)", seed=seed,
        dataset=DatasetFigures(
            name=dataset.name, source=dataset.source, input_shape=list(dataset.input_shape),
            sizes={"train": len(dataset.train), "val": len(dataset.val), "test": len(dataset.test)},
            n_classes=dataset.n_classes, class_names=list(dataset.class_names),
            max_value=dataset.max_value, fingerprint=dataset.fingerprint(), kind=dataset.kind,
            raw_input=dataset.raw_input.description if dataset.raw_input else None, notes=list(dataset.notes) or None,
        ),
        search=SearchFigures(
            tuner=config.tuner, space=config.space_name, max_trials=config.trial_cap, max_epochs=config.max_epochs,
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
            history=final.shown.history, final_rung=final_rung,
        ),
        learning_rate_range_test=None if lr_bounds is None else {"bounds": list(lr_bounds)},
        machine=machine([gpu.name for gpu in tf.config.list_physical_devices("GPU")]), versions=versions(),
    )  # fmt: skip


def _budget_line(config: RunConfig, plan: search.SearchPlan) -> str:
    """The header's line on time: when the run ends, or that it has no limit."""
    if plan.budget is not None:
        return plan.budget.describe(default=config.default_time_budget)
    return (f"no time budget (--time-budget none): the run takes as long as {config.trial_cap} trials and "
            f"{config.seeds_to_retrain} retrainings of {config.final_epochs} epochs take")


def _study_file(config: RunConfig) -> Path | None:
    """The Optuna study's SQLite file, when the run keeps it in its folder (no --storage)."""
    if config.tuner in OPTUNA_TUNERS and config.storage is None:
        return config.run_dir / run_files.STUDY_FILE
    return None


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


def _learning_rate_bounds(config, dataset, space: spaces.ResolvedSpace, feeder, seed, previous,
                          say) -> tuple[float, float] | None:  # fmt: skip
    """With `--lr-range auto`, the bounds from a range test (or the ones a resumed run found)."""
    if config.lr_range != "auto":
        return None
    if not space.ours:
        say(f"learning-rate range test: off, since {space.description} compiles its own optimizer; "
            "its learning rate is what build_model declares")  # fmt: skip
        return None
    if previous is not None and not config.overwrite and previous.get("learning_rate_bounds"):
        low, high = previous["learning_rate_bounds"]
        say(f"learning-rate range test: reusing bounds {low:.2e} to {high:.2e} from the first run")
        return (low, high)
    probe = space.factory(SpaceContext.for_dataset(dataset, batch_size=config.batch_size, epochs=config.max_epochs))
    result, _ = lr_range.space_range_test(probe, feeder.train, {}, seed=seed)
    lr_range.write_outputs(result, config.log_dir / "lr_range", f"{config.run_name}: learning-rate range test")
    say(
        f"learning-rate range test: lowest loss at {result.best:.2e}, suggested {result.suggested:.2e}; "
        f"searching learning_rate in [{result.bounds[0]:.2e}, {result.bounds[1]:.2e}] "
        f"(plot: {config.log_dir / 'lr_range' / 'lr_range.png'})"
    )
    return result.bounds
