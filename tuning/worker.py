"""One worker of a distributed search, from its spec to its last trial; also the local worker's process entry.

    python -m tuning.worker SPEC_JSON      (started by `tuning.distributed.WorkerPool`)

Owns: `WorkerSpec` (what a worker needs: its search plan, the data, the space,
the options it must share with its chief, its threads) and `run`, which
waits for the chief's run file, checks the worker may join, loads the data,
builds the space with the chief's learning-rate bounds, and runs the trials
the chief hands out (`tuning.search.run_worker`). `tuning.service` calls
`run` for `--role worker` on any host; `WorkerPool` starts this module for
`--workers N` on this one. Never imports `tuning.config`, `tuning.run` or
`tuning.service`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from typing import Callable, Optional

from tuning.distributed import RECYCLE_EXIT
from tuning.plan import SearchPlan
from tuning.search import WorkerResult


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker needs.

    Args:
        plan: The search, with `role="worker"` and the worker's id.
        dataset: The dataset's registered name.
        space: The search space's registered name.
        identity: The options it must share with its chief (`RunConfig.identity()`).
        data_dir: Offline data. Defaults to None.
        batch_size: A fixed batch size. Defaults to None.
        seed: The seed it was asked for; it must be the chief's. Defaults to None.
        threads: TensorFlow CPU threads. Defaults to None (all cores).
    """

    plan: SearchPlan
    dataset: str
    space: str
    identity: dict
    data_dir: Optional[str] = None
    batch_size: Optional[int] = None
    seed: Optional[int] = None
    threads: Optional[int] = None

    @classmethod
    def from_json(cls, text: str) -> "WorkerSpec":
        data = json.loads(text)
        data["plan"] = SearchPlan.from_dict(data["plan"])
        return cls(**data)


def run(spec: WorkerSpec, say: Callable[[str], None] = print) -> WorkerResult:
    """Joins the chief's search and runs its trials until it says stop."""
    from search_spaces import get as get_space
    from search_spaces.base import SpaceContext
    from tuning import datasets, search
    from tuning.errors import UsageError
    from tuning.lock import RunLock
    from tuning.pipeline import DatasetFeeder
    from tuning.run_files import choose_seed

    plan = spec.plan
    files = plan.files
    files.wait_for_run_file(plan.chief_timeout, say)
    previous = files.previous(spec.identity, overwrite=False, worker=True)
    if plan.budget is not None and previous.get("budget_began"):  # the chief's clock, not this worker's start
        plan = replace(plan, budget=replace(plan.budget, began=float(previous["budget_began"])))
    seed = choose_seed(None, previous, overwrite=False)
    if spec.seed is not None and spec.seed != seed:
        raise UsageError(f"--seed must match the chief's seed {seed}, but got seed={spec.seed}; drop --seed on workers")
    _set_threads(spec.threads)
    dataset = datasets.load_dataset(spec.dataset, spec.data_dir)
    lr_bounds = previous.get("learning_rate_bounds")
    with RunLock(files.run_dir, name=f".worker-{plan.worker_id}.lock"):
        context = SpaceContext.for_dataset(
            dataset, batch_size=spec.batch_size, epochs=plan.max_epochs,
            learning_rate_bounds=tuple(lr_bounds) if lr_bounds else None,
            regularization_floor=bool(spec.identity.get("regularization_floor")),
        )  # fmt: skip
        return search.run_worker(plan, get_space(spec.space)(context), DatasetFeeder(dataset), seed, say)


def _set_threads(threads: Optional[int]) -> None:
    if threads is None:
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m tuning.worker SPEC_JSON`: one local worker, as started by `WorkerPool`."""
    from tuning.cli import quiet_libraries, run_command

    argv = sys.argv[1:] if argv is None else argv
    spec = WorkerSpec.from_json(argv[0])
    prefix = f"[{spec.plan.worker_id}] "

    def body() -> int:
        quiet_libraries()
        ran = run(spec, say=lambda line: print(prefix + line, flush=True))
        if ran.recycled:
            return RECYCLE_EXIT
        print(f"{prefix}done: ran {ran.trials_run} trial(s)", flush=True)
        return 0

    return run_command(f"tuning worker {spec.plan.worker_id}", body, debug=False)


if __name__ == "__main__":
    sys.exit(main())
