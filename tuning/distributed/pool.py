"""`--workers N`: the local worker processes of a chief, each with its share of the machine, restarted when they die.

Owns: `WorkerPool`, which starts `python -m tuning.worker SPEC` processes,
gives each a fair share of the CPU threads (or its own GPU when there are
several), restarts one killed by a signal under the same id (so that the
chief hands it back the trial it was running), replaces a recycled one, and
stops them all. Does not own: what a worker does
(`tuning.distributed.worker`) or the chief's loop (`tuning.distributed.chief`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import tensorflow as tf

from tuning.distributed.cores import worker_threads
from tuning.records.events import Say
from tuning.search.plan import RECYCLE_EXIT

MAX_RESTARTS = 3
STOP_GRACE_SECONDS = 30


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
