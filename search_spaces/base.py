"""What every search space shares: the context it is built for, and its base class.

Owns: `SpaceContext` (what a space may know about the data), and
`SearchSpace`, a Keras Tuner `HyperModel` that declares what every space
shares (batch size, training-only input augmentation, label smoothing, the
optimizer) with per-profile defaults ("grey" digits against "colour"
photos), and compiles for integer-labelled classification. Does not own:
files, the CLI, tuners or data loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import keras
import keras_tuner as kt
import numpy as np

from search_spaces import _optimizers
from tuning.training.schedules import steps_per_epoch

BATCH_SIZES = (64, 128, 256, 512)
# Random shifts of the input, in pixels: a few pixels is the classic augmentation for small images.
TRANSLATE_PIXELS = (0, 1, 2, 3, 4)
LABEL_SMOOTHING = (0.0, 0.05, 0.1)
# What every space starts from, by profile; a space's own PRIORS are laid over these.
# The values were measured on this project's 2-core machine (docs/benchmarks.md, bench/results/priors-*.json).
SHARED_PRIORS: Mapping[str, Mapping[str, Any]] = {
    "grey": {"translate": 2, "label_smoothing": 0.0, "batch_size": 128},
    "colour": {"translate": 3, "flip": True, "label_smoothing": 0.0, "batch_size": 128},
    # Feature vectors and tables: nothing to augment; see each space's own "features" prior.
    "features": {"label_smoothing": 0.0, "batch_size": 128},
}


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
        mirror_invariant: Whether a left-right mirrored example keeps its
            label, which allows flips as augmentation. Defaults to False.
        regularization_floor: Whether augmentation, weight decay, label
            smoothing and input dropout are searched only at or above the
            profile's prior (a space's dropout is not floored: `dense`). Set
            when trials train for fewer epochs than the model that will be
            kept: less regularization wins short trainings (flips cost a point
            on CIFAR-10 after 10 epochs and are worth two after 30), so a short
            trial is no evidence for turning it down. Defaults to False.
        kind: What the examples are: `images`, `features` or `table`
            (`tuning.data.types.KINDS`). Only images are augmented. Defaults to `images`.
    """

    input_shape: tuple[int, ...]
    n_classes: int
    feature_mean: Optional[np.ndarray] = None
    feature_var: Optional[np.ndarray] = None
    batch_size: Optional[int] = None
    learning_rate_bounds: Optional[tuple[float, float]] = None
    train_size: int = 1
    epochs: int = 1
    mirror_invariant: bool = False
    regularization_floor: bool = False
    kind: str = "images"

    @property
    def image_shape(self) -> Optional[tuple[int, int, int]]:
        """`(height, width, channels)` when examples are images (2-D, or 3-D with 1 or 3 channels), else None."""
        if self.kind != "images":
            return None
        shape = tuple(self.input_shape)
        if len(shape) == 2:
            return (shape[0], shape[1], 1)
        if len(shape) == 3 and shape[-1] in (1, 3):
            return shape  # type: ignore[return-value]
        return None

    @property
    def profile(self) -> str:
        """`"features"` for feature vectors and tables, `"colour"` for 3-channel images (photos), else `"grey"`."""
        if self.kind != "images":
            return "features"
        image = self.image_shape
        return "colour" if image is not None and image[-1] == 3 else "grey"

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
            mirror_invariant=bool(getattr(dataset, "mirror_invariant", False)),
            kind=getattr(dataset, "kind", "images"),
            **options,
        )


