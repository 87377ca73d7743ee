"""Optuna as the second engine: distributions, pruning, storage, resume, determinism."""

from __future__ import annotations

import keras
import keras_tuner as kt
import optuna
import pytest

from tests.conftest import run_in_process
from tests.test_service import tiny_config
from tuning import service
from tuning.errors import UsageError
from tuning.search import selection, tuners
from tuning.search.optuna_oracle import OptunaOracle, suggest
from tuning.training import callbacks
from tuning.training.pipeline import DatasetFeeder

D = optuna.distributions


@pytest.mark.parametrize("declare, expected", [
    (lambda hp: hp.Int("a", 1, 9), D.IntDistribution(1, 9)),
    (lambda hp: hp.Int("a", 0, 100, step=10), D.IntDistribution(0, 100, step=10)),
    (lambda hp: hp.Int("a", 1, 64, sampling="log"), D.IntDistribution(1, 64, log=True)),
    (lambda hp: hp.Int("a", 1, 64, step=2, sampling="log"), D.CategoricalDistribution([1, 2, 4, 8, 16, 32, 64])),
    (lambda hp: hp.Float("a", 0.0, 1.0), D.FloatDistribution(0.0, 1.0)),
    (lambda hp: hp.Float("a", 0.0, 0.5, step=0.1), D.FloatDistribution(0.0, 0.5, step=0.1)),
    (lambda hp: hp.Float("a", 1e-4, 1e-1, sampling="log"), D.FloatDistribution(1e-4, 1e-1, log=True)),
    (lambda hp: hp.Float("a", 1e-3, 1.0, step=10, sampling="log"), D.CategoricalDistribution([1e-3, 1e-2, 1e-1, 1.0])),
    (lambda hp: hp.Choice("a", ["x", "y"]), D.CategoricalDistribution(["x", "y"])),
    (lambda hp: hp.Boolean("a"), D.CategoricalDistribution([False, True])),
])  # fmt: skip
def test_distribution_mapping(declare, expected):
    hp = kt.HyperParameters()
    declare(hp)
    trial = optuna.create_study().ask()
    value = suggest(trial, hp.space[0])
    got = trial.distributions["a"]
    if isinstance(expected, D.CategoricalDistribution):
        assert isinstance(got, D.CategoricalDistribution)
        assert list(got.choices) == pytest.approx(list(expected.choices)) if not isinstance(expected.choices[0], str) else list(got.choices) == list(expected.choices)
    else:
        assert got == expected
    assert got._contains(got.to_internal_repr(value))


def test_fixed_is_not_sampled_and_reverse_log_stays_in_range():
    hp = kt.HyperParameters()
    hp.Fixed("f", 3)
    hp.Float("r", 0.1, 0.9, sampling="reverse_log")
    trial = optuna.create_study().ask()
    assert suggest(trial, hp.space[0]) == 3 and "f" not in trial.distributions
    assert 0.1 <= suggest(trial, hp.space[1]) <= 0.9


