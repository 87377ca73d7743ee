"""Everything for TensorBoard's HParams dashboard: the experiment, and one session per trial, retraining and export.

Owns: the columns (`columns`: every hyperparameter a space can declare,
conditional ones included, in the order that shows the informative ones by
default), the experiment summary at the top of `logs/RUN/`, and the sessions.
Keras Tuner's own per-trial session (its `hparams_api.KerasCallback`) is not
used (`tuning.search.tuners.ServiceTuner` leaves it out): it logs only the active
hyperparameters, so TensorBoard's parallel coordinates drop every session
that lacks one, marks pruned trials "Success", and scores a trial by its
last epoch rather than by the epoch the search selected. Here, once a trial
has ended, its session gets:

- a value for every column: a conditional hyperparameter that the
  configuration does not use logs "n/a" (text) or -1 (numbers), and both are
  in the column's domain;
- the first column, `outcome`: completed, pruned or failed for trials,
  retraining for each retraining seed, export for the exported model;
- the metrics `score` (the number the command line prints), `epochs`,
  `val_loss` at the selected epoch, `seconds` and `parameters`, which every
  session has, and `test_accuracy`, which only the export has;
- its status: Success, Failure, or Unknown for a pruned trial, so the
  status filter can hide pruned trials too.

TensorBoard sorts columns by name and shows the first five hyperparameters
and the first five metrics, so column names carry a two-digit rank
("02 learning_rate") and the display name is the hyperparameter's own.
Values and domains are rounded alike (`_clean`), so a value is always one
of its domain's. Trial runs live under `trials/`, retraining runs under
`retrain/`, so the Scalars tab can show them apart. Does not own: training,
or which trials ran (the tuner).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import keras_tuner as kt
import tensorflow as tf
from keras_tuner.engine import hyperparameters as hp_module
from tensorboard.plugins.hparams import api as hp_api
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import summary as hp_summary

TRIALS_DIR = "trials"
RETRAIN_DIR = "retrain"
EXPORT_SESSION = "export"
OUTCOME = "outcome"
OUTCOMES = ("completed", "pruned", "failed", "retraining", "export")
NOT_USED_TEXT = "n/a"
NOT_USED_NUMBER = -1
# After `outcome`, these come first: with it, they are the five columns TensorBoard shows by default.
PREFERRED = (
    "learning_rate", "optimizer", "num_layers", "dropout",
    "translate", "flip", "batch_size", "lr_schedule", "weight_decay", "activation", "normalization",
    "units", "standardize", "input_dropout", "max_norm", "label_smoothing", "kernel_initializer",
)  # fmt: skip

METRICS = (
    hp_api.Metric("score", display_name="score (val accuracy)",
                  description="validation accuracy at the epoch the search selected: the number the command line prints"),
    hp_api.Metric("epochs", display_name="epochs", description="epochs trained"),
    hp_api.Metric("val_loss", display_name="val loss", description="validation loss at the selected epoch"),
    hp_api.Metric("seconds", display_name="seconds", description="wall time of the trial or retraining"),
    hp_api.Metric("parameters", display_name="parameters", description="trainable and other weights of the model"),
    hp_api.Metric("test_accuracy", display_name="test accuracy",
                  description="the exported model only: read once, after selection"),
)  # fmt: skip
_STATUS = {"completed": "STATUS_SUCCESS", "retraining": "STATUS_SUCCESS", "export": "STATUS_SUCCESS",
           "failed": "STATUS_FAILURE", "pruned": "STATUS_UNKNOWN"}  # fmt: skip


def _clean(value: Any) -> Any:
    """A value as the dashboard shows it: floats rounded to 10 significant digits, so domains and values agree."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return float(f"{value:.10g}")
    return value


@dataclass(frozen=True)
class Column:
    """One hyperparameter column of the dashboard.

    Args:
        name: The column's name, ranked for TensorBoard's sort ("02 learning_rate").
        hp_name: The hyperparameter's own name, shown as the column's title.
        hparam: TensorBoard's `HParam` with its domain.
        conditional: Whether some configurations do not use it.
    """

    name: str
    hp_name: str
    hparam: hp_api.HParam
    conditional: bool

    def value(self, values: Mapping[str, Any]) -> Any:
        """This column's value for a configuration: its own, or the "not used" mark."""
        if self.hp_name in values:
            return _clean(values[self.hp_name])
        return _not_used(self.hparam.domain)


def _not_used(domain: hp_api.Domain) -> Any:
    """The "not used" mark of a domain's type: "n/a" for text, -1 for integers, -1.0 for reals."""
    if isinstance(domain, hp_api.Discrete):
        kinds = {type(v) for v in domain.values}
        return NOT_USED_TEXT if str in kinds else (NOT_USED_NUMBER * 1.0 if float in kinds else NOT_USED_NUMBER)
    return NOT_USED_NUMBER * 1.0 if isinstance(domain, hp_api.RealInterval) else NOT_USED_NUMBER


