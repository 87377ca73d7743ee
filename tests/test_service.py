"""A whole run in-process on scikit-learn's digits: cap, resume, overwrite, refusal."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import run_in_process
from tuning.cli import run
from tuning.config.run_config import RunConfig
from tuning.errors import UsageError


def tiny_config(tmp_path: Path, **changes) -> RunConfig:
    base = dict(
        dataset="digits", trials=2, max_epochs=2, final_epochs=1, patience=1, seed=3, final_seeds=1,
        checkpoint_root=str(tmp_path / "checkpoints"), log_root=str(tmp_path / "logs"),
    )  # fmt: skip
    base.update(changes)
    return RunConfig(**base)


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }  # fmt: skip


def test_hyperband_stops_at_the_trial_cap_and_resume_runs_only_new_trials(tmp_path):
    lines: list[str] = []
    first = run_in_process(tiny_config(tmp_path, trials=3), say=lines.append)
    assert first.metrics["search"]["trials_by_status"] == {"COMPLETED": 3}
    assert sum(line.startswith("trial ") for line in lines) == 3
    run_dir = tmp_path / "checkpoints" / "digits-hyperband"
    finished = {p.parent.name: p.read_text() for p in run_dir.glob("trial_*/trial.json")}
    assert len(finished) == 3

    lines.clear()
    second = run_in_process(tiny_config(tmp_path, trials=5), say=lines.append)
    assert second.metrics["search"]["trials_by_status"] == {"COMPLETED": 5}
    assert any("3 trial(s) already finished" in line for line in lines)
    assert sum(line.startswith("trial ") for line in lines) == 2  # only the new ones ran
    for name, text in finished.items():
        assert (run_dir / name / "trial.json").read_text() == text


def test_resume_with_other_settings_is_refused_and_changes_nothing(tmp_path):
    run_in_process(tiny_config(tmp_path, tuner="random"), say=lambda _: None)
    before = snapshot(tmp_path / "checkpoints")
    with pytest.raises(UsageError, match="exists with other settings .*max_epochs was 2, now 3"):
        run_in_process(tiny_config(tmp_path, tuner="random", max_epochs=3), say=lambda _: None)
    assert run.main(["digits", "--tuner", "random", "--trials", "0",
                     "--checkpoint-root", str(tmp_path / "checkpoints")]) == 2  # fmt: skip
    assert snapshot(tmp_path / "checkpoints") == before


def test_overwrite_starts_afresh(tmp_path):
    run_in_process(tiny_config(tmp_path, tuner="random", trials=2), say=lambda _: None)
    lines: list[str] = []
    result = run_in_process(tiny_config(tmp_path, tuner="random", trials=1, overwrite=True), say=lines.append)
    assert result.metrics["search"]["trials_by_status"] == {"COMPLETED": 1}
    assert not any("already finished" in line for line in lines)
    metrics = json.loads((result.export_dir / "metrics.json").read_text())
    assert metrics["search"]["max_trials"] == 1


@pytest.mark.slow  # two whole runs; CI keeps the oracle-level check, test_tuners::test_local_moves_are_seeded_and_reproducible
def test_same_seed_gives_the_same_trial_sequence(tmp_path):
    sequences = []
    for name in ("a", "b"):
        run_in_process(tiny_config(tmp_path, tuner="random", trials=3, name=name, seed=0), say=lambda _: None)
        trials = sorted((tmp_path / "checkpoints" / name).glob("trial_*/trial.json"))
        sequences.append([json.loads(p.read_text())["hyperparameters"]["values"] for p in trials])
    assert sequences[0] == sequences[1]


def test_lr_range_auto_narrows_the_learning_rate(tmp_path):
    lines: list[str] = []
    result = run_in_process(tiny_config(tmp_path, tuner="random", lr_range="auto"), say=lines.append)
    low, high = result.metrics["learning_rate_range_test"]["bounds"]
    assert 0 < low < high
    assert any(line.startswith("learning-rate range test:") for line in lines)
    for trial in (tmp_path / "checkpoints" / "digits-random").glob("trial_*/trial.json"):
        lr = json.loads(trial.read_text())["hyperparameters"]["values"]["learning_rate"]
        assert low <= lr <= high
    assert (tmp_path / "logs" / "digits-random" / "lr_range" / "lr_range.png").exists()
    assert "range test" in (result.export_dir / "README.md").read_text()


# History (digits, 1-minute budget): on 2026-12-01 it ended below 0.93 of its budget in 2 of 7 runs (the
# test evaluation was planned from a member's tracing prediction). On 2026-12-02, with that fixed, a
# last member capped at twice --final-epochs left 55.3 s of 60 once in 8; with that fixed too, the band
# held in 12 of 13 runs; the 13th ended at 50.1 s with one member of 49 epochs, planned from the
# process's first trial, whose epochs ran slower (0.41 s against 0.23-0.25 s for the members after it).
# Each member is now planned again a quarter of its epochs in, from its own (`callbacks.Replanned`):
# 12 of 12 runs in the band since (2026-12-02: 11 alone, 1 in the full suite; with only the first
# member planned again, 10 of 10 alone and one miss in the suite, 55.4 s). It stays in -m slow only
# for the suite's time: it adds 55-68 s, and the suite took 959 s with it on a slow afternoon.
@pytest.mark.slow
def test_a_time_budget_is_spent_to_within_seven_percent(tmp_path):
    """The live check of `--time-budget`: a digits run that reaches neither its trial cap nor its seed
    cap ends between 0.93 and 1.0 of its budget (plus an epoch), the test evaluation and export included."""
    import time

    from tuning.records import events

    seen: list = []
    config = tiny_config(tmp_path, tuner="hyperband", trials=500, max_epochs=10, patience=3, final_epochs=30,
                         final_seeds=None, time_budget=1.0)  # fmt: skip
    started = time.monotonic()
    result = run_in_process(config, say=lambda line: None, listen=seen.append)
    wall = time.monotonic() - started
    record = result.record
    trials = [e for e in seen if isinstance(e, events.TrialEnded)]
    members = {e.source for e in seen if isinstance(e, events.EpochEnded) and e.phase == "retraining"}
    # One minute may or may not pay for a search (a slow first trial makes it not); either way the time is filled.
    assert 1 <= len(trials) == sum(record.search.trials_by_status.values()) < 500
    assert 1 <= len(members) == len(record.final.members) < 8  # neither cap ended the run
    epoch = max(e.seconds for e in seen if isinstance(e, events.EpochEnded))
    first_member = [round(e.seconds, 2) for e in seen if isinstance(e, events.EpochEnded) and e.phase == "retraining"
                    and e.source == str(record.final.seeds[0]["seed"])]  # fmt: skip
    assert 0.93 * 60 <= wall <= 60 + epoch + 1.0, (wall, record.search.wall_seconds, record.search.trials_by_status,
                                                   [(s["epochs_planned"], s["epochs_run"]) for s in record.final.seeds],
                                                   first_member)  # fmt: skip
    assert record.search.time_budget_minutes == 1.0 and record.search.search_paid == (len(trials) > 1)
    assert all(s["epochs_planned"] <= 60 for s in record.final.seeds)
    # The same events, in the same order, are in logs/RUN/events.jsonl for users to follow or load.
    written = events.read(config.files.log_dir / events.EVENTS_FILE)
    assert [w["event"] for w in written] == [type(e).__name__ for e in seen]
    assert sum(w["event"] == "MemberEnded" for w in written) == len(record.final.members)
    assert sum(w["event"] == "TrialStarted" for w in written) >= len(trials)
    assert written[-1]["event"] == "Exported" and written[-1]["test_accuracy"] == record.final.test_accuracy