class SearchSpace(kt.HyperModel):
    """Base class of the registered spaces.

    Subclasses implement `build_network(hp) -> keras.Model` (uncompiled, with
    a softmax output; `self.inputs_and_augmentation(hp)` gives its first
    layers) and may set `DEFAULT_OPTIMIZER`, `DEFAULT_LEARNING_RATE`,
    `OPTIMIZERS` and `PRIORS`. The defaults are the search's first trial:
    `PRIORS[context.profile]` over `SHARED_PRIORS`, read with `self.default`.
    `build` adds the batch size, label smoothing, the optimizer and its
    schedule, and compiles.

    Args:
        context: The problem the space is built for.
    """

    DEFAULT_OPTIMIZER = "adam"
    DEFAULT_LEARNING_RATE = 1e-3
    OPTIMIZERS: tuple[str, ...] = _optimizers.OPTIMIZERS
    PRIORS: Mapping[str, Mapping[str, Any]] = {}

    def __init__(self, context: SpaceContext) -> None:
        super().__init__(name=type(self).__name__)
        self.context = context
        self.defaults: dict[str, Any] = {
            "optimizer": self.DEFAULT_OPTIMIZER,
            "learning_rate": self.DEFAULT_LEARNING_RATE,
            **SHARED_PRIORS.get(context.profile, {}),
            **self.PRIORS.get(context.profile, {}),
        }

    def default(self, name: str, fallback: Any) -> Any:
        """The first value tried for `name` on this context's profile, else `fallback`."""
        return self.defaults.get(name, fallback)

    def regularizer_choices(self, name: str, values: Sequence[Any], fallback: Any) -> list[Any]:
        """The values a regularizing hyperparameter may take, larger meaning stronger.

        All of `values`, or with the context's `regularization_floor` only
        those at or above the prior (`self.default(name, fallback)`).
        """
        prior = self.default(name, fallback)
        return [v for v in values if not self.context.regularization_floor or v >= prior]

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        batch_size = declare_batch_size(hp, self.context.batch_size, self.default("batch_size", 128))
        model = self.build_network(hp)
        smoothing = hp.Choice("label_smoothing", self.regularizer_choices("label_smoothing", LABEL_SMOOTHING, 0.0),
                              default=self.default("label_smoothing", 0.0))  # fmt: skip
        model.compile(
            optimizer=_optimizers.optimizer(
                hp,
                steps_per_epoch=steps_per_epoch(self.context.train_size, batch_size),
                epochs=self.context.epochs,
                choices=self.OPTIMIZERS,
                defaults=self.defaults,
                learning_rate_bounds=self.context.learning_rate_bounds,
                weight_decays=self.regularizer_choices("weight_decay", _optimizers.WEIGHT_DECAYS, 0.0),
            ),
            loss=SparseSmoothedCrossentropy(smoothing) if smoothing else "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def build_network(self, hp: kt.HyperParameters) -> keras.Model:
        raise NotImplementedError

    def inputs_and_augmentation(self, hp: kt.HyperParameters) -> tuple[keras.KerasTensor, keras.KerasTensor]:
        """The model's input and its flattened, training-only augmented features.

        Declares `translate` (random shifts of up to that many pixels, for
        images at least 8 pixels on a side) and, where the context says a
        mirrored example keeps its label, `flip` (random left-right flips;
        never declared for digits). Keras's random preprocessing layers pass
        inputs through unchanged at inference, so the exported model predicts
        as if they were absent, and loads with Keras alone.

        Returns:
            `(inputs, flat)`: the `keras.Input` and the flattened features.
        """
        inputs = keras.Input(shape=self.context.input_shape, name="image")
        x = inputs
        image = self.context.image_shape
        if image is not None and min(image[:2]) >= 8:
            largest = min(image[:2]) // 8
            prior = min(self.default("translate", 0), largest)
            pixels = hp.Choice(
                "translate", [p for p in TRANSLATE_PIXELS if p <= largest and (not self.context.regularization_floor or p >= prior)],
                default=prior,
            )  # fmt: skip
            flip = self.context.mirror_invariant and (
                hp.Fixed("flip", True) if self.context.regularization_floor and self.default("flip", False)
                else hp.Boolean("flip", default=self.default("flip", False))
            )  # fmt: skip
            if pixels or flip:
                if tuple(self.context.input_shape) != image:
                    x = keras.layers.Reshape(image)(x)
                if flip:
                    x = keras.layers.RandomFlip("horizontal", name="augment_flip")(x)
                if pixels:
                    x = keras.layers.RandomTranslation(
                        pixels / image[0], pixels / image[1], fill_mode="constant", name="augment_translate"
                    )(x)
        return inputs, keras.layers.Flatten()(x)

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


# The most builds `every_branch` makes: each parent of a condition, once per value that may open a branch.
MAX_BRANCH_BUILDS = 64


def every_branch(space: kt.HyperModel) -> kt.HyperParameters:
    """Every hyperparameter `space` can declare, conditional ones included.

    Keras Tuner learns a space by building it, so a hyperparameter that only
    some branches declare (SGD's momentum, the 20th layer's units) is unknown
    until a trial takes that branch. This builds the defaults, then once more
    for each value of each categorical hyperparameter and of each one a
    condition depends on (for an Int, its largest value), until no build
    declares anything new (at most `MAX_BRANCH_BUILDS` builds).

    Args:
        space: A hypermodel.
    """
    found = kt.HyperParameters()
    space.build(found)
    tried: set[tuple[str, Any]] = set()
    builds = 0
    while builds < MAX_BRANCH_BUILDS:
        # Known parents, and every categorical switch: a branch not yet taken shows no condition on it.
        parents = {c.name for hp in found.space for c in hp.conditions} | {
            hp.name for hp in found.space if isinstance(hp, kt.engine.hyperparameters.Boolean)
            or (isinstance(hp, kt.engine.hyperparameters.Choice) and all(isinstance(v, str) for v in hp.values))
        }  # fmt: skip
        todo = [(name, value) for name in sorted(parents) for value in _branch_values(found._hps[name][0])
                if (name, value) not in tried]  # fmt: skip
        if not todo:
            break
        for name, value in todo[: MAX_BRANCH_BUILDS - builds]:
            tried.add((name, value))
            builds += 1
            trial = found.copy()
            trial.values = {**_smallest(found), name: value}
            keras.backend.clear_session(free_memory=False)
            try:
                space.build(trial)
            except Exception:  # a branch that cannot be built adds nothing; its trials will fail on their own
                continue
            known = {hp.name for hp in found.space}
            found.merge([hp for hp in trial.space if hp.name not in known])
    keras.backend.clear_session(free_memory=False)
    return found


def _smallest(space: kt.HyperParameters) -> dict:
    """The defaults, with every numeric choice at its smallest: the same branches, far smaller layers to build."""
    values = default_values(space)
    for hp in space.space:
        if hp.name in values and isinstance(hp, kt.engine.hyperparameters.Choice) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in hp.values
        ):
            values[hp.name] = min(hp.values)
    return values