def _domain(hp: Any, conditional: bool) -> hp_api.Domain:
    if isinstance(hp, hp_module.Boolean):
        return hp_api.Discrete(["false", "true"] + ([NOT_USED_TEXT] if conditional else []))
    if isinstance(hp, hp_module.Fixed):
        values = [_clean(hp.value)]
    elif isinstance(hp, hp_module.Choice):
        values = [_clean(v) for v in hp.values]
    elif isinstance(hp, hp_module.Int) and hp.step not in (None, 1) and hp.sampling != "log":
        values = list(range(hp.min_value, hp.max_value + 1, hp.step))
    elif isinstance(hp, hp_module.Float) and hp.step is not None and hp.sampling != "log":
        count = int(math.floor((hp.max_value - hp.min_value) / hp.step + 1e-9)) + 1
        values = [_clean(hp.min_value + k * hp.step) for k in range(count)]  # Keras Tuner's own grid
    else:
        low, high = hp.min_value, hp.max_value
        if conditional:
            low = min(low, NOT_USED_NUMBER)
        return hp_api.IntInterval(int(low), int(high)) if isinstance(hp, hp_module.Int) else hp_api.RealInterval(float(low), float(high))
    if conditional:
        values.append(_not_used(hp_api.Discrete(values)))
    return hp_api.Discrete(values)


def _rank(name: str) -> tuple:
    base = "units" if name.startswith("units_") else name
    preferred = PREFERRED.index(base) if base in PREFERRED else len(PREFERRED)
    index = int(name.rsplit("_", 1)[1]) if name.startswith("units_") and name.rsplit("_", 1)[1].isdigit() else -1
    return (preferred, name if preferred == len(PREFERRED) else "", index)


def columns(space: kt.HyperParameters) -> list[Column]:
    """Every hyperparameter of `space` as a column, `outcome` first, then the informative ones.

    Args:
        space: Every hyperparameter a space declares (`search_spaces.base.every_branch`).
    """
    outcome = Column(f"00 {OUTCOME}", OUTCOME, hp_api.HParam(f"00 {OUTCOME}", hp_api.Discrete(list(OUTCOMES)),
                     display_name=OUTCOME, description="how the session ended"), False)  # fmt: skip
    entries = sorted({hp.name: hp for hp in space.space}.values(), key=lambda hp: _rank(hp.name))
    found = [outcome]
    for rank, hp in enumerate(entries, start=1):
        conditional = bool(hp.conditions)
        name = f"{rank:02d} {hp.name}"
        description = f"-1 or {NOT_USED_TEXT!r}: not used by this configuration" if conditional else None
        hparam = hp_api.HParam(name, _domain(hp, conditional), display_name=hp.name, description=description)
        found.append(Column(name, hp.name, hparam, conditional))
    return found


def write_experiment(log_dir: Path, table: list[Column]) -> list[str]:
    """Writes the experiment summary (every column and metric) at the top of `log_dir`, replacing an earlier one.

    Returns:
        The hyperparameters' own names, in column order.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("events.out.tfevents.*"):
        old.unlink()
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        hp_api.hparams_config(hparams=[c.hparam for c in table], metrics=list(METRICS))
    writer.close()
    return [c.hp_name for c in table]


def trial_session_dir(log_dir: Path, trial_id: str) -> Path:
    """Where a trial's TensorBoard run and session live: `logs/RUN/trials/ID/execution0`."""
    return log_dir / TRIALS_DIR / str(trial_id) / "execution0"


def retrain_session_dir(log_dir: Path, seed: int) -> Path:
    """Where a retraining seed's run and session live: `logs/RUN/retrain/seed-S`."""
    return log_dir / RETRAIN_DIR / f"seed-{seed}"


def write_session(
    session_dir: Path,
    table: list[Column],
    values: Mapping[str, Any],
    outcome: str,
    metrics: Mapping[str, Optional[float]],
    group: str,
) -> None:
    """Writes one finished session: its column values, its metrics and its status.

    Args:
        session_dir: The session's run directory.
        table: The experiment's columns.
        values: The configuration's hyperparameter values.
        outcome: One of `OUTCOMES`.
        metrics: Values of `METRICS` by name; None or NaN ones are left out.
        group: The session group's name (the trial id, or the retraining's name).
    """
    hparams = {c.hparam: (outcome if c.hp_name == OUTCOME else c.value(values)) for c in table}
    session_dir.mkdir(parents=True, exist_ok=True)
    writer = tf.summary.create_file_writer(str(session_dir))
    with writer.as_default():
        hp_api.hparams(hparams, trial_id=group)
        for name, value in metrics.items():
            if value is not None and math.isfinite(value):
                tf.summary.scalar(name, float(value), step=0)
        status = api_pb2.Status.Value(_STATUS[outcome])
        end = hp_summary.session_end_pb(status, end_time_secs=int(time.time()))
        tf.summary.experimental.write_raw_pb(end.SerializeToString(), step=0)
    writer.close()


def retraining_metrics(history: Mapping[str, list], best_epoch: int, seconds: float, parameters: int) -> dict:
    """The session metrics of one retraining, from its Keras history and the epoch whose weights were kept."""
    pick = best_epoch - 1
    return {"score": history.get("val_accuracy", [math.nan])[pick], "epochs": len(history.get("val_accuracy", [])),
            "val_loss": history.get("val_loss", [math.nan])[pick], "seconds": seconds, "parameters": parameters}  # fmt: skip
