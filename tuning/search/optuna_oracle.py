"""A Keras Tuner `Oracle` whose choices come from an Optuna study.

Owns: mapping Keras Tuner hyperparameters to Optuna distributions, asking the
study for each new trial (`study.ask()`), telling it how the trial ended
(`study.tell()`), reporting per-epoch validation scores for pruning, and the
Optuna sampler and pruner registries. Everything else (trial folders,
TensorBoard, resume of the Keras Tuner side, export) is Keras Tuner's and the
service's, unchanged.

The study lives in a real database (SQLite at `checkpoints/RUN/study.db` by
default, any Optuna storage URL or `journal:PATH` otherwise), so `optuna
trials` and `optuna-dashboard` can read it. A storage that stops answering
mid-search stops the run with `StorageLost`; the finished trials stay in the
study and under `checkpoints/`, and rerunning the same command resumes.
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path
from typing import Any, Callable, Optional

import keras_tuner as kt
import numpy as np
import optuna
from keras_tuner.engine import hyperparameters as hp_module
from optuna.storages.journal import JournalFileBackend

from search_spaces.base import default_values
from tuning.errors import RunError, UsageError, first_line
from tuning.registry import Registry
from tuning.search import proposals
from tuning.search.plan import OPTUNA_TUNERS

PRUNED = "PRUNED"
JOURNAL_PREFIX = "journal:"
KT_TRIAL_ATTR = "keras_tuner_trial_id"
PRUNED_AT_ATTR = "pruned_at_epoch"

SAMPLERS: Registry[Callable[[int], optuna.samplers.BaseSampler]] = Registry("Optuna sampler")


def _gp_sampler(seed: int) -> optuna.samplers.BaseSampler:
    try:
        import torch  # noqa: F401  (Optuna's GPSampler fits its model with PyTorch)
    except ImportError:
        raise UsageError(
            "--tuner gp uses Optuna's GPSampler, which needs PyTorch: pip install torch, "
            "or choose --tuner tpe or cmaes"
        ) from None
    return optuna.samplers.GPSampler(seed=seed)


_SAMPLERS = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True),
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    "gp": _gp_sampler,
}
for _name in OPTUNA_TUNERS:  # the names `tuning.config` checks options against
    SAMPLERS.register(_name, _SAMPLERS[_name])

PRUNERS: Registry[Callable[[int], optuna.pruners.BasePruner]] = Registry("pruner")
PRUNERS.register("none", lambda max_epochs: optuna.pruners.NopPruner())
PRUNERS.register("median", lambda max_epochs: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
PRUNERS.register(
    "hyperband",
    lambda max_epochs: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3),
)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna storage behind `--storage`: a database URL, or `journal:PATH` for Optuna's journal file.

    A journal file on a shared filesystem lets chief and workers on many hosts
    write one study without a database server (Optuna's `JournalFileBackend`
    locks the file for each append). Refuses, with one line, a storage that
    cannot be opened.

    Args:
        url: `sqlite:///...`, `postgresql://...`, `mysql://...` or `journal:PATH`.
    """
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX):]).expanduser()
        if not url[len(JOURNAL_PREFIX):] or not path.parent.is_dir():
            raise UsageError(f"--storage {url!r}: the journal's folder {str(path.parent)!r} does not exist; create it "
                             "or give journal:PATH in an existing folder")  # fmt: skip
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.storages.get_storage(url)
    except Exception as error:  # Optuna's own, or SQLAlchemy's for a bad URL or an unreachable server
        ours = isinstance(error, (ValueError, ImportError, optuna.exceptions.OptunaError))
        detail = first_line(error, with_type=not ours)
        raise UsageError(f"cannot open the Optuna storage {_shown(url)!r}: {detail}") from None


class StorageLost(RunError, kt.errors.FatalError):
    """The study's storage stopped answering mid-search.

    A `FatalError`, so Keras Tuner stops the search instead of failing the
    trial in hand: that trial stays running in the oracle's state, and the
    rerun that resumes the run retries it.
    """


@contextlib.contextmanager
def storage_calls(url: Any):
    """Turns a lost database connection inside the block into one `StorageLost` line.

    Args:
        url: The storage, named in the message (its password hidden).
    """
    try:
        yield
    except Exception as error:
        if isinstance(error, StorageLost) or not _lost_connection(error):
            raise
        raise StorageLost(
            f"lost the Optuna storage {_shown(url)} ({first_line(error)}); "
            "the finished trials are kept there and under checkpoints/: rerun the same command to resume "
            "once it answers again"
        ) from None


