"""The retraining: the chosen configuration trained again, member after member, planned to fill the time.

Owns: one member's training (`retrain`: the training split, early-stopped
on validation with the best weights restored), the member planner under a
time budget (`MemberPlanner`, `next_member_epochs`, each member planned
again from its own epochs a quarter of the way in), and the member loop
(`retrain_members`) with what happens after each member, one listener each
(`MemberListener`: its HParams session, its event). Does not own: choosing
the configuration (`tuning.search.selection`), the ensemble and the test
evaluation (`tuning.final.evaluate`), or the files (`tuning.final.export`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence

import keras
import keras_tuner as kt
import numpy as np

from tuning.data.datasets import Split
from tuning.errors import raise_if_stopped
from tuning.final.evaluate import _mc_dropout_pass, average_scores, evaluate_split, has_dropout, is_chain, predict_split
from tuning.records import events, hparams
from tuning.records.events import Listener, Say
from tuning.search import budget
from tuning.training import callbacks, graph_memory
from tuning.training.pipeline import EVAL_BATCH_SIZE, DatasetFeeder
from tuning.training.schedules import ANNEALING_SCHEDULES, steps_per_epoch


@dataclass(frozen=True)
class Retrained:
    """The retrained model and how its training went.

    Args:
        seed: The seed of this retraining.
        model: The model with its best-validation weights.
        history: Keras history, one list per metric.
        best_epoch: 1-based epoch whose weights were kept.
        epochs_run: Epochs actually trained before early stopping.
        wall_seconds: Time spent in the retraining.
        epochs_planned: The epochs it was given (its schedule spans them).
        epoch_seconds: Wall time of each epoch, validation included.
    """

    seed: int
    model: keras.Model
    history: dict
    best_epoch: int
    epochs_run: int
    wall_seconds: float
    epochs_planned: int = 0
    epoch_seconds: tuple[float, ...] = ()

    @property
    def steady_epoch_seconds(self) -> float:
        """A steady epoch's time (`callbacks.steady_epoch_seconds`); without epoch times, the mean epoch."""
        steady = callbacks.steady_epoch_seconds(self.epoch_seconds)
        return steady if steady is not None else self.wall_seconds / max(1, self.epochs_run)


# A member after the first shorter than this share of `--final-epochs` is not started: it would pull
# the average down more than it adds.
MIN_MEMBER_SHARE = 1 / 3
# The length a member aims for under a budget, and the most it is stretched, in `--final-epochs` (the budget's
# split counts on both).
MEMBER_STRETCH = budget.MEMBER_STRETCH
MAX_STRETCH = budget.MAX_STRETCH
# The export's time (model.keras, the SavedModel, pictures and card): a base, plus a share for
# each million parameters of the ensemble (digits: 1.3 s for one small member, 3.5 s for two larger ones).
EXPORT_SECONDS = 2.5
EXPORT_SECONDS_PER_MILLION = 0.2
# Prediction passes over the test split per member after the retraining, besides MC dropout's: the
# exported model's predictions, the confusion matrix, the member's own test accuracy, the ensemble's validation.
FINISH_PASSES = 4
# A last member that ends early leaves time no further member can use, so the last member that fits
# is planned as if its epochs took this share less than measured, and its deadline stops it if they do
# not. The first member's epoch time is the chosen trial's, from one or two steady epochs, and can be
# off by 8% either way: on CIFAR-10 (seed 1, 5ec7855) 20.0 s planned against 18.5 s trained left
# 130 s of 1,200 idle. Cut at 90% of its epochs, a cosine schedule is at 2% of its peak rate.
LAST_MEMBER_SLACK = 0.1
# A member is planned from the epoch time measured before it, and that can be far off. The first's
# comes from the chosen trial, which times one or two epochs, and the process's first trial runs
# slower (digits: 0.41 s an epoch against 0.23-0.25 s for the members after it): planned from it as
# the only member, 49 epochs ended 10 s early and no member of 10 epochs fit after it (50.1 s of a
# 60-s run). A later member's comes from the member before, and on a busy machine members differ by
# 25% (0.35 s against 0.27 s: 55.4 s of 60). So each member is planned again from its own epochs
# (`replan_at`), and its schedule is resized to match. Not after its first few: a member's early
# epochs run slower too (digits: 0.37-0.66 s for epochs 2-5 against a median of 0.29 s): planned
# again after 3 epochs, a probe's member was taken at 0.60 s an epoch against its median of 0.28 s,
# and a live run ended at 51.9 s of 60 with one member of 60 epochs. So a quarter of its epochs in,
# at least `REPLAN_MIN_STEADY_EPOCHS` after the first.
REPLAN_AT_SHARE = 0.25
REPLAN_MIN_STEADY_EPOCHS = 3


