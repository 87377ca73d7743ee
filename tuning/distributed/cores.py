"""The CPU cores a run may use, and each local worker's share of them.

Owns: counting the cores this process may use (its CPU affinity) and
splitting them among `--workers` local processes. Imports nothing heavy:
`tuning.config` bounds `--workers` with it before TensorFlow loads. Does not
own: starting the workers (`tuning.distributed.pool.WorkerPool`).
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """The CPU cores this process may use (its affinity where the system says, else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_threads(workers: int) -> int:
    """Each local worker's share of the cores this process may use, at least one.

    Args:
        workers: How many local worker processes share the cores.
    """
    return max(1, available_cores() // workers)
