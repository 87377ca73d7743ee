"""The optimizer and learning-rate schedule hyperparameters, shared by every space.

Each optimizer's own parameters live in a conditional scope on `optimizer`,
and each schedule's on `lr_schedule`, so a sampler never sees SGD's momentum
on an Adam trial. The schedules themselves (Keras's `ExponentialDecay` and
`CosineDecay` with linear warm-up, 1cycle with `OneCycleSGD`) are training
machinery and live in `tuning.training.schedules`; this module declares the
hyperparameters that choose them.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import keras
import keras_tuner as kt

from tuning.training.schedules import SCHEDULES, LearningRate, OneCycleSGD, one_cycle, warmup_cosine

# Keras 3 gives every optimizer decoupled weight decay (`weight_decay`), so AdamW is Adam
# with the shared `weight_decay` hyperparameter above zero, not a choice of its own.
OPTIMIZERS = ("adam", "nadam", "sgd", "rmsprop")
# Decoupled: each step shrinks weights by `weight_decay * learning_rate`; 0 turns it off.
WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2, 5e-2)
DEFAULT_LEARNING_RATE_BOUNDS = (1e-4, 3e-2)


def learning_rate(
    hp: kt.HyperParameters, bounds: Optional[tuple[float, float]] = None, default: float = 1e-3
) -> float:
    """Declares the log-uniform `learning_rate` (the peak rate under a schedule).

    Args:
        hp: The trial's hyperparameters.
        bounds: `(low, high)`. Defaults to `DEFAULT_LEARNING_RATE_BOUNDS`.
        default: The first value tried, clipped to the bounds. Defaults to 1e-3.
    """
    low, high = bounds or DEFAULT_LEARNING_RATE_BOUNDS
    default = min(max(default, low), high)
    return hp.Float("learning_rate", low, high, sampling="log", default=default)


def schedule(
    hp: kt.HyperParameters, peak: float, steps_per_epoch: int, epochs: int, default: str = "cosine"
) -> LearningRate:
    """Declares `lr_schedule` and returns the learning rate to give the optimizer.

    Args:
        hp: The trial's hyperparameters.
        peak: The sampled learning rate.
        steps_per_epoch: Batches in one epoch of the training split.
        epochs: Epochs one cycle of the schedule spans.
        default: The first value tried. Defaults to `"cosine"`.
    """
    kind = hp.Choice("lr_schedule", list(SCHEDULES), default=default)
    if kind == "exponential":
        with hp.conditional_scope("lr_schedule", ["exponential"]):
            per_epoch = hp.Float("lr_decay_per_epoch", 0.5, 0.99, default=0.9)
        return keras.optimizers.schedules.ExponentialDecay(
            peak, decay_steps=max(1, steps_per_epoch), decay_rate=per_epoch
        )
    if kind == "cosine":
        return warmup_cosine(peak, max(2, steps_per_epoch * epochs))
    if kind == "1cycle":
        return one_cycle(peak, max(2, steps_per_epoch * epochs))
    return peak


def optimizer(
    hp: kt.HyperParameters,
    steps_per_epoch: int,
    epochs: int,
    choices: Sequence[str] = OPTIMIZERS,
    defaults: Optional[Mapping[str, Any]] = None,
    learning_rate_bounds: Optional[tuple[float, float]] = None,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
) -> keras.optimizers.Optimizer:
    """Declares the optimizer, its learning rate and schedule, weight decay, and its key parameters.

    Args:
        hp: The trial's hyperparameters.
        steps_per_epoch: Batches per epoch, for schedules.
        epochs: Epochs a schedule spans.
        choices: Optimizer names to search. Defaults to all of `OPTIMIZERS`.
        defaults: First values tried, by hyperparameter name (`optimizer`,
            `learning_rate`, `lr_schedule`, `weight_decay`, `beta_1`).
            Defaults to None: Adam at 1e-3, cosine, no weight decay.
        learning_rate_bounds: See `learning_rate`. Defaults to None.
        weight_decays: The weight decays to search. Defaults to `WEIGHT_DECAYS`.
    """
    defaults = defaults or {}
    name = hp.Choice("optimizer", list(choices), default=defaults.get("optimizer", "adam"))
    peak = learning_rate(hp, learning_rate_bounds, defaults.get("learning_rate", 1e-3))
    lr = schedule(hp, peak, steps_per_epoch, epochs, default=defaults.get("lr_schedule", "cosine"))
    decay = hp.Choice("weight_decay", list(weight_decays), default=defaults.get("weight_decay", 0.0)) or None
    if name == "sgd":
        with hp.conditional_scope("optimizer", ["sgd"]):
            momentum = hp.Choice("momentum", [0.0, 0.9, 0.95, 0.99], default=0.9)
            nesterov = hp.Boolean("nesterov", default=True)
        if hp.get("lr_schedule") == "1cycle" and momentum > 0:
            return OneCycleSGD(lr, peak_learning_rate=peak, momentum=momentum, nesterov=nesterov, weight_decay=decay)
        return keras.optimizers.SGD(learning_rate=lr, momentum=momentum, nesterov=nesterov, weight_decay=decay)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr, weight_decay=decay)
    adam_family = [n for n in ("adam", "nadam") if n in choices]
    with hp.conditional_scope("optimizer", adam_family):
        beta_1 = hp.Choice("beta_1", [0.85, 0.9, 0.95], default=defaults.get("beta_1", 0.9))
    if name == "nadam":
        return keras.optimizers.Nadam(learning_rate=lr, beta_1=beta_1, weight_decay=decay)
    return keras.optimizers.Adam(learning_rate=lr, beta_1=beta_1, weight_decay=decay)
