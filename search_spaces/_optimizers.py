"""Optimizer, learning-rate schedule and their hyperparameters, shared by every space.

Each optimizer's own parameters live in a conditional scope on `optimizer`,
and each schedule's on `lr_schedule`, so a sampler never sees SGD's momentum
on an Adam trial. Schedules are Keras's own classes (`ExponentialDecay`,
`CosineDecay` with linear warm-up), so a trained model serializes without
custom objects. The one exception is `OneCycleSGD`, which moves momentum
against the learning rate; `as_stock()` swaps it for a plain `SGD` before export.
The wrappers `StepOffset`, `StepScale` and `Resizable` let a trainer fit a
built schedule to the epochs it actually trains; the export carries no optimizer.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence, Union

import keras
import keras_tuner as kt
from keras import ops

# Keras 3 gives every optimizer decoupled weight decay (`weight_decay`), so AdamW is Adam
# with the shared `weight_decay` hyperparameter above zero, not a choice of its own.
OPTIMIZERS = ("adam", "nadam", "sgd", "rmsprop")
# Decoupled: each step shrinks weights by `weight_decay * learning_rate`; 0 turns it off.
WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2, 5e-2)
SCHEDULES = ("constant", "exponential", "cosine", "1cycle")
# Schedules that end near zero after a set number of epochs: stopping them early wastes their last, best epochs.
ANNEALING_SCHEDULES = ("cosine", "1cycle")
DEFAULT_LEARNING_RATE_BOUNDS = (1e-4, 3e-2)

# 1cycle, after Smith (2018): start at peak/25, rise linearly for the first 30%
# of the steps, then anneal to peak/25,000 (cosine, Keras's built-in shape).
ONE_CYCLE_WARMUP_FRACTION = 0.3
ONE_CYCLE_START_DIVISOR = 25.0
ONE_CYCLE_END_FRACTION = 1e-3  # of the peak, after the decay phase
ONE_CYCLE_MOMENTUM_SPAN = 0.1  # momentum falls from its value by this much at the peak
# Warm-up then cosine: a short linear warm-up (Adam's early steps are noisy at
# a high rate), then cosine annealing to zero over the rest of the training.
COSINE_WARMUP_FRACTION = 0.05

LearningRate = Union[float, keras.optimizers.schedules.LearningRateSchedule]


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


def _warmup_then_cosine(
    start: float, peak: float, end_fraction: float, warmup_fraction: float, total_steps: int
) -> keras.optimizers.schedules.CosineDecay:
    # Keras's CosineDecay: linear from `start` to `peak` over the warm-up, then cosine to `end_fraction * peak`.
    warmup = max(1, int(round(warmup_fraction * total_steps)))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=start,
        decay_steps=max(1, total_steps - warmup),
        alpha=end_fraction,
        warmup_target=peak,
        warmup_steps=warmup,
    )


def one_cycle(peak: float, total_steps: int) -> keras.optimizers.schedules.CosineDecay:
    """The 1cycle learning rate: linear warm-up to `peak`, then cosine annealing far below the start.

    Args:
        peak: The highest learning rate, reached after 30% of the steps.
        total_steps: Steps of the whole cycle; later steps stay at the end value.
    """
    return _warmup_then_cosine(
        peak / ONE_CYCLE_START_DIVISOR, peak, ONE_CYCLE_END_FRACTION, ONE_CYCLE_WARMUP_FRACTION, total_steps
    )


def warmup_cosine(peak: float, total_steps: int) -> keras.optimizers.schedules.CosineDecay:
    """Linear warm-up from zero to `peak` over 5% of the steps, then cosine decay to zero.

    Args:
        peak: The highest learning rate.
        total_steps: Steps of the whole schedule; later steps stay at zero.
    """
    return _warmup_then_cosine(0.0, peak, 0.0, COSINE_WARMUP_FRACTION, total_steps)


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


@keras.saving.register_keras_serializable(package="tuning")
class StepOffset(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule read `offset` steps further on, so a continued training picks it up where it stopped.

    Args:
        schedule: The schedule being continued.
        offset: Steps already taken under it.
    """

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule, offset: int) -> None:
        self.schedule = schedule
        self.offset = int(offset)

    def __call__(self, step):
        return self.schedule(ops.add(ops.cast(step, "float32"), float(self.offset)))

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "offset": self.offset}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["offset"])


