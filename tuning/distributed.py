"""Spreading one search over processes and hosts with Keras Tuner's chief/worker engine.

Owns: the Keras Tuner environment of a chief or a worker process
(`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`),
the chief's serving loop, how long a worker waits for a silent chief, and
`WorkerPool`: the `--workers N` local processes, each given a fair share of
the CPU threads (or its own GPU when there are several) and restarted under
the same id when it dies, so that the chief hands it back the trial it was
running. The protocol, the servicer and the client are Keras Tuner's; the
chief's loop is ours only so that it can also stop when its local workers
are gone, report progress, and shut down on Ctrl-C. Does not own: what a
trial does (`tuning.tuners`), what a worker does (`tuning.search.join`,
in the `tuning.worker` process that `WorkerPool` starts), how many cores
there are (`tuning.cores`), or what the chief does after the search
(`tuning.service`).

Keras Tuner's private package (`keras_tuner.src`) is used here, and only
for what its public API lacks: `distribute.oracle_client.TIMEOUT` (a
worker's wait for its chief, an hour by default), `protos` and
`distribute.oracle_chief` (to serve the oracle from our own loop), and
`engine.oracle.synchronized` (the oracle's own lock, to save it safely).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import grpc
import tensorflow as tf
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief, oracle_client
from keras_tuner.src.engine.oracle import synchronized

from tuning import failures, progress, trial_times, tuners
from tuning.cores import worker_threads
from tuning.errors import RunError, UsageError
from tuning.events import Say
from tuning.plan import RECYCLE_EXIT
from tuning.trial_listeners import Recycle

CHIEF_ID = "chief"
POLL_SECONDS = 0.5
MAX_RESTARTS = 3
STOP_GRACE_SECONDS = 30


def set_tuner_environment(tuner_id: str, host: str, port: int) -> None:
    """Sets the variables by which Keras Tuner knows it is a chief or a worker."""
    os.environ["KERASTUNER_TUNER_ID"] = tuner_id
    os.environ["KERASTUNER_ORACLE_IP"] = host
    os.environ["KERASTUNER_ORACLE_PORT"] = str(port)


def set_chief_timeout(seconds: int) -> None:
    """How long a worker's calls wait for the chief; Keras Tuner's own default is an hour."""
    oracle_client.TIMEOUT = seconds


def check_address(host: str, port: int, serve: bool) -> None:
    """Refuses, before anything is touched, an `--oracle` host that does not resolve or (to serve) a port in use.

    Args:
        host: The host of `--oracle`.
        port: Its port; 0 means a free one is picked later.
        serve: A chief binds it; a worker only connects to it.
    """
    try:
        infos = socket.getaddrinfo(host, port or None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UsageError(
            f"--oracle host {host!r} does not resolve ({error.strerror}); give an IP address or a name this machine resolves"
        ) from None
    if not serve or not port:
        return
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(address)
        except OSError as error:
            raise UsageError(
                f"cannot listen on {host}:{port} ({error.strerror}); is another chief running there? "
                "pick another --oracle port"
            ) from None


def free_port(host: str) -> int:
    """A port on `host` that nothing listens on now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            return int(probe.getsockname()[1])
    except OSError as error:
        raise UsageError(f"cannot listen on {host!r} ({error.strerror}); check the host in --oracle") from None