class GoodOrBad(kt.HyperModel):
    """`good` picks a learning rate that learns, or one so small that nothing happens."""

    def build(self, hp):
        good = hp.Boolean("good")
        hp.Fixed("batch_size", 16)
        model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
        model.compile(keras.optimizers.Adam(0.05 if good else 1e-9), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


def test_pruner_stops_clearly_bad_trials_early(toy_dataset, tmp_path):
    oracle = OptunaOracle(
        objective=kt.Objective("val_accuracy", "max"), max_trials=8,
        sampler=optuna.samplers.RandomSampler(seed=4),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="prune", seed=4,
    )  # fmt: skip
    tuner = tuners.OptunaTuner(
        oracle=oracle, hypermodel=GoodOrBad(), directory=str(tmp_path), project_name="p",
        feeder=DatasetFeeder(toy_dataset), trial_seed=0, log_dir=tmp_path / "logs",
    )  # fmt: skip
    tuner.search(epochs=6, callbacks=[callbacks.EarlyStopping(10)], verbose=0)
    goodness = {t.trial_id: t.hyperparameters.get("good") for t in oracle.trials.values()}
    assert oracle.pruned, "no trial was pruned"
    assert any(goodness.values()) and not all(goodness.values())
    for trial_id, epochs in oracle.pruned.items():
        assert goodness[trial_id] is False and epochs < 6
    assert goodness[oracle.get_best_trials(1)[0].trial_id] is True
    states = {t.number: t.state for t in oracle.study.trials}
    assert sum(s == optuna.trial.TrialState.PRUNED for s in states.values()) == len(oracle.pruned)
    assert selection.trial_counts(oracle)["PRUNED"] == len(oracle.pruned)
    from tests.records.test_hparams import read_scalars, session_of, value_of
    from tuning.records import hparams

    for trial_id, epochs in oracle.pruned.items():  # the dashboard: outcome "pruned", and the epochs it trained
        session = hparams.trial_session_dir(tmp_path / "logs", trial_id)
        start, _ = session_of(session)
        assert value_of(start.hparams["00 outcome"]) == "pruned"
        assert read_scalars(session)["epochs"] == epochs


def test_tpe_search_end_to_end_with_export_and_readable_study(tmp_path):
    result = run_in_process(tiny_config(tmp_path, tuner="tpe", trials=3), say=lambda _: None)
    assert (result.export_dir / "model.keras").exists()
    counts = result.metrics["search"]["trials_by_status"]
    assert sum(counts.values()) == 3
    storage = result.metrics["search"]["optuna"]["storage"]
    assert storage.endswith("checkpoints/digits-tpe/study.db")
    study = optuna.load_study(study_name="digits-tpe", storage=storage)
    assert len(study.trials) == 3 and all(t.state.is_finished() for t in study.trials)
    assert "learning_rate" in study.trials[0].params


class Interrupt(keras.callbacks.Callback):
    """Stands in for a crash in the middle of the second trial."""

    calls = 0

    def on_epoch_end(self, epoch, logs=None):
        Interrupt.calls += 1
        if Interrupt.calls == 3:
            raise KeyboardInterrupt


def test_resume_retries_the_interrupted_trial_and_keeps_finished_ones(tmp_path, monkeypatch):
    original = callbacks.search_callbacks
    Interrupt.calls = 0
    monkeypatch.setattr(callbacks, "search_callbacks", lambda *args: [*original(*args), Interrupt()])
    with pytest.raises(KeyboardInterrupt):
        run_in_process(tiny_config(tmp_path, tuner="tpe", trials=3, max_epochs=2, patience=5), say=lambda _: None)
    monkeypatch.setattr(callbacks, "search_callbacks", original)
    storage = f"sqlite:///{tmp_path / 'checkpoints' / 'digits-tpe' / 'study.db'}"
    before = optuna.load_study(study_name="digits-tpe", storage=storage).trials
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]

    lines: list[str] = []
    run_in_process(tiny_config(tmp_path, tuner="tpe", trials=3, max_epochs=2, patience=5), say=lines.append)
    after = optuna.load_study(study_name="digits-tpe", storage=storage).trials
    assert [t.state.name for t in after] == ["COMPLETE", "COMPLETE", "COMPLETE"]
    assert after[0].params == before[0].params and after[0].value == before[0].value
    assert after[1].params == before[1].params  # the interrupted trial ran again, same configuration
    assert sum(line.startswith("trial ") for line in lines) == 2


def _proposals(tmp_path, name: str, seed: int, trials: int = 5) -> list[dict]:
    """The configurations a TPE tuner built as a run builds it proposes, each ended with a made-up score."""
    import search_spaces
    from search_spaces.base import SpaceContext
    from tuning.data import datasets

    dataset = datasets.load_dataset("digits", None)
    config = tiny_config(tmp_path, tuner="tpe", trials=trials, name=name, seed=seed)
    hypermodel = search_spaces.get("dense")(SpaceContext.for_dataset(dataset))
    config.run_dir.mkdir(parents=True)
    tuner = tuners.make_tuner(service.search_plan(config, 0.0), hypermodel, DatasetFeeder(dataset), seed, lambda _: None)
    proposed = []
    for i in range(trials):
        trial = tuner.oracle.create_trial("tuner0")
        proposed.append(dict(trial.hyperparameters.values))
        tuner.oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5 + 0.07 * ((i * 3) % 5)})
        trial.status = kt.engine.trial.TrialStatus.COMPLETED
        tuner.oracle.end_trial(trial)
    return proposed