def _lost_connection(error: Exception) -> bool:
    """Whether `error`, or what it wraps (Optuna's `StorageInternalError` wraps SQLAlchemy's), is a lost connection."""
    try:
        from sqlalchemy.exc import InterfaceError, OperationalError
    except ImportError:  # pragma: no cover - Optuna's RDB storage needs SQLAlchemy
        InterfaceError = OperationalError = OSError
    seen: Optional[BaseException] = error
    while seen is not None:
        if isinstance(seen, (OperationalError, InterfaceError, OSError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _shown(url: Any) -> str:
    """A storage URL without its password."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url) if isinstance(url, str) else type(url).__name__


def suggest(trial: optuna.Trial, hp: hp_module.HyperParameter) -> Any:
    """Draws a value for one Keras Tuner hyperparameter from the matching Optuna distribution.

    Int and Float keep their bounds, linear steps and log sampling. Keras
    Tuner's multiplicative steps under log sampling, and its reverse-log
    sampling, have no Optuna twin; they become a categorical over exactly the
    values Keras Tuner could draw, or a log draw reflected into the range.
    """
    if isinstance(hp, hp_module.Fixed):
        return hp.value
    if isinstance(hp, hp_module.Boolean):
        return trial.suggest_categorical(hp.name, [False, True])
    if isinstance(hp, hp_module.Choice):
        return trial.suggest_categorical(hp.name, list(hp.values))
    if isinstance(hp, (hp_module.Int, hp_module.Float)):
        is_int = isinstance(hp, hp_module.Int)
        low, high, step, sampling = hp.min_value, hp.max_value, hp.step, hp.sampling or "linear"
        if sampling == "log" and step is not None and not (is_int and step == 1):
            # Under log sampling Keras Tuner's step is a factor: offer exactly its grid.
            return trial.suggest_categorical(hp.name, _geometric(low, high, step, is_int))
        if sampling == "reverse_log":
            drawn = trial.suggest_float(hp.name + "__reverse_log", low, high, log=True)
            value = high + low - drawn
            return int(round(value)) if is_int else value
        if is_int:
            return trial.suggest_int(hp.name, low, high, step=step or 1, log=sampling == "log")
        return trial.suggest_float(hp.name, low, high, step=step, log=sampling == "log")
    raise TypeError(f"no Optuna distribution for {type(hp).__name__} {hp.name!r}")


def _geometric(low, high, factor, is_int) -> list:
    values, value = [], low
    while value <= high * (1 + 1e-9):
        values.append(int(value) if is_int else float(value))
        value *= factor
    return values


class OptunaOracle(kt.Oracle):
    """Keras Tuner's Oracle interface over an Optuna study.

    Args:
        objective: Keras Tuner objective; its direction sets the study's.
        max_trials: Upper bound on trials.
        sampler: An Optuna sampler.
        pruner: An Optuna pruner.
        storage: An Optuna storage URL, e.g. `sqlite:////abs/path/study.db`.
        study_name: The study's name in the storage.
        **kwargs: Passed to `keras_tuner.Oracle` (seed, failure limits, ...).
    """

    def __init__(self, objective, max_trials: int, sampler, pruner, storage: str, study_name: str, **kwargs):
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)
        self.storage, self.study_name = storage, study_name
        direction = "maximize" if self.objective.direction == "max" else "minimize"
        opened = open_storage(storage) if isinstance(storage, str) else storage
        try:
            self.study = optuna.create_study(
                study_name=study_name, storage=opened, sampler=sampler, pruner=pruner,
                direction=direction, load_if_exists=True,
            )  # fmt: skip
        except (ValueError, ImportError, optuna.exceptions.OptunaError) as error:
            raise UsageError(f"cannot open the Optuna study {study_name!r} at {storage}: {first_line(error, with_type=False)}") from None
        self._numbers: dict[str, int] = {}  # Keras Tuner trial id -> Optuna trial number
        self.pruned: dict[str, int] = {}  # trial id -> epochs trained when pruned
        # Set by `tuning.search.proposals.install`; without it a fresh study still starts from the defaults.
        self.local_search: Optional[proposals.LocalSearch] = None

    def populate_space(self, trial_id: str) -> dict:
        # A proposal is enqueued, not forced: the study records it as one of its own
        # trials, so the sampler learns from it and `optuna trials` shows it.
        with storage_calls(self.storage):
            if self.local_search is not None:
                proposal = proposals.propose_for(self, self.local_search)
            else:
                proposal = None if self.study.trials else default_values(self.hyperparameters)
            if proposal is not None:
                self.study.enqueue_trial(proposal, skip_if_exists=True)
            optuna_trial = self.study.ask()
            optuna_trial.set_user_attr(KT_TRIAL_ATTR, trial_id)
            hps = hp_module.HyperParameters()
            for hp in self.hyperparameters.space:  # in declaration order, so parents precede children
                hps.merge([hp])
                if hps.is_active(hp):
                    hps.values[hp.name] = suggest(optuna_trial, hp)
        self._numbers[trial_id] = optuna_trial.number
        return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": hps.values}

    def end_trial(self, trial):
        try:
            super().end_trial(trial)
        finally:  # also when Keras Tuner stops the search here (failures in a row): the study hears of it
            ended = self.trials.get(trial.trial_id)
            number = self._numbers.get(trial.trial_id)
            if ended is not None and number is not None and trial.trial_id not in self._retry_queue:
                with storage_calls(self.storage):
                    self._tell(trial.trial_id, number, ended)

    def reconcile(self, ending: bool = False) -> int:
        """Ends the study's trials that an earlier process left RUNNING, so that none stays so.

        A killed process, a killed worker or a lost storage server leaves
        Optuna trials RUNNING that no process will tell. Keras Tuner's own
        record says what became of each: a trial it ended is told its end; a
        trial it will retry (its retry queue, refilled on resume) stays
        RUNNING and is told when the retry ends; any other (asked just as the
        process died, or never started) is told FAIL. At the end of a search
        (`ending`) no trial runs anywhere, so every RUNNING one is settled.
        Optuna's heartbeats would do this by timeout, but only for trials run
        by `study.optimize`; here Keras Tuner asks and tells, and knows.

        Args:
            ending: The search has ended. Defaults to False (it is about to start).

        Returns:
            How many trials were settled.
        """
        settled = 0
        with storage_calls(self.storage):
            for frozen in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                trial_id = frozen.user_attrs.get(KT_TRIAL_ATTR)
                if not ending and trial_id in self._retry_queue:
                    continue
                if trial_id in self.end_order and trial_id not in self._retry_queue:
                    self._tell(trial_id, frozen.number, self.trials[trial_id])
                else:
                    self.study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
                settled += 1
        return settled

    def _tell(self, trial_id: str, number: int, ended) -> None:
        frozen = self.study.get_trials(deepcopy=False)[number]
        if frozen.state.is_finished():
            self._record_late(frozen, trial_id, ended)
            return
        if frozen.user_attrs.get(PRUNED_AT_ATTR):  # set by whichever process ran the trial
            self.pruned[trial_id] = int(frozen.user_attrs[PRUNED_AT_ATTR])
        if trial_id in self.pruned:
            self.study.tell(number, state=optuna.trial.TrialState.PRUNED)
        elif ended.status == kt.engine.trial.TrialStatus.COMPLETED and ended.score is not None and np.isfinite(ended.score):
            self.study.tell(number, float(ended.score))
        else:
            self.study.tell(number, state=optuna.trial.TrialState.FAIL)

    def _record_late(self, frozen: optuna.trial.FrozenTrial, trial_id: str, ended) -> None:
        """Adds the result of a trial that completed after `reconcile` had failed its Optuna twin (a retry, a late worker)."""
        completed = ended.status == kt.engine.trial.TrialStatus.COMPLETED and ended.score is not None
        if frozen.state != optuna.trial.TrialState.FAIL or not completed or not np.isfinite(ended.score):
            return
        self.study.add_trial(optuna.trial.create_trial(
            params=frozen.params, distributions=frozen.distributions, user_attrs=dict(frozen.user_attrs),
            intermediate_values=dict(frozen.intermediate_values),
            state=optuna.trial.TrialState.PRUNED if trial_id in self.pruned else optuna.trial.TrialState.COMPLETE,
            value=None if trial_id in self.pruned else float(ended.score),
        ))  # fmt: skip

    def get_best_trials(self, num_trials: int = 1):
        """The best trials that ran to the end; pruned ones never win."""
        ranked = super().get_best_trials(len(self.trials))
        finished = [t for t in ranked if t.trial_id not in self.pruned]
        return (finished + [t for t in ranked if t.trial_id in self.pruned])[:num_trials]

    def get_state(self):
        state = super().get_state()
        state.update(optuna_numbers=self._numbers, pruned=self.pruned, study_name=self.study_name)
        return state

    def set_state(self, state):
        super().set_state(state)
        self._numbers = dict(state.get("optuna_numbers", {}))
        self.pruned = dict(state.get("pruned", {}))


class EpochReporter:
    """Reports each epoch's score to the trial's Optuna trial and asks whether to prune.

    It talks to the study's storage, not to the oracle, so a worker process
    prunes against the same study as the chief that asked for the trial:
    the Optuna trial is found by the Keras Tuner trial id the oracle stored
    on it. A pruned trial gets `pruned_at_epoch`, which the oracle reads when
    the trial ends.

    Args:
        study: The study, opened with the run's pruner.
        storage: The storage's URL, named if it stops answering. Defaults to None.
    """

    def __init__(self, study: optuna.Study, storage: Optional[str] = None) -> None:
        self.study, self.storage = study, storage
        self._trials: dict[str, optuna.Trial] = {}

    def __call__(self, trial_id: str, epoch: int, value: Optional[float]) -> bool:
        with storage_calls(self.storage):
            optuna_trial = self._running_trial(trial_id)
            if optuna_trial is None or value is None or not math.isfinite(value):
                return False
            optuna_trial.report(float(value), step=epoch)
            if optuna_trial.should_prune():
                optuna_trial.set_user_attr(PRUNED_AT_ATTR, epoch + 1)
                return True
            return False

    def _running_trial(self, trial_id: str) -> Optional[optuna.Trial]:
        if trial_id not in self._trials:
            running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            matches = [t for t in running if t.user_attrs.get(KT_TRIAL_ATTR) == trial_id]
            if not matches:
                return None
            self._trials[trial_id] = optuna.Trial(self.study, matches[-1]._trial_id)
        return self._trials[trial_id]
