"""Retraining the best configuration and the one evaluation on the test set.

Owns: the final fit (training split, early-stopped on validation with the best
weights restored), the ensemble of the retrained seeds (`average`),
`evaluate_once` (the only code that feeds the test split), MC-dropout
predictions and the expected calibration error. Does not own:
choosing the configuration (the tuner) or writing files (`tuning.export`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import keras_tuner as kt
import numpy as np

from tuning import callbacks, graph_memory, hparams
from tuning.datasets import Split
from tuning.pipeline import EVAL_BATCH_SIZE, DatasetFeeder, SplitFeeder


@dataclass(frozen=True)
class Retrained:
    """The retrained model and how its training went.

    Args:
        seed: The seed of this retraining.
        model: The model with its best-validation weights.
        history: Keras history, one list per metric.
        best_epoch: 1-based epoch whose weights were kept.
        epochs_run: Epochs actually trained before early stopping.
        wall_seconds: Time spent in the retraining.
    """

    seed: int
    model: keras.Model
    history: dict
    best_epoch: int
    epochs_run: int
    wall_seconds: float


# Share of the time left that the plan fills; the rest is for validation passes and slack.
PLAN_MARGIN = 0.9


def plan_retraining(seconds_left: float, seconds_per_epoch: float, epochs: int, seeds: int) -> tuple[int, int]:
    """How many seeds, each for how many epochs, fit in the time left.

    A schedule spans the retraining's epochs, so they are chosen before it
    starts rather than cut by a deadline half-way down the annealing. Every
    seed gets the full `epochs` (an annealed schedule gains most in its last
    epochs, and a member trained to the end is worth more than two cut
    short); seeds are dropped to fit, and only a lone seed is shortened.

    Args:
        seconds_left: Wall time left for the retraining.
        seconds_per_epoch: Measured time of one epoch of this configuration.
        epochs: The most epochs a seed trains (`--final-epochs`).
        seeds: The most seeds.

    Returns:
        `(seeds, epochs)`: as many full-length seeds as fit, up to `seeds`;
        else one seed of as many epochs as fit, at least one.
    """
    usable = max(0.0, seconds_left) * PLAN_MARGIN
    fit = int(usable / (epochs * seconds_per_epoch))
    if fit >= 1:
        return min(seeds, fit), epochs
    return 1, max(1, int(usable / seconds_per_epoch))


def another_member_fits(seconds_left: float, done: list["Retrained"], epochs: int) -> bool:
    """Whether one more seed of `epochs` fits in `seconds_left`, timed on the seeds already retrained.

    Args:
        seconds_left: Wall time left for the retraining.
        done: The seeds retrained so far (at least one).
        epochs: The epochs the next seed would train.
    """
    epochs_run = sum(r.epochs_run for r in done)
    if not epochs_run:
        return False
    per_epoch = sum(r.wall_seconds for r in done) / epochs_run  # build and tracing included: on the safe side
    return max(0.0, seconds_left) * PLAN_MARGIN >= epochs * per_epoch


def retrain(
    hypermodel: kt.HyperModel,
    hyperparameters: kt.HyperParameters,
    feeder: DatasetFeeder,
    epochs: int,
    patience: int,
    seed: int,
    log_dir: Path,
    deadline: float | None = None,
    say: Callable[[str], None] | None = None,
) -> Retrained:
    """Trains the chosen configuration from scratch on the training split.

    Args:
        hypermodel: The search space.
        hyperparameters: The configuration to train.
        feeder: Train and validation feeders.
        epochs: Epoch budget.
        patience: Early-stopping patience on validation accuracy.
        seed: Seed of the weights and the shuffle order.
        log_dir: `logs/RUN`; TensorBoard goes to `retrain/seed-S` below it.
        deadline: `time.time()` after which training stops, keeping the best
            epoch's weights. Defaults to None.
        say: Where a progress line goes every half minute. Defaults to None (silent).
    """
    graph_memory.release_finished_graphs()  # the trials' and earlier seeds' graphs
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    started = time.monotonic()
    model = hypermodel.build(hyperparameters)
    batch_size = hyperparameters.get("batch_size")
    history = model.fit(
        feeder.train.batches(batch_size, shuffle=True, seed=seed),
        validation_data=feeder.val.batches(EVAL_BATCH_SIZE),
        epochs=epochs,
        callbacks=[
            callbacks.early_stopping(patience, restore_best_weights=True),
            keras.callbacks.TerminateOnNaN(),
            callbacks.tensorboard(hparams.retrain_session_dir(log_dir, seed)),
            *([callbacks.Deadline(deadline)] if deadline is not None else []),
            *([callbacks.Progress(say, f"retraining seed {seed}", epochs)] if say is not None else []),
        ],
        verbose=0,
    ).history
    val_accuracy, val_loss = history.get("val_accuracy", [np.nan]), history.get("val_loss", [np.nan])
    keys = [callbacks.best_epoch_key(a, l) for a, l in zip(val_accuracy, val_loss)]
    return Retrained(
        seed=seed,
        model=model,
        history={k: [float(v) for v in vs] for k, vs in history.items()},
        best_epoch=keys.index(max(keys)) + 1,  # the epoch whose weights early stopping kept
        epochs_run=len(val_accuracy),
        wall_seconds=time.monotonic() - started,
    )


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


def members(model: keras.Model) -> list[keras.Model]:
    """The models an ensemble from `average` holds, or `[model]`."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)] or [model]


def evaluate_split(model: keras.Model, split: Split) -> dict[str, float]:
    """Cross-entropy loss and accuracy of `model` on one split (compiled or not)."""
    return _scores(model.predict(SplitFeeder(split).batches(EVAL_BATCH_SIZE), verbose=0), split.y)


def _scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    # Keras clips probabilities at its epsilon before the log; so does this.
    picked = np.clip(probabilities[np.arange(len(labels)), labels], keras.config.epsilon(), 1.0)
    return {"loss": float(-np.mean(np.log(picked))), "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels))}


Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default).

    Args:
        successes: Correct predictions.
        trials: Predictions.
        z: Normal quantile. Defaults to 1.96 (95%).
    """
    if trials <= 0:
        raise ValueError(f"trials must be at least 1, but got trials={trials}")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return float(centre - half), float(centre + half)


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
    """Counts `[true, predicted]` over a split."""
    predicted = model.predict(split.x, batch_size=EVAL_BATCH_SIZE, verbose=0).argmax(axis=1)
    matrix = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(matrix, (split.y, predicted), 1)
    return matrix


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
        layers, else `passes`, `accuracy` and `ece` of the mean prediction).
    """
    probabilities = model.predict(test.x, batch_size=EVAL_BATCH_SIZE, verbose=0)
    result: dict = _scores(probabilities, test.y)
    result["ece"] = expected_calibration_error(probabilities, test.y)
    result["mc_dropout"] = None
    if has_dropout(model):
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
    return np.stack([
        np.concatenate([keras.ops.convert_to_numpy(forward(b, True)) for b in batches]) for _ in range(passes)
    ])  # fmt: skip


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