def test_same_seed_proposes_the_same_sequence(tmp_path):
    # The run's seed reaches the sampler and the local moves (tuners.make_tuner, as service.run calls it);
    # `bench.same_run` shows whole runs, trained, agree too.
    first, again, other = _proposals(tmp_path, "a", 3), _proposals(tmp_path, "b", 3), _proposals(tmp_path, "c", 4)
    assert first == again
    assert first[0] == other[0]  # the defaults come first, whatever the seed
    assert first != other


def test_optuna_flags_are_refused_for_keras_tuner_tuners(tmp_path):
    with pytest.raises(UsageError, match=r"--pruner applies to the Optuna tuners \(tpe, cmaes, gp\), but got tuner='random'"):
        tiny_config(tmp_path, tuner="random", pruner="median")
    with pytest.raises(UsageError, match="unknown pruner 'sometimes'"):
        run_in_process(tiny_config(tmp_path, tuner="tpe", pruner="sometimes"), say=lambda _: None)
    assert not (tmp_path / "checkpoints").exists()


def test_an_unreachable_storage_is_one_usage_error_that_hides_the_password():
    from tuning.search.optuna_oracle import open_storage

    with pytest.raises(UsageError, match=r"cannot open the Optuna storage 'sqlite:///.*/no/such/folder/s.db'"):
        open_storage("sqlite:////no/such/folder/s.db")
    with pytest.raises(UsageError, match=r"'postgresql://tuning:\*\*\*@127.0.0.1:9/study'") as caught:
        open_storage("postgresql://tuning:secret@127.0.0.1:9/study")
    assert "secret" not in str(caught.value)


def test_a_lost_connection_becomes_storage_lost_and_other_errors_pass_through():
    import sqlalchemy.exc

    from tuning.search.optuna_oracle import StorageLost, storage_calls

    lost = sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("server closed the connection"))
    with pytest.raises(StorageLost, match=r"lost the Optuna storage postgresql://u:\*\*\*@db/s .*rerun the same command"):
        with storage_calls("postgresql://u:pw@db/s"):
            try:
                raise lost
            except sqlalchemy.exc.OperationalError as error:  # as Optuna wraps it
                raise optuna.exceptions.StorageInternalError("commit failed") from error
    assert issubclass(StorageLost, kt.errors.FatalError)  # Keras Tuner stops the search instead of failing the trial
    with pytest.raises(ValueError, match="not a storage problem"):
        with storage_calls("postgresql://u:pw@db/s"):
            raise ValueError("not a storage problem")


def test_trials_left_running_are_settled_on_resume_and_at_the_end(tmp_path):
    """What a killed process or a lost server leaves RUNNING in the study is settled from Keras Tuner's own record."""
    oracle = OptunaOracle(
        objective=kt.Objective("val_accuracy", "max"), max_trials=10, sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.NopPruner(), storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s", seed=1,
    )  # fmt: skip
    oracle._set_project_dir(str(tmp_path), "p")
    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle.update_space(hp)
    done = oracle.create_trial("t0")
    oracle.update_trial(done.trial_id, {"val_accuracy": 0.7})
    done.status = "COMPLETED"
    oracle.end_trial(done)
    retried = oracle.create_trial("t0")  # running when the process "died"
    oracle.study.ask()  # asked just as it died: it never reached Keras Tuner
    states = lambda: [t.state.name for t in oracle.study.get_trials(deepcopy=False)]  # noqa: E731
    assert states() == ["COMPLETE", "RUNNING", "RUNNING"]

    oracle.ongoing_trials.pop("t0")  # what Keras Tuner's reload does: the running trial waits for its retry
    oracle._retry_queue.append(retried.trial_id)
    assert oracle.reconcile(ending=False) == 1
    assert states() == ["COMPLETE", "RUNNING", "FAIL"]  # the retried trial keeps its twin, to be told when it ends

    assert oracle.reconcile(ending=True) == 1  # the search ended without the retry: nothing stays RUNNING
    assert states() == ["COMPLETE", "FAIL", "FAIL"]
    oracle._retry_queue.remove(retried.trial_id)
    oracle.update_trial(retried.trial_id, {"val_accuracy": 0.8})
    retried.status = "COMPLETED"
    oracle.ongoing_trials["t0"] = retried
    oracle.end_trial(retried)  # a late end still reaches the study, as a trial of its own
    last = oracle.study.get_trials(deepcopy=False)[-1]
    assert states() == ["COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert last.value == 0.8 and last.user_attrs["keras_tuner_trial_id"] == retried.trial_id
