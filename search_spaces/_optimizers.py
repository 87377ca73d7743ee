"""Optimizer hyperparameters shared by every space.

Each optimizer's own parameters live in a conditional scope on `optimizer`,
so a sampler never sees SGD's momentum on an Adam trial.
"""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import keras_tuner as kt

OPTIMIZERS = ("adam", "nadam", "adamw", "sgd", "rmsprop")
DEFAULT_LEARNING_RATE_BOUNDS = (1e-4, 3e-2)


def learning_rate(hp: kt.HyperParameters, bounds: Optional[tuple[float, float]] = None) -> float:
    """Declares the log-uniform `learning_rate`.

    Args:
        hp: The trial's hyperparameters.
        bounds: `(low, high)`. Defaults to `DEFAULT_LEARNING_RATE_BOUNDS`.
    """
    low, high = bounds or DEFAULT_LEARNING_RATE_BOUNDS
    default = min(max(1e-3, low), high)
    return hp.Float("learning_rate", low, high, sampling="log", default=default)


def optimizer(
    hp: kt.HyperParameters,
    choices: Sequence[str] = OPTIMIZERS,
    default: str = "adam",
    learning_rate_bounds: Optional[tuple[float, float]] = None,
) -> keras.optimizers.Optimizer:
    """Declares the optimizer, its learning rate and its key parameters.

    Args:
        hp: The trial's hyperparameters.
        choices: Optimizer names to search. Defaults to all of `OPTIMIZERS`.
        default: The first value tried. Defaults to `"adam"`.
        learning_rate_bounds: See `learning_rate`. Defaults to None.
    """
    name = hp.Choice("optimizer", list(choices), default=default)
    lr = learning_rate(hp, learning_rate_bounds)
    if name == "sgd":
        with hp.conditional_scope("optimizer", ["sgd"]):
            momentum = hp.Choice("momentum", [0.0, 0.9, 0.95, 0.99], default=0.9)
            nesterov = hp.Boolean("nesterov", default=True)
        return keras.optimizers.SGD(learning_rate=lr, momentum=momentum, nesterov=nesterov)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    adam_family = [n for n in ("adam", "nadam", "adamw") if n in choices]
    with hp.conditional_scope("optimizer", adam_family):
        beta_1 = hp.Choice("beta_1", [0.85, 0.9, 0.95], default=0.9)
    if name == "adamw":
        with hp.conditional_scope("optimizer", ["adamw"]):
            decay = hp.Float("weight_decay", 1e-5, 1e-2, sampling="log", default=1e-4)
        return keras.optimizers.AdamW(learning_rate=lr, beta_1=beta_1, weight_decay=decay)
    if name == "nadam":
        return keras.optimizers.Nadam(learning_rate=lr, beta_1=beta_1)
    return keras.optimizers.Adam(learning_rate=lr, beta_1=beta_1)
