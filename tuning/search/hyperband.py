"""Hyperband as this service runs it: brackets that fit the trial cap, and schedules that fit each rung.

Owns: `FittedHyperbandOracle` (Keras Tuner's Hyperband oracle with brackets
chosen so that promotions happen under the trial cap and no rung sees too few
examples, and best trials ranked at equal training), `lowest_rung`, the
Hyperband tuner over a given oracle, and
`fit_schedule_to_rung`, which makes a trial's learning-rate schedule span
the epochs of its own rung. Does not own: running trials
(`tuning.search.tuners.ServiceTuner`) or choosing what to retrain
(`tuning.search.selection`).
"""

from __future__ import annotations

import math

import keras
import keras_tuner as kt

from tuning.training.schedules import ANNEALING_SCHEDULES, StepOffset, StepScale, steps_per_epoch

HYPERBAND_FACTOR = 3
# Hyperband's lowest rung trains at least this many examples. On mnist1d (3,600 training rows), the
# rank correlation (Spearman) of 10 configurations' best validation accuracy at a low rung with the
# same configurations' after up to 60 epochs (stopped early as trials are): 2 epochs (7,200 examples)
# 0.46, 4 epochs (14,400) 0.44, 10 epochs (36,000) 0.90. The space's defaults ranked 9th and 10th of 10 after 2 and 4 epochs (20%
# validation: a 10-minute run's search dropped them from its first bracket) and 1st after 10
# (bench/results/rungs-mnist1d-low*-top60.json). MNIST's and CIFAR-10's 2-epoch rungs see 90,000+.
MIN_RUNG_EXAMPLES = 36_000


def lowest_rung(train_size: int, max_epochs: int) -> int:
    """The fewest epochs a Hyperband rung may train: enough for `MIN_RUNG_EXAMPLES`, at most `max_epochs`."""
    return max(1, min(max_epochs, math.ceil(MIN_RUNG_EXAMPLES / max(1, train_size))))


def fit_schedule_to_rung(model: keras.Model, hp: kt.HyperParameters, train_size: int, max_epochs: int) -> None:
    """Makes a Hyperband trial's learning-rate schedule span the epochs of its own rung.

    A trial's model is built with a schedule spanning `max_epochs`, the top
    rung. Judged at a 2-epoch rung, a warm-up-then-cosine schedule would
    still be near its peak there, while a constant small rate would not: the
    rung would rank schedules, not configurations (seen: the defaults at
    0.9724 after 2 of 10 epochs, behind a 16-layer net at a constant 1e-4).
    So an annealing schedule (`ANNEALING_SCHEDULES`) is compressed to span
    the epochs this round trains: a fresh trial anneals over its rung's
    epochs, and a promoted one, which Keras Tuner continues from its
    parent's weights with a new optimizer, warms up and anneals again over
    the epochs it adds (a warm restart). Other schedules are continued where
    the previous round left them (Keras Tuner's new optimizer would start
    them again at step 0). (Adam's moments restart either way; Keras Tuner
    keeps no optimizer state between rounds.)

    Args:
        model: The compiled model of the trial.
        hp: The trial's hyperparameters, with Hyperband's `tuner/epochs` and `tuner/initial_epoch`.
        train_size: Examples per epoch.
        max_epochs: The epochs the model's schedule was built to span.
    """
    optimizer = getattr(model, "optimizer", None)
    schedule = getattr(optimizer, "_learning_rate", None)  # Keras keeps the schedule object here
    if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return
    initial_epoch = int(hp.values.get("tuner/initial_epoch") or 0)
    last_epoch = int(hp.values.get("tuner/epochs") or max_epochs)
    if hp.values.get("lr_schedule") in ANNEALING_SCHEDULES:
        span = max(1, last_epoch - initial_epoch)
        if span != max_epochs:
            optimizer.learning_rate = StepScale(schedule, max_epochs / span)
    elif initial_epoch:
        optimizer.learning_rate = StepOffset(schedule, initial_epoch * steps_per_epoch(train_size, int(hp.get("batch_size"))))


class FittedHyperbandOracle(kt.oracles.HyperbandOracle):
    """Keras Tuner's Hyperband oracle: brackets fitted to the trial cap and the data, best trials ranked at equal training.

    Keras Tuner always opens with its most aggressive bracket: for
    `max_epochs=10` that is 12 configurations of 2 epochs, 4 promoted to 4
    epochs and 2 to 10, 18 trials. Under a cap of 10 trials no promotion
    would ever happen and every trial would be judged after 2 epochs. Here
    the brackets start at the most aggressive one whose trials all fit
    under the cap, so promotions happen, and whose lowest rung trains at
    least `lowest_epochs`: on a small dataset a rung of a few epochs has
    seen too few examples to rank configurations (`MIN_RUNG_EXAMPLES`).
    And `get_best_trials` ranks trials trained for more epochs first (by
    score within the same epochs), so a configuration that needs 10 epochs
    never loses to one that only leads after 2.

    Args:
        trial_cap: The run's trial cap.
        lowest_epochs: The fewest epochs a rung may train (`lowest_rung`). Defaults to 1.
        **kwargs: Passed to `keras_tuner.oracles.HyperbandOracle`.
    """

    def __init__(self, *args, trial_cap: int, lowest_epochs: int = 1, **kwargs) -> None:
        self._trial_cap = trial_cap
        self.lowest_epochs = lowest_epochs
        super().__init__(*args, **kwargs)

    def _get_num_brackets(self) -> int:
        most = super()._get_num_brackets()
        for brackets in range(most, 1, -1):
            fits = self.bracket_trials(brackets - 1) <= self._trial_cap
            if fits and self._get_epochs(brackets - 1, 0) >= self.lowest_epochs:
                return brackets
        return 1

    def bracket_trials(self, bracket_num: int) -> int:
        """Trials one bracket runs: its first round's configurations plus every promotion."""
        return sum(self._get_size(bracket_num, r) for r in range(self._get_num_rounds(bracket_num)))

    def bracket_plan(self, bracket_num: int) -> list[tuple[int, int]]:
        """`(configurations, epochs)` of each round of a bracket."""
        return [(self._get_size(bracket_num, r), self._get_epochs(bracket_num, r))
                for r in range(self._get_num_rounds(bracket_num))]  # fmt: skip

    def get_best_trials(self, num_trials: int = 1):
        ranked = super().get_best_trials(len(self.trials))
        # A stable sort: most epochs first, the oracle's score order within the same epochs.
        return sorted(ranked, key=lambda t: -int(t.hyperparameters.values.get("tuner/epochs") or 0))[:num_trials]


class HyperbandOverOracle(kt.Hyperband):
    """Keras Tuner's Hyperband tuner (epochs per trial, weights of promoted trials) over a given oracle."""

    def __init__(self, oracle: kt.Oracle, **kwargs) -> None:
        kt.Tuner.__init__(self, oracle=oracle, **kwargs)
