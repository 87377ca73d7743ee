"""The HParams experiment and sessions, read back from the event files."""

from __future__ import annotations

from pathlib import Path

import keras_tuner as kt
import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import api_pb2, metadata

from tuning.records import hparams


def read_hparams_plugin_data(log_dir: Path) -> list:
    """Every HParams plugin payload in the event files directly inside `log_dir`."""
    found = []
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME:
                    found.append((value.tag, value.metadata.plugin_data.content))
    return found


def read_scalars(log_dir: Path) -> dict:
    """Scalar summaries directly inside `log_dir`, by tag."""
    found = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    found[value.tag] = float(tf.make_ndarray(value.tensor))
    return found


def experiment_of(log_dir: Path):
    (content,) = [c for tag, c in read_hparams_plugin_data(log_dir) if tag == metadata.EXPERIMENT_TAG]
    return metadata.parse_experiment_plugin_data(content)


def session_of(log_dir: Path) -> tuple:
    """`(start info, end info)` of the session written in `log_dir`."""
    data = dict(read_hparams_plugin_data(log_dir))
    start = metadata.parse_session_start_info_plugin_data(data[metadata.SESSION_START_INFO_TAG])
    end = metadata.parse_session_end_info_plugin_data(data[metadata.SESSION_END_INFO_TAG])
    return start, end


def small_space() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Int("num_layers", 1, 4)
    hp.Choice("optimizer", ["adam", "sgd"])
    with hp.conditional_scope("optimizer", ["sgd"]):
        hp.Choice("momentum", [0.0, 0.9])  # conditional: inactive under the default optimizer
        hp.Boolean("nesterov")
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    hp.Float("dropout", 0.0, 0.5, step=0.1)
    hp.Choice("zeta", ["a", "b"])
    return hp


def value_of(value_pb):
    kind = value_pb.WhichOneof("kind")
    return getattr(value_pb, kind)


def test_outcome_and_the_informative_columns_come_first_in_tensorboards_name_order(tmp_path):
    table = hparams.columns(small_space())
    assert [c.hp_name for c in table] == [
        "outcome", "learning_rate", "optimizer", "num_layers", "dropout", "momentum", "nesterov", "zeta"]
    assert [c.name for c in table] == sorted(c.name for c in table)  # TensorBoard sorts columns by name
    names = hparams.write_experiment(tmp_path, table)
    assert names == [c.hp_name for c in table]
    experiment = experiment_of(tmp_path)
    assert [h.display_name for h in experiment.hparam_infos][:5] == [
        "outcome", "learning_rate", "optimizer", "num_layers", "dropout"]
    assert [m.name.tag for m in experiment.metric_infos][:5] == ["score", "epochs", "val_loss", "seconds", "parameters"]


def test_domains_hold_exactly_the_values_logged_including_not_used(tmp_path):
    table = hparams.columns(small_space())
    by_name = {c.hp_name: c for c in table}
    dropout = list(by_name["dropout"].hparam.domain.values)
    assert 0.3 in dropout and 0.30000000000000004 not in dropout  # Keras Tuner's own grid, rounded
    values = {"num_layers": 2, "optimizer": "adam", "learning_rate": 0.002, "dropout": 0.1 + 0.2, "zeta": "a"}
    hparams.write_session(tmp_path, table, values, "pruned", {"score": 0.97, "epochs": 2, "val_loss": float("nan")},
                          group="trial 07")  # fmt: skip
    start, end = session_of(tmp_path)
    logged = {name: value_of(v) for name, v in start.hparams.items()}
    assert start.group_name == "trial 07"
    for column in table:
        value = logged[column.name]  # every column has a value
        domain = column.hparam.domain
        if isinstance(domain, hparams.hp_api.Discrete):
            assert value in domain.values, (column.hp_name, value, domain.values)
        else:
            assert domain.min_value <= value <= domain.max_value
    assert logged["04 dropout"] == 0.3
    assert logged["05 momentum"] == -1.0 and logged["06 nesterov"] == "n/a" and logged["00 outcome"] == "pruned"
    assert end.status == api_pb2.Status.Value("STATUS_UNKNOWN")  # pruned: not "Success"
    assert read_scalars(tmp_path) == pytest.approx({"score": 0.97, "epochs": 2.0})  # NaN left out


@pytest.mark.parametrize("outcome, status", [("completed", "STATUS_SUCCESS"), ("failed", "STATUS_FAILURE"),
                                             ("retraining", "STATUS_SUCCESS"), ("export", "STATUS_SUCCESS")])
def test_status_follows_the_outcome(outcome, status, tmp_path):
    hparams.write_session(tmp_path, hparams.columns(small_space()), {}, outcome, {}, group="g")
    assert session_of(tmp_path)[1].status == api_pb2.Status.Value(status)


def test_rewriting_replaces_the_summary(tmp_path):
    hp = kt.HyperParameters()
    hp.Int("a", 1, 2)
    hparams.write_experiment(tmp_path, hparams.columns(hp))
    hp.Int("b", 1, 2)
    hparams.write_experiment(tmp_path, hparams.columns(hp))
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    assert {h.display_name for h in experiment_of(tmp_path).hparam_infos} == {"outcome", "a", "b"}


def test_every_branch_declares_conditional_hyperparameters_no_trial_took():
    import numpy as np

    import search_spaces
    from search_spaces.base import SpaceContext, every_branch

    context = SpaceContext((8, 8), 3, np.zeros(64, np.float32), np.ones(64, np.float32), train_size=32)
    names = {hp.name for hp in every_branch(search_spaces.get("dense")(context)).space}
    assert {"units_19", "momentum", "nesterov", "lr_decay_per_epoch", "beta_1"} <= names
