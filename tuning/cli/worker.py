"""The process of a local worker: `python -m tuning.worker SPEC_JSON`, as `tuning.distributed.pool.WorkerPool` starts it.

Owns: reading the worker's spec (`tuning.search.plan.WorkerSpec`), keeping the
libraries quiet, and the exit code (`RECYCLE_EXIT` when the worker stops to
be replaced by a fresh process). What a worker does is
`tuning.distributed.worker.join`, which `tuning.service` also calls for
`--role worker` on any host. Imports nothing heavy at the top: TensorFlow
loads when `tuning.distributed.worker` is imported, after `quiet_libraries`.
Never imports `tuning.config` or `tuning.service`.
"""

from __future__ import annotations

import sys
from typing import Optional

from tuning.cli.base import quiet_libraries, run_command
from tuning.search.plan import RECYCLE_EXIT, WorkerSpec


def main(argv: Optional[list[str]] = None) -> int:
    """Runs one local worker from the spec in `argv[0]` and returns its exit code."""
    argv = sys.argv[1:] if argv is None else argv
    spec = WorkerSpec.from_json(argv[0])
    prefix = f"[{spec.plan.worker_id}] "

    def body() -> int:
        quiet_libraries()
        from tuning.distributed import worker  # the boundary: TensorFlow loads here, quietly

        ran = worker.join(spec, say=lambda line: print(prefix + line, flush=True))
        if ran.recycled:
            return RECYCLE_EXIT
        print(f"{prefix}done: ran {ran.trials_run} trial(s)", flush=True)
        return 0

    return run_command(f"tuning worker {spec.plan.worker_id}", body, debug=False)


if __name__ == "__main__":
    sys.exit(main())
