"""Keras Tuner's behaviour as `tuning.kt_patches` changes it."""

from __future__ import annotations

import json

import keras_tuner as kt

from tuning import kt_patches


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
