"""The HParams experiment summary, read back from the event files."""

from __future__ import annotations

from pathlib import Path

import keras_tuner as kt
import tensorflow as tf
from tensorboard.plugins.hparams import metadata

from tuning import hparams


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


def experiment_of(log_dir: Path):
    (content,) = [c for tag, c in read_hparams_plugin_data(log_dir) if tag == metadata.EXPERIMENT_TAG]
    return metadata.parse_experiment_plugin_data(content)


def test_experiment_lists_every_hyperparameter_with_its_domain(tmp_path):
    hp = kt.HyperParameters()
    hp.Int("num_layers", 1, 4)
    hp.Choice("optimizer", ["adam", "sgd"])
    with hp.conditional_scope("optimizer", ["sgd"]):
        hp.Float("momentum", 0.0, 0.99)  # conditional: inactive under the default optimizer
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    names = hparams.write_experiment(tmp_path, hp)
    assert names == ["learning_rate", "momentum", "num_layers", "optimizer"]
    experiment = experiment_of(tmp_path)
    by_name = {h.name: h for h in experiment.hparam_infos}
    assert set(by_name) == set(names)
    assert [v.string_value for v in by_name["optimizer"].domain_discrete.values] == ["adam", "sgd"]
    assert by_name["learning_rate"].domain_interval.min_value == 1e-4
    metrics = {(m.name.group, m.name.tag) for m in experiment.metric_infos}
    assert ("validation", "epoch_accuracy") in metrics and ("train", "epoch_loss") in metrics


def test_rewriting_replaces_the_summary(tmp_path):
    hp = kt.HyperParameters()
    hp.Int("a", 1, 2)
    hparams.write_experiment(tmp_path, hp)
    hp.Int("b", 1, 2)
    hparams.write_experiment(tmp_path, hp)
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    assert {h.name for h in experiment_of(tmp_path).hparam_infos} == {"a", "b"}
