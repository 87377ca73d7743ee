"""Keras Tuner's behaviour as `tuning.search.kt_patches` changes it."""

from __future__ import annotations

import json

import keras_tuner as kt

from tuning.search import kt_patches


def _oracle(directory) -> kt.Oracle:
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "max"), max_trials=5, seed=0)
    oracle._set_project_dir(str(directory), "project")
    hps = kt.HyperParameters()
    hps.Int("units", 1, 100)
    oracle.update_space(hps)
    return oracle


def test_a_trial_that_ended_before_the_process_died_is_not_handed_out_again(tmp_path, monkeypatch):
    oracle = _oracle(tmp_path)
    first = oracle.create_trial("tuner0")
    oracle.update_trial(first.trial_id, {"score": 0.5})
    first.status = kt.engine.trial.TrialStatus.COMPLETED
    oracle.end_trial(first)
    # Keras Tuner saved oracle.json before it popped the ended trial from its ongoing trials:
    # this is what a process that dies now leaves on disk.
    saved = json.loads((tmp_path / "project" / "oracle.json").read_text())
    assert saved["ongoing_trials"] == {"tuner0": first.trial_id} and saved["end_order"] == [first.trial_id]

    with monkeypatch.context() as unpatched:  # Keras Tuner's own set_state hands the ended trial out again
        unpatched.setattr(kt.Oracle, "set_state", kt_patches._kt_set_state)
        before = _oracle(tmp_path)
        before.reload()
        assert before.create_trial("tuner0").trial_id == first.trial_id

    resumed = _oracle(tmp_path)
    resumed.reload()
    assert kt.Oracle.set_state is kt_patches.set_state_without_ended_trials
    assert resumed.ongoing_trials == {}
    assert resumed.create_trial("tuner0").trial_id != first.trial_id


def test_a_trial_that_was_still_running_is_handed_out_again_on_resume(tmp_path):
    oracle = _oracle(tmp_path)
    running = oracle.create_trial("tuner0")

    resumed = _oracle(tmp_path)
    resumed.reload()
    assert resumed.create_trial("tuner0").trial_id == running.trial_id


def test_importing_the_patches_changes_nothing_and_apply_is_the_step(tmp_path):
    import subprocess
    import sys

    probe = ("import keras_tuner as kt; from keras_tuner.src import utils; from tuning.search import kt_patches; "
             "before = (kt.Oracle.set_state, utils.save_json); "
             "assert not kt_patches.applied(); kt_patches.apply(); kt_patches.apply(); "
             "assert kt_patches.applied() and kt.Oracle.set_state is not before[0]; "
             "assert utils.save_json is kt_patches.atomic_save_json; print('ok')")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_installed_keras_tuner_is_the_one_the_patches_were_written_against():
    # pyproject.toml allows 1.4.7 up to 1.5; a release other than WRITTEN_AGAINST gets a warning from apply()
    # and this test fails, so that someone reads kt_patches.py against its changes.
    assert kt.__version__ == kt_patches.WRITTEN_AGAINST


def test_apply_warns_once_about_another_keras_tuner(monkeypatch):
    import warnings

    monkeypatch.setattr(kt, "__version__", "1.4.99")
    monkeypatch.setattr(kt.Oracle, "set_state", kt_patches._kt_set_state)  # as if not yet applied
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kt_patches.apply()
    assert [str(w.message) for w in caught] == [
        "tuning's Keras Tuner patches were written against 1.4.8, but 1.4.99 is installed; "
        "read tuning/search/kt_patches.py against its changes"
    ]
    assert kt_patches.applied()
