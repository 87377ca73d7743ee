"""The ensemble of the retrained members and the one evaluation on the test set.

Owns: the ensemble of the retrained members (`average`), scoring a split,
`evaluate_once` (the only code that feeds the test split), MC-dropout
predictions, the expected calibration error and the intervals and spreads
the card reports. Does not own: choosing the configuration
(`tuning.search.selection`), training the members (`tuning.final.retraining`)
or writing files (`tuning.final.export`).
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from tuning.data.datasets import Split
from tuning.training.pipeline import EVAL_BATCH_SIZE, SplitFeeder


def average(models: list[keras.Model]) -> keras.Model:
    """A deep ensemble: one model whose output is the mean of `models`' class probabilities.

    Each member is an uncompiled copy of a model, named `member_K`, so the
    ensemble saves and loads with Keras alone (safe mode included) and carries
    no training state. A single model is returned as it is.

    Args:
        models: Trained models with the same input and output shapes.
    """
    if len(models) == 1:
        return models[0]
    copies = [uncompiled_copy(model, name=f"member_{k}") for k, model in enumerate(models)]
    inputs = keras.Input(shape=tuple(models[0].inputs[0].shape[1:]), name="image")
    outputs = keras.layers.Average(name="probabilities")([copy(inputs) for copy in copies])
    return keras.Model(inputs, outputs, name="ensemble")


def uncompiled_copy(model: keras.Model, name: str | None = None) -> keras.Model:
    """The same network and weights with no optimizer, loss or training state.

    Args:
        model: A trained model.
        name: The copy's name. Defaults to None (the model's own).
    """
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    # clone_model compiles a Sequential's copy like the original; a functional model over the
    # same layers is never compiled.
    inputs, outputs = copy.inputs, copy.outputs
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs,
                       name=name or model.name)  # fmt: skip


def is_chain(model: keras.Model) -> bool:
    """Whether `model` is one chain of layers, input to output, each layer fed by the one before (every space builds one)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return False
    previous = model.inputs[0]
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        # A layer may belong to several models (the export rebuilds the trained chain): take its call in this one.
        node = next((n for n in getattr(layer, "_inbound_nodes", [])
                     if len(n.input_tensors) == 1 and n.input_tensors[0] is previous), None)  # fmt: skip
        if node is None or len(node.output_tensors) != 1:
            return False
        previous = node.output_tensors[0]
    return previous is model.outputs[0]


def members(model: keras.Model) -> list[keras.Model]:
    """The models an ensemble from `average` holds, or `[model]`."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)] or [model]


def evaluate_split(model: keras.Model, split: Split) -> dict[str, float]:
    """Cross-entropy loss and accuracy of `model` on one split (compiled or not)."""
    return _scores(predict_split(model, split), split.y)


def predict_split(model: keras.Model, split: Split) -> np.ndarray:
    """`model`'s class probabilities over one split, shape `(n, classes)`."""
    return model.predict(SplitFeeder(split).batches(EVAL_BATCH_SIZE), verbose=0)


def average_scores(probabilities: list[np.ndarray], split: Split) -> dict[str, float]:
    """Loss and accuracy of the mean of several models' probabilities over one split, as `average` would score.

    Args:
        probabilities: Each model's `predict_split` over `split`.
        split: The split they predicted.
    """
    return _scores(np.mean(np.stack(probabilities), axis=0), split.y)


def _scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    # Keras clips probabilities at its epsilon before the log; so does this.
    picked = np.clip(probabilities[np.arange(len(labels)), labels], keras.config.epsilon(), 1.0)
    return {"loss": float(-np.mean(np.log(picked))), "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels))}


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion, from scipy.

    Args:
        successes: Correct predictions.
        trials: Predictions.
        confidence: Coverage of the interval. Defaults to 0.95.
    """
    if trials <= 0:
        raise ValueError(f"trials must be at least 1, but got trials={trials}")
    interval = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), minimum and maximum."""
    array = np.asarray(values, dtype=float)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
    }