def _branch_values(hp) -> list:
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return [False, True]
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        return list(hp.values)
    if isinstance(hp, kt.engine.hyperparameters.Int):
        return [hp.max_value]
    return []


def default_values(space: kt.HyperParameters) -> dict:
    """The space's default configuration: each active hyperparameter at its default.

    Every tuner tries it first (`tuning.search.proposals.LocalSearch`), so a
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


def declare_batch_size(hp: kt.HyperParameters, fixed: Optional[int], default: int = 128) -> int:
    """Declares the `batch_size` hyperparameter: fixed when given, else tuned.

    The tuner reads it back from the trial to batch the data.
    """
    if fixed is not None:
        return hp.Fixed("batch_size", int(fixed))
    return hp.Choice("batch_size", list(BATCH_SIZES), default=default)


@keras.saving.register_keras_serializable(package="tuning")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """Cross-entropy against integer labels, smoothed towards the uniform distribution.

    Keras's `SparseCategoricalCrossentropy` has no `label_smoothing`; this
    one-hot encodes the labels and calls Keras's categorical cross-entropy,
    which has. It is a training loss only: the export is saved uncompiled.

    Args:
        label_smoothing: Share of the target mass spread over all classes.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "sparse_smoothed_crossentropy", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        one_hot = keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
