"""Every place this project changes Keras Tuner's behaviour, with why; the global ones are applied here.

Written against Keras Tuner 1.4.8 (`pyproject.toml` allows 1.4.7 up to 1.5).
Each patch names what it replaces; a new Keras Tuner release should be read
against this list.

Applied on import of this module (global, process-wide):
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
5. `tuning.distributed.set_chief_timeout` sets `oracle_client.TIMEOUT` (an
   hour by default) to `--chief-timeout`, so a worker gives up on a dead chief.
6. `tuning.tuners._patient` wraps a worker's `oracle.create_trial`, which
   Keras Tuner calls in a busy loop while the chief answers IDLE.
7. `tuning.proposals.install` wraps a Keras Tuner oracle's `_random_values`
   (Hyperband) or `populate_space` (the others): new configurations come from
   the defaults and local moves first.
8. `tuning.tuners.ServiceTuner` overrides the tuner hooks `run_trial`,
   `_build_hypermodel` (each rung's schedule, `tuning.hyperband`),
   `on_epoch_begin/end`, `on_trial_begin/end`, `pre_create_trial` (the
   budget) and `_configure_tensorboard_dir` (our HParams sessions instead of
   Keras Tuner's `KerasCallback`).
9. `tuning.hyperband.FittedHyperbandOracle` overrides `_get_num_brackets`
   (brackets that fit the trial cap) and `get_best_trials` (equal epochs
   first); `HyperbandOverOracle` skips `Hyperband.__init__`, which would
   build its own oracle.
10. `tuning.tuners.stop_starting_trials` lowers `oracle.max_trials` so the
   oracle's own check answers STOPPED (the time budget).
11. `tuning.distributed.serve` runs Keras Tuner's `OracleServicer` in a loop
    of ours (progress lines, a local worker pool, Ctrl-C).

Private modules imported (`keras_tuner.src`): `utils`, `config`,
`engine.conditions` (here), `engine.hyperparameters` (`tuning.hparams`,
`tuning.proposals`, `tuning.optuna_oracle`), `distribute.oracle_client`,
`distribute.oracle_chief`, `protos`, `engine.oracle.synchronized`
(`tuning.distributed`).
"""

from __future__ import annotations

import json
import os

import keras_tuner as kt
from keras_tuner.src import config as _kt_config
from keras_tuner.src import utils as _kt_utils
from keras_tuner.src.engine import conditions as _kt_conditions

WRITTEN_AGAINST = "1.4.8"


def atomic_save_json(path, obj):
    """Keras Tuner's `save_json`, but written to a temporary file and renamed into place (atomic on one filesystem)."""
    text = json.dumps(obj)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return text


_kt_utils.save_json = atomic_save_json
_kt_set_state = kt.Oracle.set_state


def set_state_without_ended_trials(oracle: kt.Oracle, state: dict) -> None:
    """Keras Tuner's `Oracle.set_state`, less the ongoing trials that had already ended (see patch 4)."""
    _kt_set_state(oracle, state)
    ended = set(oracle.end_order)
    oracle.ongoing_trials = {tuner: trial for tuner, trial in oracle.ongoing_trials.items() if trial.trial_id not in ended}


kt.Oracle.set_state = set_state_without_ended_trials
_kt_config.DEBUG = False
_kt_conditions.print = lambda *args, **kwargs: None