def confusion_matrix(model: keras.Model, split: Split, n_classes: int) -> np.ndarray:
    """Counts `[true, predicted]` over a split (scikit-learn's, with every class as a row)."""
    predicted = model.predict(split.x, batch_size=EVAL_BATCH_SIZE, verbose=0).argmax(axis=1)
    return sklearn_confusion_matrix(split.y, predicted, labels=np.arange(n_classes))


DROPOUT_LAYERS = (keras.layers.Dropout, keras.layers.AlphaDropout)
CALIBRATION_BINS = 15


def evaluate_once(model: keras.Model, test: Split, mc_passes: int = 10) -> dict:
    """The final evaluation on the test split. Call it once per run, after selection is over.

    Args:
        model: The retrained model.
        test: The test split.
        mc_passes: Stochastic passes for MC dropout, when the model has dropout.
            Defaults to 10.

    Returns:
        `loss`, `accuracy`, `ece`, and `mc_dropout` (None without dropout
        layers or for a model that is not a chain of layers, else `passes`,
        `accuracy` and `ece` of the mean prediction).
    """
    probabilities = model.predict(test.x, batch_size=EVAL_BATCH_SIZE, verbose=0)
    result: dict = _scores(probabilities, test.y)
    result["ece"] = expected_calibration_error(probabilities, test.y)
    result["mc_dropout"] = None
    if has_dropout(model) and all(is_chain(member) for member in members(model)):
        mean = mc_dropout_passes(model, test.x, mc_passes).mean(axis=0)
        result["mc_dropout"] = {
            "passes": mc_passes,
            "accuracy": float(np.mean(mean.argmax(axis=1) == test.y)),
            "ece": expected_calibration_error(mean, test.y),
        }
    return result


def has_dropout(model: keras.Model) -> bool:
    """Whether the model (or an ensemble's members) holds dropout or alpha-dropout layers."""
    return any(isinstance(layer, DROPOUT_LAYERS) for member in members(model) for layer in member.layers)


def mc_dropout_passes(model: keras.Model, x: np.ndarray, passes: int) -> np.ndarray:
    """`passes` stochastic predictions, shape `(passes, n, classes)`.

    Only the dropout layers run in training mode; batch normalization keeps
    its inference statistics, which `model(x, training=True)` would not.
    Assumes a chain of layers, as every registered space builds, or an
    ensemble of such chains (`average`), whose members' passes are averaged.
    """
    stochastic_pass = _mc_dropout_pass(model, x)
    return np.stack([stochastic_pass() for _ in range(passes)])


def _mc_dropout_pass(model: keras.Model, x: np.ndarray) -> Callable[[], np.ndarray]:
    """One stochastic pass over `x` as a function, once checked against `model.predict` without dropout."""
    chains = [
        [layer for layer in member.layers if not isinstance(layer, keras.layers.InputLayer)]
        for member in members(model)
    ]

    def forward(batch, stochastic: bool):
        outputs = []
        for layers in chains:
            out = batch
            for layer in layers:
                out = layer(out, training=stochastic and isinstance(layer, DROPOUT_LAYERS))
            outputs.append(out)
        return keras.ops.mean(keras.ops.stack(outputs), axis=0)

    probe = x[:8]
    if not np.allclose(keras.ops.convert_to_numpy(forward(probe, False)), model.predict(probe, verbose=0), atol=1e-5):
        raise ValueError("MC dropout needs a chain of layers, or an average of such chains")
    batches = [x[i:i + EVAL_BATCH_SIZE] for i in range(0, len(x), EVAL_BATCH_SIZE)]
    return lambda: np.concatenate([keras.ops.convert_to_numpy(forward(b, True)) for b in batches])


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error of the top-class confidence, over equal-width bins.

    Args:
        probabilities: Shape `(n, classes)`.
        labels: Integer labels, shape `(n,)`.
        bins: Number of confidence bins. Defaults to 15.
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)
