"""A run's configuration: every option declared once, and `RunConfig`, frozen and validated once.

`options`: how an option is declared (its help, default and check);
`run_config`: `RunConfig`, whose fields are the options of `tuning.run`.
The command line and `tuning.tune` both build a `RunConfig`; the service
takes nothing else. Imports nothing heavy.
"""

from tuning.config.run_config import OPTUNA_TUNERS, RunConfig

__all__ = ["RunConfig", "OPTUNA_TUNERS"]
