"""The search: which configurations to try and running them as Keras Tuner trials.

One door, `run_search(plan, hypermodel, feeder, seed)` (`driver`), takes a
`SearchPlan` (`plan`) and returns a `SearchOutcome`. Behind it: the tuner
registry and `ServiceTuner` (`tuners`), Hyperband fitted to the trial cap
(`hyperband`), the Optuna oracle (`optuna_oracle`), where new configurations
come from (`proposals`), what is retrained (`selection`), failed trials in a
row (`failures`), the time budget's split (`budget`), what happens around a
trial (`trial_listeners`), its progress line (`progress`), every change to
Keras Tuner's behaviour (`kt_patches`) and the learning-rate range test
(`lr_range`). The search never imports the command line, `tuning.config`,
`tuning.service`, `tuning.distributed` or `tuning.final` (checked by the
import contracts in `pyproject.toml`).
"""

from tuning._exports import lazy

__getattr__, __dir__ = lazy(__name__, {
    "run_search": "driver", "SearchOutcome": "driver", "Drive": "driver", "SearchPlan": "plan", "WorkerSpec": "plan",
    "TimeBudget": "budget",
})  # fmt: skip
