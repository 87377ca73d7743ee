"""Every place this project changes Keras Tuner's behaviour, with why; the global ones are applied here.

Written against Keras Tuner 1.4.8 (`pyproject.toml` allows 1.4.7 up to 1.5).
Each patch names what it replaces; a new Keras Tuner release should be read
against this list, and `apply` says so once when another version is installed.

Applied by `apply()` (global, process-wide), an explicit step at the start of
a run (`tuning.service`) and of a worker (`tuning.distributed.worker.join`);
importing this module changes nothing:
1. `keras_tuner.src.utils.save_json` becomes `atomic_save_json`: Keras Tuner
   keeps its whole state (oracle.json, tuner0.json, trial.json) in files it
   overwrites in place, so a process killed mid-write would leave one
   truncated and the run unable to resume.
2. `keras_tuner.src.config.DEBUG = False`: it prints every failed trial's
   traceback; the reason is in the progress line and the traceback in trial.json.
3. `keras_tuner.src.engine.conditions.print` is muted: 1.4's `Parent.to_proto`
   prints the condition's first value (a leftover debug print) every time a
   trial crosses gRPC between a chief and its workers.
4. `keras_tuner.Oracle.set_state` drops from `ongoing_trials` the trials that
   `end_order` says ended: `Oracle.end_trial` saves oracle.json before it pops
   the ended trial from `ongoing_trials`, so a process that dies after a trial
   ended and before the next one starts (a lost storage server, a kill) would
   rerun the finished trial on resume, since `create_trial` hands a tuner its
   ongoing trial first.

Applied per object, where it is needed:
5. `tuning.distributed.addresses.set_chief_timeout` sets `oracle_client.TIMEOUT` (an
   hour by default) to `--chief-timeout`, so a worker gives up on a dead chief.
6. `tuning.search.tuners._patient` wraps a worker's `oracle.create_trial`, which
   Keras Tuner calls in a busy loop while the chief answers IDLE.
7. `tuning.search.proposals.install` wraps a Keras Tuner oracle's `_random_values`
   (Hyperband) or `populate_space` (the others): new configurations come from
   the defaults and local moves first.
8. `tuning.search.tuners.ServiceTuner` overrides the tuner hooks `run_trial`,
   `_build_hypermodel` (each rung's schedule, `tuning.search.hyperband`),
   `on_epoch_begin/end`, `on_trial_begin/end`, `pre_create_trial` (the
   budget) and `_configure_tensorboard_dir` (our HParams sessions instead of
   Keras Tuner's `KerasCallback`).
9. `tuning.search.hyperband.FittedHyperbandOracle` overrides `_get_num_brackets`
   (brackets that fit the trial cap) and `get_best_trials` (equal epochs
   first); `HyperbandOverOracle` skips `Hyperband.__init__`, which would
   build its own oracle.
10. `tuning.search.tuners.stop_starting_trials` lowers `oracle.max_trials` so the
   oracle's own check answers STOPPED (the time budget).
11. `tuning.distributed.chief.serve` runs Keras Tuner's `OracleServicer` in a loop
    of ours (progress lines, a local worker pool, Ctrl-C).

Keras Tuner's private package (`keras_tuner.src`), where its public API has
no equivalent: `utils`, `config` and `engine.conditions` (here);
`distribute.oracle_client` (`tuning.distributed.addresses`);
`distribute.oracle_chief`, `protos` and `engine.oracle.synchronized`
(`tuning.distributed.chief`). The public `keras_tuner.engine.hyperparameters`
is used by `tuning.records.hparams`, `tuning.search.proposals` and
`tuning.search.optuna_oracle`.
"""

from __future__ import annotations

import json
import warnings

import keras_tuner as kt
from keras_tuner.src import config as _kt_config
from keras_tuner.src import utils as _kt_utils
from keras_tuner.src.engine import conditions as _kt_conditions

from tuning.records.atomic import write_atomic

WRITTEN_AGAINST = "1.4.8"


def atomic_save_json(path, obj):
    """Keras Tuner's `save_json`, but written to a temporary file and renamed into place (atomic on one filesystem)."""
    text = json.dumps(obj)
    write_atomic(path, text)
    return text


_kt_set_state = kt.Oracle.set_state


def set_state_without_ended_trials(oracle: kt.Oracle, state: dict) -> None:
    """Keras Tuner's `Oracle.set_state`, less the ongoing trials that had already ended (see patch 4)."""
    _kt_set_state(oracle, state)
    ended = set(oracle.end_order)
    oracle.ongoing_trials = {tuner: trial for tuner, trial in oracle.ongoing_trials.items() if trial.trial_id not in ended}


def _muted_print(*args, **kwargs) -> None:
    """Patch 3: Keras Tuner 1.4's leftover debug print in `engine.conditions`."""


def applied() -> bool:
    """Whether `apply` has run in this process."""
    return kt.Oracle.set_state is set_state_without_ended_trials


def apply() -> None:
    """Applies the global patches 1-4 to this process; a second call changes nothing.

    Warns once when the installed Keras Tuner is not `WRITTEN_AGAINST`: each
    patch replaces something of that version, and another may have changed it.
    """
    if applied():
        return
    if kt.__version__ != WRITTEN_AGAINST:
        warnings.warn(f"tuning's Keras Tuner patches were written against {WRITTEN_AGAINST}, but {kt.__version__} is "
                      "installed; read tuning/search/kt_patches.py against its changes", stacklevel=2)  # fmt: skip
    _kt_utils.save_json = atomic_save_json
    kt.Oracle.set_state = set_state_without_ended_trials
    _kt_config.DEBUG = False
    _kt_conditions.print = _muted_print
