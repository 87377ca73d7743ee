"""Learning-rate schedules, and the wrappers that fit a built schedule to the epochs actually trained.

Owns: the warm-up-then-cosine and 1cycle schedules (Keras's own
`CosineDecay`, so a trained model serializes without custom objects),
`OneCycleSGD` (momentum moving against the rate, as 1cycle prescribes), the
wrappers `StepOffset`, `StepScale` and `Resizable` that a trainer uses to fit
a schedule to the epochs it trains (Hyperband's rungs, a retraining member
planned again), and `steps_per_epoch`. Does not own: the hyperparameters that
choose a schedule (`search_spaces._optimizers`, which builds them from here).
The export carries no optimizer, so none of these reach `load_model`.
"""

from __future__ import annotations

import math
from typing import Union

import keras
from keras import ops

SCHEDULES = ("constant", "exponential", "cosine", "1cycle")
# Schedules that end near zero after a set number of epochs: stopping them early wastes their last, best epochs.
ANNEALING_SCHEDULES = ("cosine", "1cycle")

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


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Batches in one epoch."""
    return max(1, math.ceil(train_size / batch_size))