def replan_at(epochs: int) -> int:
    """The epochs a member has trained when it is planned again from its own (see `REPLAN_AT_SHARE`)."""
    return max(1 + REPLAN_MIN_STEADY_EPOCHS, math.ceil(REPLAN_AT_SHARE * epochs))


def next_member_epochs(seconds_left: float, seconds_per_epoch: float, overhead: float, full_epochs: int,
                       members_left: int, first: bool) -> int | None:  # fmt: skip
    """Epochs of the next retraining member under a time budget, or None when no member should start.

    The time left goes to as many members as it holds at `MEMBER_STRETCH`
    times `full_epochs`, rounded to the nearest (but at least one, and as
    many as it takes when each is stretched to `MAX_STRETCH` times), each
    stretched to fill its share: at equal time one member of 53-60 epochs
    beat two of 22-35 on CIFAR-10 (`budget.MEMBER_STRETCH`), and one of 30
    beat the average of two of 15 on validation, 62.1% against 60.0%
    (`bench/results/retraining-members-cifar10.json`), so longer members
    come before more of them. Each member's schedule spans its own epochs.
    The last member that fits is planned `LAST_MEMBER_SLACK` longer than
    its share holds, and stopped by its deadline (`MemberPlanner.deadline`)
    when its epochs are as slow as measured. When the seed cap is reached,
    the members stop at `MEMBER_STRETCH` times, and the time they cannot
    use stays unused.

    Args:
        seconds_left: Wall time left for the members still to train and their share of the finish.
        seconds_per_epoch: One epoch of this configuration, validation included.
        overhead: A member's time outside its epochs: building, tracing, evaluating it, its share of the finish.
        full_epochs: The epochs of a full-length member (`--final-epochs`).
        members_left: How many more members the seed cap allows.
        first: Whether no member has been trained yet; the first always starts, with at least one epoch.

    Returns:
        The epochs of the next member, or None.
    """
    if members_left < 1:
        return None
    left = max(0.0, seconds_left)
    aimed = MEMBER_STRETCH * full_epochs * seconds_per_epoch + overhead
    longest = MAX_STRETCH * full_epochs * seconds_per_epoch + overhead
    # The members the time holds at the length they aim for, to the nearest, but no fewer than it
    # takes at the longest: where a member's overhead is many epochs (digits: 3 s against 0.26 s an
    # epoch), one member capped at the longest could leave idle more than a later member could use.
    wanted = max(1, int(left / aimed + 0.5), math.ceil(left / longest))
    count = min(members_left, wanted)
    # At the seed cap a member stops at the aimed length: the time beyond it stays unused, as the
    # budget's split counted (it gave it to the search), and a quick check's members stay short.
    most = MAX_STRETCH if count == wanted else MEMBER_STRETCH
    share = left / count - overhead
    fits = int(share // seconds_per_epoch)  # epochs as fast as measured
    slack = LAST_MEMBER_SLACK if count == 1 else 0.0
    planned = min(most * full_epochs, int(share // (seconds_per_epoch * (1 - slack))))
    if first:
        return max(1, planned)
    return planned if fits >= max(1, math.ceil(MIN_MEMBER_SHARE * full_epochs)) else None


@dataclass(frozen=True)
class PassTimes:
    """What one pass over the validation split costs a trained member, to plan the test evaluation's time.

    Args:
        predict: One prediction pass, its predict function already traced.
        mc_dropout: One MC-dropout pass (`mc_dropout_passes`); 0.0 without dropout layers.
    """

    predict: float
    mc_dropout: float


def time_passes(model: keras.Model, split: Split) -> PassTimes:
    """Times one warm prediction pass and one MC-dropout pass of `model` over `split`.

    A member's first prediction (its validation score) also traces its
    predict function, and on a small split that is most of its time: on
    digits 0.16 s against 0.08 s warm, while an MC-dropout pass took 0.04 s.
    Scaling that first call to the test evaluation's passes planned 2.8 s a
    member for a finish that took about 0.8, and the budget's last member
    stopped 5 s early.

    Args:
        model: A trained member that has predicted once.
        split: The validation split.
    """
    started = time.monotonic()
    evaluate_split(model, split)  # the same call as the finish's prediction passes, now warm
    predict = time.monotonic() - started
    if not has_dropout(model) or not is_chain(model):  # the test evaluation runs MC dropout on chains only
        return PassTimes(predict=predict, mc_dropout=0.0)
    stochastic_pass = _mc_dropout_pass(model, split.x)  # its check runs once per evaluation, not per pass
    started = time.monotonic()
    stochastic_pass()
    return PassTimes(predict=predict, mc_dropout=time.monotonic() - started)


@dataclass(frozen=True)
class Replan:
    """How a training member's epochs are planned again once its own epochs are timed.

    Args:
        epochs: `epochs(model, seconds_per_epoch, epochs_done)` returns the epochs the member should now have.
        most_epochs: The most it may be given.
    """

    epochs: Callable[[keras.Model, float, int], int]
    most_epochs: int


@dataclass
class MemberPlanner:
    """Plans each retraining member under a time budget, from the times measured so far.

    Before the first member, its epoch time is the chosen trial's and its
    overhead an epoch and 2 s; afterwards both come from the last member
    trained, whose overhead is its time beyond its steady epochs (building,
    tracing its first epoch, its validation score and timing). A quarter of
    its epochs in (`replan_at`), each member is planned again from its own
    (`replan`).
    The test evaluation and export that follow the last member are kept
    out of the time: `EXPORT_SECONDS`, plus per member `FINISH_PASSES`
    prediction passes and `mc_passes` MC-dropout passes over the test split,
    each timed on the validation split (`time_passes`) and scaled to the
    test split's size, and `EXPORT_SECONDS_PER_MILLION` of its parameters.

    Args:
        end: `time.time()` by which the run should have ended.
        full_epochs: A full-length member's epochs (`--final-epochs`); under a budget members aim for
            `MEMBER_STRETCH` times it.
        cap: The most members (the seed cap).
        mc_passes: MC-dropout passes of the test evaluation.
        test_per_validation: Test examples per validation example.
        seconds_per_epoch: The chosen trial's steady epoch time, or None when unknown here.
    """

    end: float
    full_epochs: int
    cap: int
    mc_passes: int
    test_per_validation: float
    seconds_per_epoch: float | None
    overhead: float | None = None
    passes: PassTimes | None = None
    parameters: int | None = None
    members: int = 0

    def finish_seconds_per_member(self) -> float:
        """The test evaluation's and the export's time per member (MC dropout included)."""
        export = EXPORT_SECONDS_PER_MILLION * (self.parameters or 0) / 1e6
        if self.passes is None:  # until a member is timed: a validation pass is about 5% of an epoch here
            evaluation = 0.05 * (self.seconds_per_epoch or 0.0)
            return evaluation * self.test_per_validation * (self.mc_passes + FINISH_PASSES) + export
        passes = self.passes.predict * FINISH_PASSES + self.passes.mc_dropout * self.mc_passes
        return passes * self.test_per_validation + export

    def deadline(self) -> float:
        """`time.time()` by which the member now training must stop, so that its evaluation and the export still fit."""
        return self.end - EXPORT_SECONDS - self.finish_seconds_per_member() * (self.members + 1)

    def next_epochs(self, now: float | None = None) -> int | None:
        """The epochs of the next member, or None when none should start."""
        now = time.time() if now is None else now
        # Without the chosen trial's epoch time (it ran before a resume, or on a worker): a full-length
        # member, planned again a quarter of its epochs in.
        if self.seconds_per_epoch is None:
            return self.full_epochs if self.members == 0 else None
        finish = self.finish_seconds_per_member()
        left = self._seconds_left(now, finish)
        # Until a member is timed, building and tracing it is taken as an epoch and 2 s.
        overhead = (self.overhead if self.overhead is not None else self.seconds_per_epoch + 2.0) + finish
        return next_member_epochs(left, self.seconds_per_epoch, overhead, self.full_epochs, self.cap - self.members,
                                  first=self.members == 0)  # fmt: skip

    def replan(self, started: float, seconds_per_epoch: float, epochs_done: int, passes: PassTimes | None = None,
               now: float | None = None) -> int:  # fmt: skip
        """Takes the times of the member now training and plans its epochs again.

        The member is planned as at its start, with its own epoch time and
        what it has cost beyond its epochs so far (building and tracing it),
        plus an epoch for its validation score and timing after training.

        Args:
            started: `time.time()` when the member started.
            seconds_per_epoch: Its steady epoch time so far.
            epochs_done: Epochs it has trained; it is given at least these.
            passes: Its passes over the validation split, timed now
                (`time_passes`). Defaults to None (not timed: guessed).
            now: `time.time()`. Defaults to None (now).
        """
        now = time.time() if now is None else now
        self.seconds_per_epoch = seconds_per_epoch
        self.passes = passes or self.passes
        finish = self.finish_seconds_per_member()
        left = self._seconds_left(started, finish)
        overhead = max(0.0, now - started - seconds_per_epoch * epochs_done) + seconds_per_epoch + finish
        # `first=True`: the member is already running, so it is given at least an epoch, never None.
        planned = next_member_epochs(left, seconds_per_epoch, overhead, self.full_epochs, self.cap - self.members,
                                     first=True)  # fmt: skip
        return max(epochs_done, planned)

    def _seconds_left(self, at: float, finish: float) -> float:
        """Time from `at` for the members still to train, less the export and the finish of those trained."""
        return self.end - at - EXPORT_SECONDS - finish * self.members

    def discard(self) -> None:
        """A member recorded earlier is dropped (a final rung's loser, once judged): its time is spent, but it
        needs no finish and does not count towards the seed cap."""
        self.members = max(0, self.members - 1)

    def record(self, retrained: "Retrained", member_seconds: float, passes: PassTimes) -> None:
        """Takes the times of a member just trained: its steady epoch, its time beyond those, its passes.

        Args:
            retrained: The member.
            member_seconds: Its whole time: building, training, its validation score and `passes`.
            passes: Its passes over the validation split (`time_passes`).
        """
        self.members += 1
        self.seconds_per_epoch = retrained.steady_epoch_seconds
        # The first epoch's tracing is overhead too: every member is built and traced anew.
        self.overhead = max(0.0, member_seconds - self.seconds_per_epoch * len(retrained.epoch_seconds))
        self.passes = passes
        if retrained.model is not None:
            self.parameters = int(retrained.model.count_params())


def retrain(
    hypermodel: kt.HyperModel,
    hyperparameters: kt.HyperParameters,
    feeder: DatasetFeeder,
    epochs: int,
    patience: int,
    seed: int,
    log_dir: Path,
    deadline: float | Callable[[], float] | None = None,
    say: Callable[[str], None] | None = None,
    listen: Callable[[events.Event], None] | None = None,
    replan: Replan | None = None,
) -> Retrained:
    """Trains the chosen configuration from scratch on the training split.

    Args:
        hypermodel: The search space.
        hyperparameters: The configuration to train.
        feeder: Train and validation feeders.
        epochs: Epoch budget.
        patience: Early-stopping patience on validation accuracy.
        seed: Seed of the weights and the shuffle order.
        log_dir: `logs/RUN`; TensorBoard goes to `retrain/seed-S` below it.
        deadline: `time.time()` after which training stops, keeping the best
            epoch's weights, or a function read after every epoch that
            returns it (`MemberPlanner.deadline`). Defaults to None.
        say: Where a progress line goes every half minute. Defaults to None (silent).
        listen: Receives an `events.EpochEnded` after every epoch. Defaults to None.
        replan: Plans `epochs` again once the member's own epochs are timed
            (`Replan`); an annealing schedule is resized to match. Defaults to
            None (`epochs` stands).
    """
    graph_memory.release_finished_graphs()  # the trials' and earlier seeds' graphs
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    started = time.monotonic()
    model = hypermodel.build(hyperparameters)
    batch_size = hyperparameters.get("batch_size")

    timer = _epoch_timer(seed, listen)
    length = None if replan is None else _replanned_length(replan, epochs, hyperparameters, feeder)
    history = model.fit(
        feeder.train.batches(batch_size, shuffle=True, seed=seed),
        validation_data=feeder.val.batches(EVAL_BATCH_SIZE),
        epochs=epochs if replan is None else max(epochs, replan.most_epochs),
        callbacks=[*_retraining_callbacks(patience, log_dir, seed, epochs, length, deadline, say), timer],
        verbose=0,
    ).history
    val_accuracy, val_loss = history.get("val_accuracy", [np.nan]), history.get("val_loss", [np.nan])
    keys = [callbacks.best_epoch_key(a, l) for a, l in zip(val_accuracy, val_loss)]
    return Retrained(
        seed=seed,
        model=model,
        history={k: [float(v) for v in vs] for k, vs in history.items()},
        best_epoch=keys.index(max(keys)) + 1,  # the epoch whose weights early stopping kept
        epochs_run=len(val_accuracy),
        wall_seconds=time.monotonic() - started,
        epochs_planned=length.epochs if length else epochs,
        epoch_seconds=tuple(timer.seconds),
    )


def _epoch_timer(seed: int, listen: Callable[[events.Event], None] | None) -> callbacks.EpochTimer:
    """Times a member's epochs and hands each on to `listen` as an `events.EpochEnded`."""

    def tell(epoch: int, logs: dict, seconds: float) -> None:
        if listen is not None:
            listen(events.EpochEnded("retraining", str(seed), epoch + 1, dict(logs), seconds, time.time()))

    return callbacks.EpochTimer(tell)


def _replanned_length(replan: Replan, epochs: int, hyperparameters: kt.HyperParameters,
                      feeder: DatasetFeeder) -> callbacks.Replanned:  # fmt: skip
    """The callback that holds a member's length and plans it again a quarter of its epochs in."""
    return callbacks.Replanned(
        epochs, replan_at(epochs), replan.epochs, steps_per_epoch(feeder.train.size, hyperparameters.get("batch_size")),
        annealing=hyperparameters.values.get("lr_schedule") in ANNEALING_SCHEDULES,
    )  # fmt: skip


def _retraining_callbacks(patience: int, log_dir: Path, seed: int, epochs: int, length: callbacks.Replanned | None,
                          deadline: float | Callable[[], float] | None,
                          say: Callable[[str], None] | None) -> list:  # fmt: skip
    """A member's callbacks: early stopping keeping the best weights, the NaN guard, TensorBoard, deadline, progress.

    With a `length`, the member's epochs are what it holds when read, and it ends the training.
    """
    planned = (lambda: length.epochs) if length is not None else epochs
    return [
        callbacks.EarlyStopping(patience, restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
        callbacks.tensorboard(hparams.retrain_session_dir(log_dir, seed)),
        *([callbacks.Deadline(deadline)] if deadline is not None else []),
        *([callbacks.Progress(say, f"retraining seed {seed}", planned)] if say is not None else []),
        *([length] if length is not None else []),
    ]


@dataclass(frozen=True)
class RetrainingPlan:
    """What the member loop needs to know, built from the run's configuration (`tuning.service`).

    Args:
        full_epochs: A full-length member's epochs (`--final-epochs`).
        members: The most members (`--final-seeds`).
        patience: Early-stopping patience without a budget.
        mc_passes: MC-dropout passes of the test evaluation, planned for under a budget.
        log_dir: `logs/RUN`; each member's TensorBoard run goes below it.
        end: `time.time()` by which the run should end, or None without a time budget.
        trial_epochs: The most epochs a trial trained (`--max-epochs`). Defaults to 10.
    """

    full_epochs: int
    members: int
    patience: int
    mc_passes: int
    log_dir: Path
    end: Optional[float] = None
    trial_epochs: int = 10


class MemberListener(Protocol):
    """Told of each member once it is trained and scored on validation, with the configuration it trained."""

    def member_ended(self, retrained: Retrained, val: dict, values: dict) -> None: ...


@dataclass
class MemberSession:
    """Writes each member's HParams session (`logs/RUN/retrain/seed-S`), so the dashboard shows it beside the trials.

    Args:
        log_dir: `logs/RUN`.
        session_table: The space's HParams columns.
    """

    log_dir: Path
    session_table: list

    def member_ended(self, retrained: Retrained, val: dict, values: dict) -> None:
        hparams.write_session(
            hparams.retrain_session_dir(self.log_dir, retrained.seed), self.session_table, values, "retraining",
            hparams.retraining_metrics(retrained.history, retrained.best_epoch, retrained.wall_seconds,
                                       retrained.model.count_params()),
            group=f"retrain seed {retrained.seed}",
        )  # fmt: skip


@dataclass
class MemberEvent:
    """Hands each member's end to the run's `listen` as an `events.MemberEnded`."""

    listen: Listener

    def member_ended(self, retrained: Retrained, val: dict, values: dict) -> None:
        self.listen(events.MemberEnded(retrained.seed, retrained.epochs_run, retrained.epochs_planned, val["accuracy"],
                                       retrained.wall_seconds, time.time()))  # fmt: skip


@dataclass(frozen=True)
class Retraining:
    """What the member loop trained: the kept members, their configuration, and the final rung, if one ran.

    Args:
        members: Each kept member with its validation scores.
        hyperparameters: The configuration the members train (a final rung's loser, when it joins them, trained
            the other: `final_rung` says so).
        final_rung: When the search's choice and the space's defaults were compared at the members' length:
            each candidate's trial id and its member's validation accuracy, the kept trial's id, and whether the
            other's member joined the ensemble (`_judge_loser`).
    """

    members: list[tuple[Retrained, dict]]
    hyperparameters: kt.HyperParameters
    final_rung: Optional[dict] = None


# A final rung runs only when the time holds this many members of the chosen configuration at the length
# members aim for (`MEMBER_STRETCH`): the rung's two, one of them dropped, and at least one more, so that the
# ensemble keeps two. Counted at --final-epochs, room for 3 was not enough: on letter (10 minutes, 2.9 s an
# epoch, 20a564d) the planner stretched the rung's two members over all of it and the ensemble was one
# member (test 98.50%, no better than the hand-picked guess's 8 members).
FINAL_RUNG_MEMBERS = 3


def _rung_affordable(plan: RetrainingPlan, seconds_per_epoch: Optional[float]) -> bool:
    if plan.end is None:
        return True  # without a budget the loser's member is one training more
    if seconds_per_epoch is None:
        return False
    member = budget.aimed_member_seconds(plan.full_epochs, seconds_per_epoch)
    return plan.end - time.time() >= FINAL_RUNG_MEMBERS * member


def retrain_members(plan: RetrainingPlan, build: Callable[[int], kt.HyperModel], hyperparameters: kt.HyperParameters,
                    feeder: DatasetFeeder, dataset, seed: int, seconds_per_epoch: Optional[float], say: Say,
                    listeners: Sequence[MemberListener] = (), listen: Optional[Listener] = None,
                    alternative: Optional[tuple[str, str, kt.HyperParameters]] = None) -> Retraining:  # fmt: skip
    """Retrains the chosen configuration member after member; returns the members with their validation scores.

    Without a time budget, `plan.members` members of `plan.full_epochs`. Under one, each member's epochs
    are planned from the time left (`MemberPlanner`); its schedule spans its own epochs.

    With an `alternative` (the space's defaults, when the search chose another
    configuration), the first two members are a final rung: one of each, at
    the members' length; the rest retrain the better on validation. The search
    ranks after at most `--max-epochs`, and a leader after 10 epochs need not
    lead after 60 (mnist1d, 144f8fd: the choice tested 59.5%; the defaults
    reach 70% on validation after 30). The loser's member holds a member's
    place until the last is trained, then joins the ensemble or is dropped
    (`_place_loser`).

    Args:
        plan: The retraining.
        build: `build(epochs)` is the space bound to the data, its schedules spanning `epochs`.
        hyperparameters: The configuration to retrain.
        feeder: The train and validation feeders.
        dataset: The dataset (its validation and test sizes plan the finish).
        seed: The run's seed; member `k` trains with `seed + k`.
        seconds_per_epoch: The chosen trial's steady epoch time, or None when unknown here.
        say: Where progress lines go.
        listeners: Told of each member's end (`MemberSession`, `MemberEvent`). Defaults to none.
        listen: Receives each member's epochs (`events.EpochEnded`). Defaults to None.
        alternative: `(its trial id, the chosen trial's id, its hyperparameters)` to compare with the chosen
            configuration first. Defaults to None.
    """
    planner = None if plan.end is None else MemberPlanner(
        end=plan.end, full_epochs=plan.full_epochs, cap=plan.members, mc_passes=plan.mc_passes,
        test_per_validation=len(dataset.test) / max(1, len(dataset.val)), seconds_per_epoch=seconds_per_epoch,
    )  # fmt: skip
    rung = _open_rung(plan, hyperparameters, alternative, seconds_per_epoch, say)
    train = _MemberTrainer(plan, planner, build, feeder, dataset, seed, say, listeners, listen)
    retrains: list[tuple[Retrained, dict]] = []
    candidates: list[tuple[Retrained, dict]] = []
    loser: Optional[tuple[Retrained, dict]] = None
    # The rung's loser holds a member's place until it is judged.
    while (epochs := _next_epochs(plan, planner, len(retrains) + (loser is not None))) is not None:
        in_rung = len(candidates) < len(rung)
        member = train(rung[len(candidates)][1] if in_rung else hyperparameters, epochs)
        if not in_rung:
            retrains.append(member)
            continue
        candidates.append(member)
        if len(candidates) == len(rung):
            hyperparameters, loser = _settle_rung(rung, candidates, retrains, say)
    if candidates and len(candidates) < len(rung):  # the time ran out inside the rung: keep what trained
        hyperparameters, loser = _settle_rung(rung[:len(candidates)], candidates, retrains, say)
    record = _rung_record(rung, candidates)
    if loser is not None:
        record.update(_place_loser(retrains, loser, plan, planner, lambda: train(hyperparameters, plan.full_epochs),
                                   dataset.val, say))  # fmt: skip
    if planner is not None and len(retrains) < plan.members:
        say(f"time budget: {len(retrains)} member(s) retrained; another would not finish in time")
    return Retraining(retrains, hyperparameters, record)


def _next_epochs(plan: RetrainingPlan, planner: Optional[MemberPlanner], members: int) -> Optional[int]:
    """The next member's epochs, or None when no more should train (`members` trained or holding a place)."""
    if planner is not None:
        return planner.next_epochs()
    return plan.full_epochs if members < plan.members else None


@dataclass
class _MemberTrainer:
    """Trains member after member (`_train_member`), seeding the k-th `seed + k`, and tells the listeners of each."""

    plan: RetrainingPlan
    planner: Optional[MemberPlanner]
    build: Callable[[int], kt.HyperModel]
    feeder: DatasetFeeder
    dataset: Any
    seed: int
    say: Say
    listeners: Sequence[MemberListener]
    listen: Optional[Listener]
    trained: int = 0

    def __call__(self, config: kt.HyperParameters, epochs: int) -> tuple[Retrained, dict]:
        member = _train_member(self.plan, self.planner, self.build, config, self.feeder, self.dataset,
                               self.seed + self.trained, epochs, self.trained, self.say, self.listen)  # fmt: skip
        self.trained += 1
        for listener in self.listeners:
            listener.member_ended(*member, config.values)
        return member


def _open_rung(plan: RetrainingPlan, hyperparameters: kt.HyperParameters,
               alternative: Optional[tuple[str, str, kt.HyperParameters]], seconds_per_epoch: Optional[float],
               say: Say) -> list[tuple[str, kt.HyperParameters]]:  # fmt: skip
    """The final rung's `(trial id, configuration)` pairs, the chosen one first; empty without one."""
    if alternative is None or not _rung_affordable(plan, seconds_per_epoch):
        return []
    say(f"final rung: the search chose trial {alternative[1]} after at most {plan.trial_epochs} epochs; one member of "
        f"it and one of the space's defaults (trial {alternative[0]}) train at the members' length, and the better "
        "on validation is retrained")  # fmt: skip
    return [(alternative[1], hyperparameters), (alternative[0], alternative[2])]


def _settle_rung(rung: list, candidates: list, retrains: list, say: Say
                 ) -> tuple[kt.HyperParameters, Optional[tuple[Retrained, dict]]]:  # fmt: skip
    """Keeps the final rung's better member in `retrains`; returns its configuration and the other's member, if any."""
    best = _rung_winner(candidates)
    retrains.append(candidates[best])
    say(f"final rung: keeping trial {rung[best][0]}'s configuration ("
        + ", ".join(f"trial {t}: {m[1]['accuracy']:.4f}" for (t, _), m in zip(rung, candidates)) + ")")  # fmt: skip
    others = [member for k, member in enumerate(candidates) if k != best]
    return rung[best][1], (others[0] if others else None)


def _rung_winner(candidates: list) -> int:
    return max(range(len(candidates)), key=lambda i: candidates[i][1]["accuracy"])


def _judge_loser(retrains: list[tuple[Retrained, dict]], loser: tuple[Retrained, dict], val: Split,
                 say: Say) -> dict:  # fmt: skip
    """Whether the final rung's loser joins the ensemble, and the validation accuracies that decided it.

    Caruana et al.'s ensemble selection (2004), one step, on validation only:
    the member joins when the average of the members' probabilities scores no
    lower with it than without it. A configuration that lost the rung by a
    validation row or two (animal_mnist at 1426382: 0.9537 against 0.9550;
    a tie) is as good a member as another of the winner's, and it errs
    elsewhere; one that lost by points (mnist1d: 68.50% against 73.25%)
    pulls the average down and is dropped.
    """
    probabilities = [predict_split(retrained.model, val) for retrained, _ in retrains]
    without = average_scores(probabilities, val)["accuracy"]
    with_it = average_scores([*probabilities, predict_split(loser[0].model, val)], val)["accuracy"]
    joined = with_it >= without
    say(f"final rung: the other configuration's member (seed {loser[0].seed}) "
        + ("joins" if joined else "is dropped from") + f" the ensemble: validation {with_it:.4f} with it, "
        f"{without:.4f} without")  # fmt: skip
    return {"loser_joined": joined, "loser_seed": loser[0].seed,
            "ensemble_val_accuracy": {"with_loser": with_it, "without_loser": without}}


def _place_loser(retrains: list[tuple[Retrained, dict]], loser: tuple[Retrained, dict], plan: RetrainingPlan,
                 planner: Optional[MemberPlanner], train_another: Callable[[], tuple[Retrained, dict]], val: Split,
                 say: Say) -> dict:  # fmt: skip
    """Adds the final rung's loser to `retrains` or drops it (`_judge_loser`); returns the judgement.

    A dropped member gives back its place: under a budget its finish is no
    longer planned for; without one, one more member of the kept
    configuration (`train_another`) fills the seed cap.
    """
    judged = _judge_loser(retrains, loser, val, say)
    if judged["loser_joined"]:
        retrains.append(loser)
    elif planner is not None:
        planner.discard()
    elif len(retrains) < plan.members:
        retrains.append(train_another())
    return judged


def _rung_record(rung: list, candidates: list) -> Optional[dict]:
    """The final rung as the metrics file records it, or None without one."""
    if not candidates:
        return None
    best = _rung_winner(candidates)
    return {"candidates": [{"trial": t, "val_accuracy": m[1]["accuracy"]} for (t, _), m in zip(rung, candidates)],
            "kept": rung[best][0]}


def _train_member(plan: RetrainingPlan, planner: Optional[MemberPlanner], build: Callable[[int], kt.HyperModel],
                  hyperparameters: kt.HyperParameters, feeder: DatasetFeeder, dataset, seed: int, epochs: int, k: int,
                  say: Say, listen: Optional[Listener]) -> tuple[Retrained, dict]:  # fmt: skip
    """One member: planned, trained, scored on validation, its times handed to the planner."""
    raise_if_stopped()
    started = time.monotonic()
    if planner is not None:
        say(f"time budget: member {k + 1} (seed {seed}) trains {epochs} epochs in the {plan.end - time.time():.0f}s left")
    # A schedule spans all of the member's epochs, and an annealing schedule runs to its
    # end: its gains come last, where early stopping would cut it. Under a budget every
    # member trains its planned epochs: the time is already its, and the best epoch is kept.
    most = MAX_STRETCH * plan.full_epochs
    annealing = hyperparameters.values.get("lr_schedule") in ANNEALING_SCHEDULES
    patience = most if planner is not None else (epochs if annealing else plan.patience)
    replan = None if planner is None else _member_replan(planner, k, epochs, most, dataset.val, say)
    retrained = retrain(build(epochs), hyperparameters, feeder, epochs, patience, seed, plan.log_dir,
                        deadline=planner.deadline if planner else None, say=say, listen=listen, replan=replan)  # fmt: skip
    val = evaluate_split(retrained.model, dataset.val)
    if planner is not None:
        planner.record(retrained, time.monotonic() - started, time_passes(retrained.model, dataset.val))
    say(f"retrain seed {seed}: val_accuracy={val['accuracy']:.4f} after {retrained.epochs_run} epochs "
        f"({retrained.wall_seconds:.0f}s)")  # fmt: skip
    return retrained, val


def _member_replan(planner: MemberPlanner, k: int, epochs: int, most: int, val: Split, say: Say) -> Replan:
    """Plans member `k` again from its own epochs: it was planned from the trial's or the last member's, or from none.

    Its passes over the validation split are timed then too, so that its
    deadline keeps the test evaluation's measured time, not a guess.
    """
    started = time.time()

    def replanned(model: Any, seconds_per_epoch: float, epochs_done: int) -> int:
        evaluate_split(model, val)  # traces the predict function, as the member's score would
        planned = planner.replan(started, seconds_per_epoch, epochs_done, time_passes(model, val))
        if planned != epochs:
            say(f"time budget: member {k + 1} now trains {planned} epochs, planned again at its own "
                f"{seconds_per_epoch:.2f}s an epoch")  # fmt: skip
        return planned

    return Replan(replanned, most)


def announce(plan: RetrainingPlan, trial_id: str, score: float, seconds_per_epoch: Optional[float],
             search_paid: Optional[bool], say: Say) -> None:  # fmt: skip
    """Says what is retrained, how many members, and what it will cost.

    Args:
        plan: The retraining.
        trial_id: The chosen trial.
        score: Its validation score.
        seconds_per_epoch: Its steady epoch time, or None when unknown here.
        search_paid: Under a time budget, whether the search could pay for itself; None without one.
        say: Where the lines go.
    """
    seeds, epochs = plan.members, plan.full_epochs
    if search_paid is False:
        say("time budget: the search could not afford enough trials to pay for itself; the retraining gets its time")
    members = f"up to {seeds} members" if plan.end is not None else f"{seeds} seed(s)"
    say(f"best trial {trial_id}: val_accuracy={score:.4f}; retraining it with {members}"
        + (" and exporting their average" if seeds > 1 else ""))  # fmt: skip
    if plan.end is not None:
        say(f"time budget: the retraining fills the {plan.end - time.time():.0f}s left, less the test evaluation "
            f"and export, with members of about {MEMBER_STRETCH * epochs} epochs, at most {MAX_STRETCH * epochs}, "
            f"at {seconds_per_epoch or float('nan'):.1f}s an epoch, each planned when it starts")  # fmt: skip
    else:
        say(_retraining_cost(seeds, epochs, seconds_per_epoch))


def _retraining_cost(seeds: int, epochs: int, per_epoch: Optional[float]) -> str:
    """What the retraining will cost without a budget, said before it starts, and how to make it cheaper."""
    if per_epoch is None:
        return f"retraining: {seeds} × up to {epochs} epochs (epoch time unknown in this process)"
    minutes = seeds * epochs * per_epoch / 60
    line = f"retraining: {seeds} × up to {epochs} epochs at {per_epoch:.1f}s an epoch, about {minutes:.1f} min"
    if minutes > 2:
        line += "; for a quicker look pass --final-seeds 1 --final-epochs 5, or --time-budget MINUTES"
    return line
