"""Spreading one search over processes and hosts with Keras Tuner's chief/worker engine.

`addresses`: Keras Tuner's environment and `--oracle`; `cores`: each local
worker's share of the CPU; `pool`: the `--workers N` local processes;
`chief`: serving the oracle (`serve_workers` drives a search's trials as a
chief); `worker`: a worker's side (`join`). It sits above `tuning.search`,
whose tuners it serves, and below `tuning.service`.
"""

from tuning._exports import lazy

__getattr__, __dir__ = lazy(__name__, {
    "serve_workers": "chief", "join": "worker", "WorkerResult": "worker", "check_address": "addresses",
    "free_port": "addresses",
})  # fmt: skip
