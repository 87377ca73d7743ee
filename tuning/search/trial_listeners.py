"""What happens around a trial, one small listener each, fed by the tuner's events.

Owns: the `TrialListener` interface and the listeners a search runs with:
releasing a finished trial's graphs, the trial's HParams session, handing
events to the run's `listen`, Optuna's per-epoch reports for pruning, a
worker's recycling, deleting checkpoints nothing will read, the progress
line, and the time budget's split after the first trial. The tuner
(`tuning.search.tuners.ServiceTuner`) only runs trials and hands each listener, in
order, `trial_started`, `epoch_ended` and `trial_ended`; the order of
`standard_listeners` is the order these steps happen in. Does not own:
running a trial, or the events' types (`tuning.records.events`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from tuning.records import events, hparams
from tuning.records.events import Listener, Say
from tuning.search.budget import MEMBER_STRETCH, RESERVED_MEMBERS, SEARCH_PAYS_TRIALS, BudgetClock
from tuning.search.progress import progress_line
from tuning.training import graph_memory
from tuning.training.callbacks import OBJECTIVE


class Recycle(Exception):
    """Raised by a worker's tuner after `recycle_after` trials, so that a fresh process replaces it."""


class TrialListener:
    """Hears a tuner's trials; each method does nothing unless overridden.

    `tuner` is the `ServiceTuner` that ran the trial: its oracle, its
    `trials_ended_here`, `epochs_trained` and `seconds_per_epoch`.
    """

    def trial_started(self, tuner, trial, event: events.TrialStarted) -> None:
        """A trial is about to train in this process."""

    def epoch_ended(self, tuner, trial, model, event: events.EpochEnded) -> None:
        """One of its epochs ended; `model.stop_training = True` ends the trial early."""

    def trial_ended(self, tuner, trial, event: events.TrialEnded) -> None:
        """It ended, and the oracle has settled its status and score."""


class ReleaseGraphs(TrialListener):
    """Releases the ended trial's TensorFlow graphs: without it TensorFlow keeps every trial's weights for good."""

    def trial_ended(self, tuner, trial, event: events.TrialEnded) -> None:
        graph_memory.release_finished_graphs()