def _die_with_parent() -> None:  # pragma: no cover (runs in the child between fork and exec)
    """Linux: a worker gets SIGTERM when its chief dies, so a killed chief leaves no orphans."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class _Worker:
    worker_id: str
    index: int
    threads: int
    gpus: int
    process: Optional[subprocess.Popen] = None
    restarts: int = 0
    outcome: Optional[str] = None  # "done" or why it was given up on


@dataclass
class WorkerPool:
    """`--workers N` worker processes on this machine, restarted when they die.

    Args:
        count: How many workers.
        spec_for: `spec_for(worker_id, threads)` is the JSON a worker starts
            from (`python -m tuning.worker SPEC`).
        host: Address the chief serves on.
        port: Its port.
        say: Where the pool's messages go.
        recycle_after: Trials after which a worker exits to be replaced. Defaults to None.
        max_restarts: Deaths by signal (kill -9, the OOM killer) a worker
            survives; each restart retries the trial it was running.
            Defaults to 3.
    """

    count: int
    spec_for: Callable[[str, int], str]
    host: str
    port: int
    say: Say
    recycle_after: Optional[int] = None
    max_restarts: int = MAX_RESTARTS
    workers: list[_Worker] = field(default_factory=list)

    def start(self) -> None:
        threads = worker_threads(self.count)
        gpus = _gpu_count()
        self.say(
            f"starting {self.count} worker process(es) with {threads} CPU thread(s) each"
            + (f", one of {gpus} GPUs each" if gpus > 1 else "")
            + f"; the chief serves on {self.host}:{self.port}"
        )
        self.workers = [_Worker(f"w{i}", i, threads, gpus) for i in range(self.count)]
        for worker in self.workers:
            self._launch(worker)

    def _launch(self, worker: _Worker) -> None:
        env = dict(os.environ)
        for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
            env.pop(name, None)
        if worker.gpus > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(worker.index % worker.gpus)
        elif worker.gpus == 1:
            env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # several processes share the one GPU
        worker.process = subprocess.Popen(
            [sys.executable, "-m", "tuning.worker", self.spec_for(worker.worker_id, worker.threads)],
            env=env, preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )  # fmt: skip

    def poll(self) -> None:
        """Notices workers that ended; restarts those killed by a signal."""
        for worker in self.workers:
            if worker.outcome is not None or worker.process is None:
                continue
            code = worker.process.poll()
            if code is None:
                continue
            if code == 0:
                worker.outcome = "done"
            elif code == RECYCLE_EXIT:
                self.say(f"worker {worker.worker_id} recycled after {self.recycle_after} trial(s): a fresh process returns its memory")
                self._launch(worker)
            elif code < 0 and worker.restarts < self.max_restarts:
                worker.restarts += 1
                self.say(
                    f"worker {worker.worker_id} died ({_signal_name(-code)}); restarting it "
                    f"({worker.restarts}/{self.max_restarts}) to retry its trial"
                )
                self._launch(worker)
            else:
                worker.outcome = (
                    f"died ({_signal_name(-code)}) {worker.restarts + 1} times" if code < 0 else f"exited with code {code}"
                )
                self.say(f"worker {worker.worker_id} {worker.outcome}; not restarting it")

    @property
    def finished(self) -> bool:
        return all(worker.outcome is not None for worker in self.workers)

    def failures(self) -> list[str]:
        return [f"{w.worker_id} {w.outcome}" for w in self.workers if w.outcome not in (None, "done")]

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Waits up to `grace` seconds for workers that are finishing, then ends the rest."""
        deadline = time.monotonic() + grace
        for worker in self.workers:
            if worker.process is None:
                continue
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.terminate()
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                try:
                    worker.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.process.kill()
                    worker.process.wait()


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


def work(tuner, plan, **search_kwargs) -> tuple[int, bool]:
    """Runs trials the chief hands out until it says stop (or `--recycle-after` is reached).

    Returns how many trials this worker ran and whether it stopped to be recycled.

    Args:
        tuner: This worker's tuner; Keras Tuner routes its oracle calls to the chief.
        plan: The worker's `tuning.plan.SearchPlan`.
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
        raise RunError(f"the chief refused this worker's request: {details.strip().splitlines()[-1]}") from None
    return tuner.trials_ended_here, recycled


def _gpu_count() -> int:
    try:
        return len(tf.config.list_physical_devices("GPU"))
    except Exception:  # no TensorFlow GPU support: CPU threads only
        return 0


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
