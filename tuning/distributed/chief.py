"""The chief of a distributed search: Keras Tuner's oracle served to workers from our own loop.

Owns: the chief's serving loop (`serve`), which also stops when its local
workers are gone, reports each ended trial, honours the time budget, and
shuts down on Ctrl-C; and `serve_workers`, the chief's way of running a
search's trials (`tuning.search.run_search(..., drive=...)`). The protocol
and the servicer are Keras Tuner's. Does not own: what a trial does
(`tuning.search.tuners`), the worker processes (`tuning.distributed.pool`)
or what the chief does after the search (`tuning.service`).

Keras Tuner's private package (`keras_tuner.src`) is used here, and only
for what its public API lacks: `protos` and `distribute.oracle_chief` (to
serve the oracle from our own loop), and `engine.oracle.synchronized` (the
oracle's own lock, to save it safely).
"""

from __future__ import annotations

import dataclasses
import time
from concurrent import futures
from pathlib import Path
from typing import Callable, Optional

import grpc
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief
from keras_tuner.src.engine.oracle import synchronized

from tuning.distributed.addresses import CHIEF_ID, free_port, set_tuner_environment
from tuning.distributed.pool import STOP_GRACE_SECONDS, WorkerPool
from tuning.errors import RunError, UsageError
from tuning.records import trial_times
from tuning.records.events import Say
from tuning.search import failures, progress, trial_listeners, tuners
from tuning.search.budget import BudgetClock
from tuning.search.plan import SearchPlan, WorkerSpec

POLL_SECONDS = 0.5


def serve(tuner, host: str, port: int, say: Say, total_trials: int, pool: Optional[WorkerPool] = None,
          start_by: Optional[Callable[[], float]] = None) -> None:  # fmt: skip
    """Serves the tuner's oracle to workers until the search is over.

    The search is over when Keras Tuner's own condition holds (the oracle
    has stopped every worker that asked, and no trial is running) or, with
    a local pool, when every local worker has ended. Prints one progress
    line per ended trial.

    Args:
        tuner: The chief's tuner; its oracle decides every trial.
        host: Address to listen on.
        port: Port to listen on.
        say: Where progress lines go.
        total_trials: The trial cap, for "trial 3/50".
        pool: The local workers, if this process started them. Defaults to None.
        start_by: Returns the `time.time()` after which no trial starts. Defaults to None.
    """
    oracle = tuner.oracle
    oracle.verbose = 0  # the progress lines below replace Keras Tuner's per-trial tables
    tuner.save()
    server, servicer = _oracle_server(oracle, host, port)
    reported = len(oracle.end_order)
    try:
        if pool is not None:
            pool.start()  # before the server's threads exist, so gRPC need not deal with a fork
        server.start()
        while True:
            time.sleep(POLL_SECONDS)
            if len(oracle.end_order) > reported:
                times = trial_times.read_all(Path(tuner.project_dir))
                for trial_id in list(oracle.end_order[reported:]):
                    say(progress.progress_line(oracle, trial_id, total_trials, times.get(trial_id, 0.0)))
                reported = len(oracle.end_order)
                _save(oracle)
            if failures.reached(oracle, oracle.max_consecutive_failed_trials):
                break
            if start_by is not None and time.time() >= start_by():
                tuners.stop_starting_trials(oracle)
            if servicer.stop_triggered and oracle_chief.exit_chief(oracle):
                break
            if pool is not None:
                pool.poll()
                if pool.finished:
                    break
    finally:
        if pool is not None:
            pool.stop(grace=STOP_GRACE_SECONDS if servicer.stop_triggered else 0)
        server.stop(grace=None)
        _save(oracle)
    too_many_failed = failures.reached(oracle, oracle.max_consecutive_failed_trials)
    if pool is not None and pool.failures() and not servicer.stop_triggered and not too_many_failed:
        raise RunError(
            f"the workers stopped before the search finished ({'; '.join(pool.failures())}); "
            "see their messages above, then rerun the same command to resume"
        )


def _oracle_server(oracle, host: str, port: int):
    """Keras Tuner's gRPC servicer of `oracle`, bound to `host:port` but not started; refuses a port in use."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        raise UsageError(f"cannot listen on {host}:{port}; is another chief running there? pick another --oracle port")
    return server, servicer


def _save(oracle) -> None:
    """Saves the oracle under its own lock.

    Keras Tuner's `end_trial` saves before it drops the trial from the
    running ones, and on a worker nothing saves it again, so a chief that
    stopped now would retry a finished trial on resume.
    """
    synchronized(lambda o: o.save())(oracle)


def serve_workers(plan: SearchPlan, seed: int, say: Say) -> Callable[[object, Optional[BudgetClock]], None]:
    """The chief's way of running a search's trials: `drive` for `tuning.search.run_search`.

    The returned function serves the tuner's oracle to workers (started here
    with `plan.workers`, else started by hand with `--role worker`) until the
    search is over, then tidies the checkpoints.

    Args:
        plan: The search; `plan.role` is `chief`.
        seed: The run's seed, handed to every local worker.
        say: Where progress lines go.
    """
    return lambda tuner, clock: _serve(plan, tuner, seed, say, clock)


def _serve(plan: SearchPlan, tuner, seed: int, say: Say, clock: Optional[BudgetClock]) -> None:
    port = plan.oracle_port or free_port(plan.oracle_host)
    set_tuner_environment(CHIEF_ID, plan.oracle_host, port)
    served = dataclasses.replace(plan, oracle_port=port)
    pool = None
    if plan.workers:
        pool = WorkerPool(
            plan.workers, lambda worker_id, threads: _worker_spec(served, worker_id, threads, seed),
            plan.oracle_host, port, say, recycle_after=plan.recycle_after,
        )  # fmt: skip
    else:
        say(f"chief serving on {plan.oracle_host}:{port}; start workers with --role worker --oracle {plan.oracle_host}:{port}")
    serve(tuner, plan.oracle_host, port, say, plan.trials, pool,
                      start_by=clock.start_by if clock is not None else None)  # fmt: skip
    failures.check(tuner.oracle, plan.max_failures)
    trial_listeners.CheckpointPruning(plan.keep_checkpoints).prune(tuner)  # workers leave this to the chief


def _worker_spec(plan: SearchPlan, worker_id: str, threads: int, seed: int) -> str:
    """The JSON a local worker process starts from (`python -m tuning.worker SPEC`)."""
    worker_plan = dataclasses.replace(plan, role="worker", workers=None, worker_id=worker_id, worker_template=None)
    return WorkerSpec(worker_plan, plan.worker_template, seed, threads).to_json()
