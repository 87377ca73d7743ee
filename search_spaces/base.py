"""What every search space shares: the context it is built for, and its base class.

Owns: `SpaceContext` (what a space may know about the data) and
`SearchSpace`, a Keras Tuner `HyperModel` that declares the batch size and
compiles for integer-labelled classification. Does not own: files, the CLI,
tuners or data loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import keras
import keras_tuner as kt
import numpy as np

from search_spaces import _optimizers

BATCH_SIZES = (64, 128, 256, 512)


@dataclass(frozen=True)
class SpaceContext:
    """What a search space may know about the problem.

    Args:
        input_shape: Shape of one example, e.g. `(28, 28)`.
        n_classes: Number of classes.
        feature_mean: Per-feature mean of the flattened training split, for
            spaces that standardize inputs. Defaults to None (no statistics).
        feature_var: Per-feature variance to match `feature_mean`.
        batch_size: A fixed batch size; None lets the space tune it.
            Defaults to None.
        learning_rate_bounds: `(low, high)` for the learning-rate
            hyperparameter; None keeps the space's own range. Defaults to None.
        train_size: Examples in the training split, for schedules. Defaults to 1.
        epochs: Epochs one learning-rate schedule spans. Defaults to 1.
    """

    input_shape: tuple[int, ...]
    n_classes: int
    feature_mean: Optional[np.ndarray] = None
    feature_var: Optional[np.ndarray] = None
    batch_size: Optional[int] = None
    learning_rate_bounds: Optional[tuple[float, float]] = None
    train_size: int = 1
    epochs: int = 1


    @classmethod
    def for_dataset(cls, dataset, **options) -> "SpaceContext":
        """The context of a loaded dataset (anything with `input_shape`,
        `n_classes`, `train` and `feature_stats()`); `options` set the rest."""
        mean, var = dataset.feature_stats()
        return cls(
            input_shape=tuple(dataset.input_shape),
            n_classes=dataset.n_classes,
            feature_mean=mean,
            feature_var=var,
            train_size=len(dataset.train),
            **options,
        )


class SearchSpace(kt.HyperModel):
    """Base class of the registered spaces.

    Subclasses implement `build_network(hp) -> keras.Model` (uncompiled, with
    a softmax output) and may set `DEFAULT_OPTIMIZER`, `DEFAULT_LEARNING_RATE`
    and `OPTIMIZERS`. The defaults are the search's first trial.
    `build` adds the batch size, the optimizer and its schedule, and compiles.

    Args:
        context: The problem the space is built for.
    """

    DEFAULT_OPTIMIZER = "adam"
    DEFAULT_LEARNING_RATE = 1e-3
    OPTIMIZERS: tuple[str, ...] = _optimizers.OPTIMIZERS

    def __init__(self, context: SpaceContext) -> None:
        super().__init__(name=type(self).__name__)
        self.context = context

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        batch_size = declare_batch_size(hp, self.context.batch_size)
        model = self.build_network(hp)
        model.compile(
            optimizer=_optimizers.optimizer(
                hp,
                steps_per_epoch=_optimizers.steps_per_epoch(self.context.train_size, batch_size),
                epochs=self.context.epochs,
                choices=self.OPTIMIZERS,
                default=self.DEFAULT_OPTIMIZER,
                learning_rate_bounds=self.context.learning_rate_bounds,
                default_learning_rate=self.DEFAULT_LEARNING_RATE,
            ),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def build_network(self, hp: kt.HyperParameters) -> keras.Model:
        raise NotImplementedError

    def standardizer(self) -> keras.layers.Layer:
        """A `Normalization` layer holding the training-split statistics.

        The statistics live in the layer's config, so the exported model takes
        raw [0, 1] inputs and loads without custom objects.
        """
        if self.context.feature_mean is None or self.context.feature_var is None:
            raise ValueError("this space standardizes inputs but the context has no feature statistics")
        return keras.layers.Normalization(
            mean=self.context.feature_mean, variance=self.context.feature_var, name="standardize"
        )


def default_values(space: kt.HyperParameters) -> dict:
    """The space's default configuration: each active hyperparameter at its default.

    Tuners try it first (see `tuning.tuners.start_from_defaults`), so a
    search never ends worse, on validation, than the space's own best guess.

    Args:
        space: A built space (an oracle's `hyperparameters`).
    """
    chosen = kt.HyperParameters()
    for hp in space.space:  # declaration order: a condition's parent comes first
        chosen.merge([hp])
        if chosen.is_active(hp):
            chosen.values[hp.name] = hp.default
    return dict(chosen.values)


def declare_batch_size(hp: kt.HyperParameters, fixed: Optional[int]) -> int:
    """Declares the `batch_size` hyperparameter: fixed when given, else tuned.

    The tuner reads it back from the trial to batch the data.
    """
    if fixed is not None:
        return hp.Fixed("batch_size", int(fixed))
    return hp.Choice("batch_size", list(BATCH_SIZES), default=128)
