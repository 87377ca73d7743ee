"""tuning: a hyperparameter-tuning service for dense Keras networks.

The package is built on Keras Tuner (trials, resume), TensorBoard (HParams
dashboard) and, as a second engine, Optuna. `python -m tuning.run` is the
command; from Python, `tuning.tune(data, **options)` is the same run, with
arrays, a pandas DataFrame or a `build_model` function too, and returns a
`tuning.TuningResult` (`tuning.tune_and_export(tuning.RunConfig(...))` takes
a config as the command line builds it).

The layers, top to bottom (`pyproject.toml`'s import contracts check them):
`tuning.cli` (the commands) and `tuning.api` (`tune`) · `tuning.service` (the order of a run's steps) ·
`tuning.config` (the options, frozen) · `tuning.distributed` and
`tuning.final` (the retraining, the test evaluation, the export) ·
`tuning.search` · `search_spaces` · `tuning.training` · `tuning.data` ·
`tuning.records` (a run's files, events, HParams, metrics) · the shared
`tuning.errors`, `tuning.registry`, `tuning.text`.

Importing `tuning` loads nothing heavy: each name below is imported when first read.
"""

from tuning._exports import lazy

__version__ = "0.1.0"

__all__ = ["tune", "RunConfig", "TuningResult", "tune_and_export", "TuningError", "UsageError", "RunError"]

__getattr__, __dir__ = lazy(__name__, {
    "tune": "api", "RunConfig": "config", "TuningResult": "service", "tune_and_export": "service",
    "TuningError": "errors", "UsageError": "errors", "RunError": "errors",
})  # fmt: skip
