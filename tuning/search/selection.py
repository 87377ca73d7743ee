"""What the search found, and what is retrained: the choice after the search, and its figures.

Owns: `choose_final` (the best trial, unless the space's defaults are as
good within one standard error), the trials counted by status, the epochs
they trained, and the share of search time spent on costly configurations.
Reads the oracle and the tuner's timings; never runs a trial. Does not own:
running the search (`tuning.search.driver`) or the retraining (`tuning.final.retraining`).
"""

from __future__ import annotations

import math

import keras_tuner as kt

from search_spaces.base import default_values

# An epoch costing more than this many times the defaults' counts as costly (`costly_share`).
COSTLY = 3.0


def pruned_trials(oracle) -> dict:
    """The trials `oracle` pruned, by id, with the epoch each stopped at; empty for Keras Tuner's oracles, which never prune.

    Args:
        oracle: A Keras Tuner oracle, or a `tuning.search.optuna_oracle.OptunaOracle`.
    """
    return getattr(oracle, "pruned", {})


def costly_share(tuner, trial_ids: list[str], seconds: list[float]) -> float | None:
    """The share of the trials' time spent on those whose epochs cost over `COSTLY` times the first trial's.

    Args:
        tuner: The tuner, with the epoch times this process measured.
        trial_ids: The ended trials, in end order (the first is the space's defaults on a fresh run).
        seconds: Each one's wall time.
    """
    per_epoch = {t: tuner.seconds_per_epoch(t) for t in trial_ids}
    timed = [(per_epoch[t], s) for t, s in zip(trial_ids, seconds) if per_epoch[t] and s]
    reference = per_epoch.get(trial_ids[0]) if trial_ids else None
    if not timed or not reference:
        return None
    return round(sum(s for e, s in timed if e > COSTLY * reference) / sum(s for _, s in timed), 4)


def trial_epochs(tuner, ended: list) -> dict | None:
    """The fewest and most epochs the ended trials trained (counted in this process, else as planned)."""
    counts = [tuner.epochs_trained.get(t.trial_id) or t.hyperparameters.values.get("tuner/epochs") for t in ended]
    counts = [int(c) for c in counts if c]
    return {"min": min(counts), "max": max(counts)} if counts else None


def choose_final(oracle: kt.Oracle, validation_size: int) -> tuple[kt.engine.trial.Trial, str | None]:
    """The trial whose configuration is retrained: the best, unless the defaults are as good within the noise.

    The validation split measures accuracy with a binomial standard error of
    `sqrt(p (1 - p) / n)` (0.13 points at 99% on 5,000 images). A search of
    many configurations will find one that beats the space's defaults by
    less than that by chance alone, so the defaults, the strong prior, stay
    the choice unless a configuration beats them, trained for as many epochs,
    by more than one standard error.

    Args:
        oracle: The oracle after the search.
        validation_size: Examples in the validation split.

    Returns:
        The trial, and a sentence saying why the defaults were kept (or None).
    """
    best = oracle.get_best_trials(1)[0]
    defaults = default_values(oracle.hyperparameters)
    epochs = best.hyperparameters.values.get("tuner/epochs")
    pruned = pruned_trials(oracle)
    same = [
        t for t in oracle.trials.values()
        if t.status == "COMPLETED" and t.score is not None and t.trial_id not in pruned
        and t.hyperparameters.values.get("tuner/epochs") == epochs
        and {k: v for k, v in t.hyperparameters.values.items() if not k.startswith("tuner/")} == defaults
    ]  # fmt: skip
    if not same or best in same:
        return best, None
    kept = max(same, key=lambda t: t.score)
    error = math.sqrt(max(best.score * (1 - best.score), 0.0) / max(1, validation_size))
    if best.score - kept.score > error:
        return best, None
    return kept, (f"keeping the defaults (trial {kept.trial_id}, {kept.score:.4f}): the best, trial {best.trial_id} at "
                  f"{best.score:.4f}, is within one standard error ({error:.4f}) of them on {validation_size} validation examples")  # fmt: skip


def defaults_to_compare(oracle: kt.Oracle, chosen: kt.engine.trial.Trial) -> kt.engine.trial.Trial | None:
    """The space's defaults, to meet the search's choice at the members' length; None when there is nothing to compare.

    The search judges configurations after at most `--max-epochs` (Hyperband
    after as few as 2), and what leads after 10 epochs need not after 60: a
    10-minute search on mnist1d chose a configuration at 60.0% validation
    after 10 epochs whose members tested 59.5%, while the defaults reach 70%
    after 30 (144f8fd). So the retraining trains one member of each and keeps
    the better (`tuning.final.retraining`'s final rung). None when `chosen`
    is the defaults, or when the defaults never completed here (they ran on
    another worker, or before a resume).

    Args:
        oracle: The oracle after the search.
        chosen: The trial `choose_final` chose.
    """
    def values(trial) -> dict:
        return {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}

    defaults = default_values(oracle.hyperparameters)
    if values(chosen) == defaults:
        return None
    ran = [t for t in oracle.trials.values() if t.status == "COMPLETED" and t.score is not None and values(t) == defaults]
    if not ran:
        return None
    return max(ran, key=lambda t: (int(t.hyperparameters.values.get("tuner/epochs") or 0), t.score))


def trial_counts(oracle: kt.Oracle) -> dict[str, int]:
    """Counts the oracle's trials by status, e.g. `{"COMPLETED": 7, "PRUNED": 2, "FAILED": 1}`."""
    pruned = pruned_trials(oracle)
    counts: dict[str, int] = {}
    for trial in oracle.trials.values():
        status = "PRUNED" if trial.trial_id in pruned else trial.status
        counts[status] = counts.get(status, 0) + 1
    return counts