@keras.saving.register_keras_serializable(package="tuning")
class StepScale(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule run `factor` times faster, so that a schedule built for N epochs spans N / factor.

    Args:
        schedule: The schedule to compress.
        factor: Steps of `schedule` per step taken; above 1 it ends sooner.
    """

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule, factor: float) -> None:
        self.schedule = schedule
        self.factor = float(factor)

    def __call__(self, step):
        return self.schedule(ops.multiply(ops.cast(step, "float32"), self.factor))

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "factor": self.factor}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["factor"])


@keras.saving.register_keras_serializable(package="tuning")
class Resizable(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule whose remaining steps can be stretched or shrunk while it trains, without retracing.

    It reads `schedule(step * scale + shift)`, with `scale` and `shift` held
    in variables, so the traced training step sees `resize`'s change at its
    next step (a Python number would be a constant of the traced function).
    A retraining whose length is planned again after its first epochs keeps
    its schedule annealing to the new last epoch, where it already stands.
    Variables are read by reference under the TensorFlow backend, which is
    the one Keras Tuner runs on here.

    Args:
        schedule: The schedule to run.
        end_step: The step at which `schedule` reaches its end as built.
        scale: Steps of `schedule` per step taken. Defaults to 1.0.
        shift: Steps of `schedule` already skipped at step 0. Defaults to 0.0.
    """

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule, end_step: int,
                 scale: float = 1.0, shift: float = 0.0) -> None:  # fmt: skip
        self.schedule = schedule
        self.end_step = int(end_step)
        self.scale = keras.Variable(scale, dtype="float32", trainable=False, name="schedule_scale")
        self.shift = keras.Variable(shift, dtype="float32", trainable=False, name="schedule_shift")

    def __call__(self, step):
        return self.schedule(ops.add(ops.multiply(ops.cast(step, "float32"), self.scale), self.shift))

    def resize(self, step: int, end_step: int) -> None:
        """From `step` on, runs the rest of the schedule so that it ends at `end_step` instead.

        Args:
            step: The step the training has reached.
            end_step: The step at which the schedule should now end; at least `step + 1`.
        """
        end_step = max(int(end_step), step + 1)
        scale, shift = float(ops.convert_to_numpy(self.scale)), float(ops.convert_to_numpy(self.shift))
        position, end = step * scale + shift, self.end_step * scale + shift  # where it stands, where it ends
        new_scale = (end - position) / (end_step - step)
        self.scale.assign(new_scale)
        self.shift.assign(position - step * new_scale)
        self.end_step = end_step

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "end_step": self.end_step,
                "scale": float(ops.convert_to_numpy(self.scale)), "shift": float(ops.convert_to_numpy(self.shift))}  # fmt: skip

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(keras.saving.deserialize_keras_object(config.pop("schedule")), **config)


@keras.saving.register_keras_serializable(package="tuning")
class OneCycleSGD(keras.optimizers.SGD):
    """SGD whose momentum moves opposite to the learning rate, as 1cycle prescribes.

    Momentum is `momentum - span * lr / peak`: highest while the rate is low,
    lowest at the rate's peak.

    Args:
        learning_rate: A schedule, normally `one_cycle(peak, steps)`.
        peak_learning_rate: The schedule's peak.
        momentum: Momentum at the lowest learning rates. Defaults to 0.95.
        momentum_span: How far momentum falls at the peak. Defaults to 0.1.
        nesterov: Whether to use Nesterov momentum. Defaults to True.
    """

    def __init__(self, learning_rate, peak_learning_rate, momentum=0.95, momentum_span=ONE_CYCLE_MOMENTUM_SPAN,
                 nesterov=True, **kwargs):  # fmt: skip
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)
        self.peak_learning_rate = float(peak_learning_rate)
        self.momentum_span = float(min(momentum_span, momentum))

    def momentum_at(self, learning_rate):
        """The momentum that goes with `learning_rate`."""
        fraction = ops.clip(ops.divide(learning_rate, self.peak_learning_rate), 0.0, 1.0)
        return ops.subtract(self.momentum, ops.multiply(self.momentum_span, fraction))

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        momentum = ops.cast(self.momentum_at(learning_rate), variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        self.assign(m, ops.subtract(ops.multiply(m, momentum), ops.multiply(gradient, learning_rate)))
        if self.nesterov:
            self.assign_add(
                variable, ops.subtract(ops.multiply(m, momentum), ops.multiply(gradient, learning_rate))
            )
        else:
            self.assign_add(variable, m)

    def as_stock(self) -> keras.optimizers.SGD:
        """A plain `SGD` at this optimizer's settings, for models that must load with Keras alone."""
        return keras.optimizers.SGD(
            learning_rate=self._learning_rate, momentum=self.momentum, nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )

    def get_config(self):
        config = super().get_config()
        config.update(peak_learning_rate=self.peak_learning_rate, momentum_span=self.momentum_span)
        return config


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


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Batches in one epoch."""
    return max(1, math.ceil(train_size / batch_size))
