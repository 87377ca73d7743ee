"""The retraining's member planner under a time budget: members that fill the time, planned again from their own epochs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.final.test_evaluate import chain
from tuning.final import evaluate, retraining


@pytest.mark.parametrize("left, per_epoch, overhead, members_left, first, expected", [
    (1000, 1.0, 0.0, 3, True, 60),    # room for 17 members of 60 epochs, 3 allowed: each of the aimed length, no longer
    (100, 1.0, 0.0, 1, True, 60),     # room for two, 1 allowed: the aimed length too
    (80, 1.0, 0.0, 8, True, 88),      # room for one and a third: one, stretched towards three times 30
    (45, 1.0, 0.0, 8, True, 49),      # three quarters of a member of 60: one of 45 epochs' time, planned
                                      # 10% longer and stopped by its deadline if its epochs are as measured
    (61, 1.0, 0.0, 8, True, 67),      # one member of 60 and a sliver: one, planned 10% longer, not two of 30
    (95, 1.0, 0.0, 8, True, 47),      # one and a half members of 60: two of 47, not three of 31
    (130, 1.0, 0.0, 8, True, 65),     # two members of 60 and a little: two, each a little longer
    (44, 1.0, 2.0, 8, True, 46),      # the member's overhead comes out of its share (42 s, planned 10% longer)
    (8, 1.0, 0.0, 5, False, None),    # a later member of 8 epochs (< a third of 30) would pull the average down
    (12, 1.0, 0.0, 5, False, 13),     # ... one of 12 is worth training (planned 10% longer)
    (28, 0.26, 3.3, 7, False, 41),    # one member of 90 epochs would leave 1.3 s idle: two of 41 instead
    (9.5, 1.0, 0.0, 5, False, None),  # ... but not one that fits 9 epochs, however it is planned
    (0, 1.0, 0.0, 3, True, 1),        # the first member always trains, one epoch at least
    (1000, 1.0, 0.0, 0, False, None), # the seed cap is reached
])  # fmt: skip
def test_next_member_epochs_prefers_longer_members_to_more(left, per_epoch, overhead, members_left, first, expected):
    assert retraining.next_member_epochs(left, per_epoch, overhead, 30, members_left, first) == expected


def fake_member(epochs: int, seconds_per_epoch: float) -> retraining.Retrained:
    return retraining.Retrained(seed=0, model=None, history={}, best_epoch=epochs, epochs_run=epochs,
                              wall_seconds=epochs * seconds_per_epoch, epochs_planned=epochs,
                              epoch_seconds=(seconds_per_epoch,) * epochs)  # fmt: skip


def fill(planner: retraining.MemberPlanner, real_seconds_per_epoch: list[float], overhead: float = 3.0,
         evaluation: float = 0.5, start: float = 0.0, replan: bool = True) -> tuple[list[int], float]:  # fmt: skip
    """Runs the planner on a fake clock from `start`; member k's epochs take `real_seconds_per_epoch[k]`.

    A member stops after the epoch that ends past `planner.deadline()`, as `callbacks.Deadline` stops it.
    With `replan`, each member is planned again a quarter of its epochs in, as `callbacks.Replanned` does.
    Returns the epochs each member trained and the time the run ends, its test evaluation and export included.
    """
    now, planned = start, []
    while (epochs := planner.next_epochs(now)) is not None:
        per_epoch = real_seconds_per_epoch[min(len(planned), len(real_seconds_per_epoch) - 1)]
        started = now + overhead
        done = retraining.replan_at(epochs)
        if replan and epochs > done:
            passes = retraining.PassTimes(evaluation, evaluation)  # timed on the member, as the service does
            epochs = planner.replan(now, per_epoch, done, passes, now=started + done * per_epoch)
        deadline = planner.deadline()  # read at every epoch's end: the replanning may move it
        trained = next((k for k in range(1, epochs + 1) if started + k * per_epoch >= deadline), epochs)
        member = fake_member(trained, per_epoch)
        now += trained * per_epoch + overhead + evaluation
        planner.record(member, trained * per_epoch + overhead + evaluation, retraining.PassTimes(evaluation, evaluation))
        planned.append(trained)
    finish = retraining.EXPORT_SECONDS + len(planned) * evaluation * planner.test_per_validation * (
        planner.mc_passes + retraining.FINISH_PASSES)  # fmt: skip
    return planned, now + finish


def planner(end: float, per_epoch: float, cap: int = 8) -> retraining.MemberPlanner:
    return retraining.MemberPlanner(end=end, full_epochs=30, cap=cap, mc_passes=10, test_per_validation=2.0,
                                  seconds_per_epoch=per_epoch)  # fmt: skip


@pytest.mark.parametrize("end, per_epoch", [(1000.0, 20.0), (1200.0, 8.0), (700.0, 10.0), (3000.0, 21.0)])
def test_the_members_fill_the_budget(end, per_epoch):
    planned, ended = fill(planner(end, per_epoch), [per_epoch])
    assert 0.93 * end <= ended <= end + per_epoch, (planned, ended)  # the last member may end an epoch late
    assert max(planned) <= 90 and len(planned) < 8  # the cap did not end it


@pytest.mark.parametrize("end, per_epoch", [(31.0, 0.2), (37.0, 0.26), (41.0, 0.3), (60.0, 0.26), (90.0, 0.26)])
def test_members_fill_a_budget_whose_overhead_is_many_epochs(end, per_epoch):
    # digits: about 0.26 s an epoch and 3 s to build and trace a member. A last member capped at
    # twice --final-epochs left up to 4.7 s idle that no member of 10 epochs could use (2026-12-02:
    # 55.3 s of a 60-s run, members of 30 and 60 epochs); (31, 0.2), (37, 0.26) and (41, 0.3) ended
    # below 0.93 of the budget then.
    planned, ended = fill(planner(end, per_epoch), [per_epoch], overhead=3.0, evaluation=0.02)
    assert 0.93 * end <= ended <= end + per_epoch, (planned, ended)
    assert max(planned) <= 90 and len(planned) < 8


def test_a_slower_member_than_the_trial_said_is_planned_from():
    first = planner(1300.0, 10.0).next_epochs(0.0)
    assert 60 <= first <= 66  # the trial's 10 s an epoch leave room for two members of about 60 epochs
    planned, ended = fill(planner(1300.0, 10.0), [14.0], replan=False)  # but an epoch takes 14 s
    assert planned[0] == first and len(planned) == 2 and planned[1] < 0.6 * first  # the second gets what is left
    assert 0.93 * 1300 <= ended <= 1300.0 + 14.0
    # Planned again after its first epochs, the first member takes its half of the time at once.
    planned, ended = fill(planner(1300.0, 10.0), [14.0])
    assert len(planned) == 2 and planned[0] < first and abs(planned[0] - planned[1]) <= 0.1 * planned[0]
    assert 0.93 * 1300 <= ended <= 1300.0 + 14.0


def test_a_faster_member_than_the_trial_said_makes_room_for_more():
    slow, _ = fill(planner(1000.0, 10.0), [10.0])
    fast, ended = fill(planner(1000.0, 10.0), [6.0])
    assert len(fast) > len(slow) and 0.93 * 1000 <= ended <= 1000.0 + 6.0


@pytest.mark.parametrize("real", [18.5, 20.0, 21.5])
def test_one_long_member_fills_the_budget_when_the_trial_misjudged_its_epochs(real):
    # CIFAR-10, seed 1, at 5ec7855: the trial said 20.0 s an epoch, the member trained at 18.5 s, and
    # one member of 54 epochs left 130 s of 1,200 idle. Planned 10% longer, it fills the time; when
    # its epochs are as slow as measured or slower, its deadline stops it within an epoch of the end.
    planned, ended = fill(planner(1160.0, 20.0), [real], overhead=22.0)
    assert len(planned) == 1
    assert 0.93 * 1160 <= ended <= 1160 + real, (planned, ended)


@pytest.mark.parametrize("trial, real", [(0.42, 0.25), (0.25, 0.42), (0.41, 0.23), (0.2, 0.3)])
def test_the_first_member_is_planned_again_from_its_own_epochs(trial, real):
    # digits, a 60-s run (2026-12-02): the process's first trial timed 0.41 s an epoch, the members
    # trained at 0.23-0.25 s; planned from the trial as the only member, 49 epochs ended at 50.1 s.
    for search_ended in (30.0, 36.0, 39.0, 45.0):
        planned, ended = fill(planner(60.0, trial), [real], overhead=3.0, evaluation=0.02, start=search_ended)
        assert 0.93 * 60 <= ended <= 60 + real, (search_ended, planned, ended)
    # Without it (when the trial's time is right it changes nothing), the same runs leave time idle.
    idle = [fill(planner(60.0, trial), [real], overhead=3.0, evaluation=0.02, start=t, replan=False)[1]
            for t in (30.0, 36.0, 39.0, 45.0)]  # fmt: skip
    assert min(idle) < 0.93 * 60 or max(idle) > 60 + real, idle


@pytest.mark.parametrize("reals", [[0.35, 0.27], [0.27, 0.35], [0.25, 0.3, 0.22], [0.3, 0.22, 0.3]])
def test_a_member_faster_or_slower_than_the_one_before_is_planned_again_from_its_own_epochs(reals):
    # digits in the full suite, a busy machine (2026-12-02): the first member's epochs took a median of
    # 0.35 s, the second, planned from it as the last, ran faster, and the run ended at 55.4 s of 60.
    # On this fake clock such runs end at 57.6-58.7 s without the replanning, 60.0-60.3 s with it.
    for search_ended in (18.0, 25.0, 30.0, 36.0):
        planned, ended = fill(planner(60.0, reals[0]), reals, overhead=3.0, evaluation=0.02, start=search_ended)
        assert 0.98 * 60 <= ended <= 60 + max(reals), (search_ended, planned, ended)


def test_the_seed_cap_ends_the_retraining_early():
    planned, ended = fill(planner(10_000.0, 1.0, cap=3), [1.0])
    assert planned == [60, 60, 60] and ended < 1000  # twice --final-epochs, the aimed length, no further


def test_without_the_trials_epoch_time_one_full_member_is_timed_first():
    unknown = planner(1000.0, None)
    assert unknown.next_epochs(0.0) == 30
    unknown.record(fake_member(30, 10.0), 303.0, retraining.PassTimes(0.5, 0.5))
    assert unknown.next_epochs(303.0) is not None  # now timed: planned like any other


def test_a_members_overhead_includes_its_first_epochs_tracing():
    # Each member is built and traced anew, so the next one pays the first epoch's extra time again
    # (digits: a first epoch of 2.3 s against 0.28 s steady).
    unknown = planner(1000.0, 0.28)
    member = retraining.Retrained(seed=0, model=None, history={}, best_epoch=3, epochs_run=3, wall_seconds=2.9,
                                epochs_planned=3, epoch_seconds=(2.3, 0.28, 0.28))  # fmt: skip
    unknown.record(member, 3.3, retraining.PassTimes(0.05, 0.04))
    assert unknown.seconds_per_epoch == 0.28
    assert unknown.overhead == pytest.approx(3.3 - 3 * 0.28)


def test_the_finish_is_planned_from_warm_passes_over_validation():
    timed = planner(1000.0, 1.0)
    timed.record(fake_member(30, 1.0), 31.0, retraining.PassTimes(predict=0.5, mc_dropout=0.25))
    # 4 prediction and 10 MC-dropout passes a member over a test split twice the validation's
    assert timed.finish_seconds_per_member() == pytest.approx(2.0 * (4 * 0.5 + 10 * 0.25))
    assert timed.deadline() == pytest.approx(1000.0 - retraining.EXPORT_SECONDS - 2 * 9.0)


def test_time_passes_times_a_warm_pass_and_one_mc_dropout_pass(toy_dataset):
    with_dropout, without = chain(True), chain(False)
    for model in (with_dropout, without):
        evaluate.evaluate_split(model, toy_dataset.val)  # the member's validation score traces predict
    timed = retraining.time_passes(with_dropout, toy_dataset.val)
    assert timed.predict > 0.0 and timed.mc_dropout > 0.0
    assert retraining.time_passes(without, toy_dataset.val).mc_dropout == 0.0


def rung_setup():
    """The dense space on a toy dataset: its build function, feeder, data, its defaults, and the defaults slowed 20x."""
    from dataclasses import replace

    import keras_tuner as kt

    import search_spaces
    from search_spaces.base import SpaceContext, default_values
    from tests.conftest import make_dataset
    from tuning.training.pipeline import DatasetFeeder

    data = make_dataset()
    space = search_spaces.get("dense")
    context = SpaceContext.for_dataset(data, batch_size=32, epochs=2)
    declared = kt.HyperParameters()
    space(context).build(declared)
    defaults, slow = declared.copy(), declared.copy()
    defaults.values = default_values(declared)
    slow.values = {**default_values(declared), "learning_rate": declared.get("learning_rate") / 20}
    return (lambda epochs: space(replace(context, epochs=epochs))), DatasetFeeder(data), data, defaults, slow


def test_a_final_rung_trains_one_member_of_each_candidate_and_retrains_the_better(tmp_path):
    build, feeder, data, defaults, slow = rung_setup()
    plan = retraining.RetrainingPlan(full_epochs=2, members=2, patience=2, mc_passes=1, log_dir=tmp_path)
    lines: list[str] = []
    done = retraining.retrain_members(plan, build, slow, feeder, data, seed=0, seconds_per_epoch=None, say=lines.append,
                                      alternative=("00", "07", defaults))  # fmt: skip
    rung = done.final_rung
    assert [c["trial"] for c in rung["candidates"]] == ["07", "00"]
    scores = {c["trial"]: c["val_accuracy"] for c in rung["candidates"]}
    assert scores[rung["kept"]] == max(scores.values())
    assert done.hyperparameters.values == (defaults if rung["kept"] == "00" else slow).values
    ensemble = rung["ensemble_val_accuracy"]
    assert rung["loser_joined"] == (ensemble["with_loser"] >= ensemble["without_loser"])
    # The loser held a member's place; without a budget a dropped loser's place is filled by one more member.
    assert len(done.members) == 2
    assert sum(line.startswith("retrain seed") for line in lines) == (2 if rung["loser_joined"] else 3)
    assert any(line.startswith("final rung: keeping trial") for line in lines)
    assert any(line.startswith("final rung: the other configuration's member") for line in lines)


class Predicts:
    """A stand-in for a trained member that predicts fixed probabilities."""

    def __init__(self, probabilities):
        self.probabilities = np.asarray(probabilities, dtype="float32")

    def predict(self, batches, verbose=0):
        return self.probabilities


def member_of(probabilities, seed=0):
    model = Predicts(probabilities)
    return (retraining.Retrained(seed=seed, model=model, history={}, best_epoch=1, epochs_run=1, wall_seconds=1.0),
            {"accuracy": 0.0})  # fmt: skip


def four_rows():
    from tuning.data.types import Split

    return Split(np.zeros((4, 2), dtype="float32"), np.array([0, 0, 1, 1]))


@pytest.mark.parametrize("loser, joins", [
    # the two members are wrong on the last row; the loser is right there, and sure: 3/4 -> 4/4
    ([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.2, 0.8]], True),
    # the loser adds nothing and loses nothing: 3/4 either way, so it joins
    ([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]], True),
    # the loser is sure and wrong where the members were right: 3/4 -> 1/4
    ([[0.0, 1.0], [0.0, 1.0], [0.1, 0.9], [0.9, 0.1]], False),
])  # fmt: skip
def test_the_rungs_loser_joins_when_the_averages_validation_accuracy_is_no_lower(loser, joins):
    members = [member_of([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.6, 0.4]]),
               member_of([[0.6, 0.4], [0.8, 0.2], [0.2, 0.8], [0.55, 0.45]])]  # fmt: skip
    lines: list[str] = []
    judged = retraining._judge_loser(members, member_of(loser, seed=5), four_rows(), lines.append)
    assert judged["loser_joined"] is joins
    assert judged["ensemble_val_accuracy"]["without_loser"] == 0.75 and judged["loser_seed"] == 5
    assert lines == [f"final rung: the other configuration's member (seed 5) {'joins' if joins else 'is dropped from'} "
                     f"the ensemble: validation {judged['ensemble_val_accuracy']['with_loser']:.4f} with it, 0.7500 without"]


def test_when_the_time_ends_inside_the_final_rung_its_one_member_is_kept(tmp_path, monkeypatch):
    class OneMemberOnly(retraining.MemberPlanner):
        """Plans one member of 2 epochs, then finds no time for another."""

        planned = 0

        def next_epochs(self):
            self.planned += 1
            return 2 if self.planned == 1 else None

    monkeypatch.setattr(retraining, "MemberPlanner", OneMemberOnly)
    build, feeder, data, defaults, chosen = rung_setup()
    plan = retraining.RetrainingPlan(full_epochs=2, members=3, patience=2, mc_passes=1, log_dir=tmp_path,
                                     end=time.time() + 1000)  # fmt: skip
    lines: list[str] = []
    done = retraining.retrain_members(plan, build, chosen, feeder, data, seed=0, seconds_per_epoch=0.01, say=lines.append,
                                      alternative=("00", "07", defaults))  # fmt: skip
    assert len(done.members) == 1  # the rung's first member, not none
    assert done.final_rung["kept"] == "07" and [c["trial"] for c in done.final_rung["candidates"]] == ["07"]
    assert done.hyperparameters.values == chosen.values
    assert any(line.startswith("final rung: keeping trial 07") for line in lines)


def test_a_final_rung_needs_the_time_of_three_members_of_the_aimed_length_under_a_budget(tmp_path):
    # letter, 20a564d: with room for three members of 30 epochs, the rung's two members took the whole retraining.
    member = 60 * 2.9 + 2.9 + 2.0  # a member of 60 epochs (twice --final-epochs) at 2.9 s, as the planner guesses one
    for members_of_time, affordable in ((2.6, False), (3.2, True)):
        plan = retraining.RetrainingPlan(full_epochs=30, members=8, patience=2, mc_passes=1, log_dir=tmp_path,
                                         end=time.time() + members_of_time * member)  # fmt: skip
        assert retraining._rung_affordable(plan, 2.9) is affordable
    no_budget = retraining.RetrainingPlan(full_epochs=30, members=2, patience=2, mc_passes=1, log_dir=tmp_path)
    assert retraining._rung_affordable(no_budget, None)
