"""A worker of a distributed search: from its `WorkerSpec` to its last trial.

Owns: `join` (wait for the chief's run file, check that this worker may
join, load the data, build the space with the chief's learning-rate
bounds), `run_worker` (run the trials the chief hands out), and `work`,
which turns a silent or refusing chief into one line. Used by
`--role worker` on any host and by the local worker processes that
`tuning.distributed.pool` starts (`python -m tuning.worker SPEC`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import grpc

from search_spaces.base import SpaceContext
from tuning.data import datasets
from tuning.data.types import DataOptions
from tuning.distributed.addresses import set_chief_timeout, set_tuner_environment
from tuning.errors import RunError, UsageError, message_line
from tuning.records import events
from tuning.records.events import Say
from tuning.records.lock import RunLock
from tuning.records.run_files import choose_seed
from tuning.search import driver, kt_patches, spaces, tuners
from tuning.search.budget import BudgetClock
from tuning.search.plan import SearchPlan, WorkerSpec
from tuning.search.trial_listeners import Recycle
from tuning.training.pipeline import DatasetFeeder
from tuning.training.threads import use_threads


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


def run_worker(plan: SearchPlan, hypermodel, feeder, seed: int, say: Say = print,
               freeze_setup: bool = False) -> WorkerResult:  # fmt: skip
    """Runs the trials the chief at `plan.oracle_address` hands out, until it says stop.

    Args:
        plan: The search; `plan.role` is `worker` and `plan.worker_id` names it.
        hypermodel: The search space, bound to the dataset.
        feeder: The train and validation feeders.
        seed: The chief's seed, so that trial `i` gets the same seed on any worker.
        say: Where messages go. Defaults to `print`.
        freeze_setup: See `tuning.search.driver.run_search`. Defaults to False.
    """
    set_tuner_environment(plan.worker_id, plan.oracle_host, plan.oracle_port)
    set_chief_timeout(plan.chief_timeout)
    # A worker's trials are its own to log: it appends their events to its host's events.jsonl.
    clock = BudgetClock(plan.budget) if plan.budget is not None else None
    tuner = driver.make_tuner(plan, hypermodel, feeder, seed, say, events.JsonLinesLog(plan.files.log_dir / events.EVENTS_FILE), clock)
    if freeze_setup:
        tuners.exempt_setup_from_gc()
    say(f"asking the chief at {plan.oracle_address} for trials")
    trials_run, recycled = work(
        tuner, plan, epochs=plan.max_epochs, callbacks=driver.trial_callbacks(plan, clock), verbose=0
    )
    return WorkerResult(plan.worker_id, trials_run, recycled)


def join(spec: WorkerSpec, say: Say = print) -> WorkerResult:
    """Joins the chief's search as one worker and runs its trials until it says stop.

    Waits for the chief's run file, checks that this worker may join (the
    same options and seed), loads the data, builds the space with the
    chief's learning-rate bounds, and runs the trials (`run_worker`).

    Args:
        spec: The worker's plan, its chief's data and space, its seed and threads.
        say: Where messages go. Defaults to `print`.
    """
    kt_patches.apply()  # a worker's first step, as a run's
    plan, template = spec.plan, spec.template
    files = plan.files
    files.wait_for_run_file(plan.chief_timeout, say)
    previous = files.previous(template.identity, overwrite=False, worker=True)
    if plan.budget is not None and previous.get("budget_began"):  # the chief's clock, not this worker's start
        plan = replace(plan, budget=replace(plan.budget, began=float(previous["budget_began"])))
    seed = choose_seed(None, previous, overwrite=False)
    if spec.seed is not None and spec.seed != seed:
        raise UsageError(f"--seed must match the chief's seed {seed}, but got seed={spec.seed}; drop --seed on workers")
    if spec.threads is not None:
        use_threads(spec.threads)
    space = spaces.resolve(template.space)
    dataset = datasets.load_dataset(template.dataset, template.data_dir, _data_options(template.data_options))
    _check_fingerprints(previous, dataset, space)
    lr_bounds = previous.get("learning_rate_bounds")
    with RunLock(files.run_dir, name=f".worker-{plan.worker_id}.lock"):
        context = SpaceContext.for_dataset(
            dataset, batch_size=template.batch_size, epochs=plan.max_epochs,
            learning_rate_bounds=tuple(lr_bounds) if lr_bounds else None,
            regularization_floor=bool(template.identity.get("regularization_floor")),
        )  # fmt: skip
        hypermodel = space.factory(context)
        return run_worker(plan, hypermodel, DatasetFeeder(dataset), seed, say, freeze_setup=True)


def _data_options(options: Optional[dict]) -> DataOptions:
    options = dict(options or {})
    if options.get("image_size") is not None:
        options["image_size"] = tuple(options["image_size"])  # JSON made it a list
    return DataOptions(**options)


def _check_fingerprints(previous: dict, dataset, space: spaces.ResolvedSpace) -> None:
    """A worker on another host must read the chief's data and space, byte for byte."""
    recorded = previous.get("identity", {})
    for key, mine, what in (("data_fingerprint", dataset.source_fingerprint, f"the data {dataset.source}"),
                            ("space_fingerprint", space.fingerprint, f"the space {space.reference}")):  # fmt: skip
        if recorded.get(key) is not None and recorded.get(key) != mine:
            raise UsageError(f"{what} differs from the chief's (fingerprint {mine}, the chief's {recorded[key]}); "
                             "give this worker the same files")  # fmt: skip


def work(tuner, plan, **search_kwargs) -> tuple[int, bool]:
    """Runs trials the chief hands out until it says stop (or `--recycle-after` is reached).

    Returns how many trials this worker ran and whether it stopped to be recycled.

    Args:
        tuner: This worker's tuner; Keras Tuner routes its oracle calls to the chief.
        plan: The worker's `tuning.search.plan.SearchPlan`.
        **search_kwargs: Passed to `tuner.search`.
    """
    recycled = False
    try:
        tuner.search(**search_kwargs)
    except Recycle:
        recycled = True
    except grpc.RpcError as error:
        code = error.code() if hasattr(error, "code") else None
        if code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
            raise RunError(
                f"the chief at {plan.oracle_address} did not answer within {plan.chief_timeout}s "
                f"({code.name}); it has stopped or is unreachable. Restart it with the same command "
                "to resume; --chief-timeout sets how long workers wait"
            ) from None
        details = (error.details() if hasattr(error, "details") else "") or str(error)
        raise RunError(f"the chief refused this worker's request: {message_line(details, last=True)}") from None
    return tuner.trials_ended_here, recycled