class SessionWriter(TrialListener):
    """Writes each ended trial's HParams session under `logs/RUN/trials/ID/`, with the outcome the oracle settled on.

    Args:
        log_dir: `logs/RUN`.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.parameters: dict[str, int] = {}  # trial id -> parameter count of its model

    def epoch_ended(self, tuner, trial, model, event: events.EpochEnded) -> None:
        self.parameters.setdefault(trial.trial_id, int(model.count_params()))

    def trial_ended(self, tuner, trial, event: events.TrialEnded) -> None:
        ended = tuner.oracle.get_trial(event.trial_id)
        metrics = {"score": event.score, "epochs": event.epochs, "val_loss": _at_best_step(ended, "val_loss"),
                   "seconds": event.seconds, "parameters": self.parameters.get(event.trial_id)}  # fmt: skip
        values = {k: v for k, v in ended.hyperparameters.values.items() if not k.startswith("tuner/")}
        hparams.write_session(hparams.trial_session_dir(self.log_dir, event.trial_id), tuner.session_table, values,
                              event.outcome, metrics, group=f"trial {event.trial_id}")  # fmt: skip


def _at_best_step(trial, metric: str) -> float | None:
    """A metric's value at the epoch the trial's score comes from, if Keras Tuner recorded it."""
    history = trial.metrics.get_history(metric) if trial.metrics.exists(metric) else []
    at_best = [o.value for o in history if o.step == trial.best_step]
    values = at_best[-1] if at_best else None
    return float(values[0] if isinstance(values, (list, tuple)) else values) if values is not None else None


class Forward(TrialListener):
    """Hands every event to the run's `listen` (`tuning.service.tune_and_export(listen=...)`, `logs/RUN/events.jsonl`).

    Args:
        listen: The run's listener.
    """

    def __init__(self, listen: Listener) -> None:
        self.listen = listen

    def trial_started(self, tuner, trial, event: events.TrialStarted) -> None:
        self.listen(event)

    def epoch_ended(self, tuner, trial, model, event: events.EpochEnded) -> None:
        self.listen(event)

    def trial_ended(self, tuner, trial, event: events.TrialEnded) -> None:
        self.listen(event)


class OptunaPruning(TrialListener):
    """Reports each epoch's score to the trial's Optuna trial, and stops the trial when the pruner says so.

    Args:
        report: `report(trial_id, epoch, score)` is True when the trial should
            stop (`tuning.search.optuna_oracle.EpochReporter`).
    """

    def __init__(self, report: Callable[[str, int, Optional[float]], bool]) -> None:
        self.report = report

    def epoch_ended(self, tuner, trial, model, event: events.EpochEnded) -> None:
        if self.report(trial.trial_id, event.epoch - 1, event.logs.get(OBJECTIVE)):
            model.stop_training = True
            tuner.pruned_here[trial.trial_id] = event.epoch


class WorkerRecycling(TrialListener):
    """Makes a worker process stop after `after` trials (`Recycle`), so that a fresh one replaces it.

    Args:
        after: `--recycle-after`.
    """

    def __init__(self, after: int) -> None:
        self.after = after

    def trial_ended(self, tuner, trial, event: events.TrialEnded) -> None:
        if tuner.trials_ended_here >= self.after:
            raise Recycle(tuner.trials_ended_here)


class CheckpointPruning(TrialListener):
    """Deletes the weights of ended trials that neither resume nor export will read.

    The export never reads them (the best configuration is retrained), so
    `best` keeps only the best trial's, plus whatever the tuner may still
    continue from (Hyperband's open brackets), and `none` keeps only the
    latter; `all` keeps everything.

    Args:
        keep: `all`, `best` or `none` (`--keep-checkpoints`).
    """

    def __init__(self, keep: str) -> None:
        self.keep = keep

    def trial_ended(self, tuner, trial, event: events.TrialEnded) -> None:
        self.prune(tuner)

    def prune(self, tuner) -> None:
        """Deletes what is not kept, over every trial the oracle has ended."""
        if self.keep == "all":
            return
        keep = tuner.checkpoints_needed_to_resume()
        if self.keep == "best":
            keep |= {t.trial_id for t in tuner.oracle.get_best_trials(1) if t.status == "COMPLETED"}
        for trial_id in tuner.oracle.end_order:
            if trial_id not in keep:
                for path in Path(tuner.get_trial_dir(trial_id)).glob("checkpoint*"):
                    path.unlink()


class ProgressPrinter(TrialListener):
    """Says each ended trial's progress line.

    Args:
        say: Where lines go.
        total_trials: The trial cap, for "[3/50]".
    """

    def __init__(self, say: Say, total_trials: int) -> None:
        self.say, self.total_trials = say, total_trials

    def trial_ended(self, tuner, trial, event: events.TrialEnded) -> None:
        self.say(progress_line(tuner.oracle, event.trial_id, self.total_trials, event.seconds,
                               tuner.epochs_trained.get(event.trial_id)))  # fmt: skip


class BudgetSplit(TrialListener):
    """After the first trial this process ran (the defaults, on a fresh run), sets the budget's split from its epoch time.

    Args:
        clock: The search's budget clock, which holds the split.
        say: Where the split is said.
    """

    def __init__(self, clock: BudgetClock, say: Say) -> None:
        self.clock, self.say = clock, say

    def trial_ended(self, tuner, trial, event: events.TrialEnded) -> None:
        per_epoch = tuner.seconds_per_epoch(event.trial_id)
        if tuner.trials_ended_here != 1 or not per_epoch:
            return
        self.clock.observe(per_epoch)
        budget = self.clock.budget
        minutes = (budget.stop_at() - budget.began) / 60
        if not budget.search_pays:
            self.say(f"time budget: at {per_epoch:.1f}s an epoch the search cannot afford {SEARCH_PAYS_TRIALS} full "
                     f"trials beside {RESERVED_MEMBERS} retrainings of {MEMBER_STRETCH * budget.final_epochs} epochs, so it ends here "
                     f"({minutes:.1f} min) "
                     "and the retraining of the defaults gets the time")  # fmt: skip
            return
        self.say(f"time budget: the search gets {budget.search_share:.0%} ({minutes:.1f} min); the retraining keeps "
                 f"the rest, at {per_epoch:.1f}s an epoch")  # fmt: skip


def default_listeners(log_dir: Path) -> list[TrialListener]:
    """What every tuner does around a trial when given no listeners: release its graphs, write its session."""
    return [ReleaseGraphs(), SessionWriter(log_dir)]


def standard_listeners(log_dir: Path, *, worker: bool, say: Say, total_trials: int, keep_checkpoints: str = "best",
                       clock: BudgetClock | None = None, recycle_after: int | None = None,
                       listen: Listener | None = None) -> list[TrialListener]:  # fmt: skip
    """The listeners of a search's tuner, in the order their steps happen.

    Every process releases graphs, writes sessions and forwards events. A
    worker then may recycle itself; the chief reports its workers' trials and
    keeps their checkpoints tidy, so only a process that is not a worker
    prunes checkpoints, prints progress lines and splits the budget.

    Args:
        log_dir: `logs/RUN`.
        worker: Whether this process is a worker of a distributed search.
        say: Where progress lines go.
        total_trials: The trial cap.
        keep_checkpoints: `--keep-checkpoints`. Defaults to "best".
        clock: The search's budget clock, when the run has a time budget. Defaults to None.
        recycle_after: A worker's `--recycle-after`. Defaults to None.
        listen: The run's event listener. Defaults to None.
    """
    chosen = default_listeners(log_dir)
    if listen is not None:
        chosen.append(Forward(listen))
    if worker:
        return chosen + ([WorkerRecycling(recycle_after)] if recycle_after is not None else [])
    chosen += [CheckpointPruning(keep_checkpoints), ProgressPrinter(say, total_trials)]
    return chosen + ([BudgetSplit(clock, say)] if clock is not None else [])
