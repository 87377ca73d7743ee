"""Retraining the best configuration and the one evaluation on the test set.

Owns: the final fit (training split, early-stopped on validation with the best
weights restored), the ensemble of the retrained seeds (`average`),
`evaluate_once` (the only code that feeds the test split), MC-dropout
predictions and the expected calibration error. Does not own:
choosing the configuration (the tuner) or writing files (`tuning.export`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import keras_tuner as kt
import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from tuning import callbacks, events, graph_memory, hparams
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
        epochs_planned: The epochs it was given (its schedule spans them).
        epoch_seconds: Wall time of each epoch, validation included.
    """

    seed: int
    model: keras.Model
    history: dict
    best_epoch: int
    epochs_run: int
    wall_seconds: float
    epochs_planned: int = 0
    epoch_seconds: tuple[float, ...] = ()

    @property
    def steady_epoch_seconds(self) -> float:
        """A steady epoch's time: the median of the epochs after the first (which traces), else the first."""
        steady = sorted(self.epoch_seconds[1:] or self.epoch_seconds)
        return steady[len(steady) // 2] if steady else self.wall_seconds / max(1, self.epochs_run)


# A member after the first shorter than this share of `--final-epochs` is not started: it would pull
# the average down more than it adds.
MIN_MEMBER_SHARE = 1 / 3
# The most a member is stretched beyond `--final-epochs` to fill the time left: with members
# rounded down, each gets less than twice a full member's time, so 2 fills any time left.
MAX_STRETCH = 2
# The export's time (model.keras, the SavedModel, pictures and card): a base, plus a share for
# each million parameters of the ensemble (digits: 1.3 s for one small member, 3.5 s for two larger ones).
EXPORT_SECONDS = 2.5
EXPORT_SECONDS_PER_MILLION = 0.2
# Passes over the test split per member after the retraining, besides MC dropout's: the exported
# model's predictions, the confusion matrix, the member's own test accuracy, the ensemble's validation.
FINISH_PASSES = 4
# A last member that ends early leaves time no further member can use, so the last member that fits
# is planned as if its epochs took this share less than measured, and its deadline stops it if they do
# not. The first member's epoch time is the chosen trial's, from one or two steady epochs, and can be
# off by 8% either way: on CIFAR-10 (seed 1, 5ec7855) 20.0 s planned against 18.5 s trained left
# 130 s of 1,200 idle. Cut at 90% of its epochs, a cosine schedule is at 2% of its peak rate.
LAST_MEMBER_SLACK = 0.1


def next_member_epochs(seconds_left: float, seconds_per_epoch: float, overhead: float, full_epochs: int,
                       members_left: int, first: bool) -> int | None:  # fmt: skip
    """Epochs of the next retraining member under a time budget, or None when no member should start.

    The time left goes to as few members as it holds at full length,
    rounded down, each stretched to fill its share (up to `MAX_STRETCH`
    times `full_epochs`): at equal time one member of 30 epochs beat the
    average of two of 15 on CIFAR-10 validation, 62.1% against 60.0%
    (`bench/results/retraining-members-cifar10.json`), so longer members
    come before more of them. Each member's schedule spans its own epochs.
    The last member that fits is planned `LAST_MEMBER_SLACK` longer than
    its share holds, and stopped by its deadline (`MemberPlanner.deadline`)
    when its epochs are as slow as measured. When the seed cap is reached,
    what the stretched members cannot use stays unused.

    Args:
        seconds_left: Wall time left for the members still to train and their share of the finish.
        seconds_per_epoch: One epoch of this configuration, validation included.
        overhead: A member's time outside its epochs: building, tracing, evaluating it, its share of the finish.
        full_epochs: The epochs of a full-length member (`--final-epochs`).
        members_left: How many more members the seed cap allows.
        first: Whether no member has been trained yet; the first always starts, with at least one epoch.

    Returns:
        The epochs of the next member, or None.
    """
    if members_left < 1:
        return None
    left = max(0.0, seconds_left)
    count = min(members_left, max(1, int(left // (full_epochs * seconds_per_epoch + overhead))))
    share = left / count - overhead
    fits = int(share // seconds_per_epoch)  # epochs as fast as measured
    slack = LAST_MEMBER_SLACK if count == 1 else 0.0
    planned = min(MAX_STRETCH * full_epochs, int(share // (seconds_per_epoch * (1 - slack))))
    if first:
        return max(1, planned)
    return planned if fits >= max(1, math.ceil(MIN_MEMBER_SHARE * full_epochs)) else None


@dataclass
class MemberPlanner:
    """Plans each retraining member under a time budget, from the times measured so far.

    Before the first member, its epoch time is the chosen trial's and its
    overhead an epoch and 2 s; afterwards both come from the last member trained.
    The test evaluation and export that follow the last member are kept
    out of the time: `EXPORT_SECONDS`, plus per member `FINISH_PASSES` and
    the MC-dropout passes over the test split, each timed as the member's
    evaluation on the validation split scaled to the test split's size,
    and `EXPORT_SECONDS_PER_MILLION` of its parameters.

    Args:
        end: `time.time()` by which the run should have ended.
        full_epochs: The most epochs a member trains (`--final-epochs`).
        cap: The most members (the seed cap).
        mc_passes: MC-dropout passes of the test evaluation.
        test_per_validation: Test examples per validation example.
        seconds_per_epoch: The chosen trial's steady epoch time, or None when unknown here.
    """

    end: float
    full_epochs: int
    cap: int
    mc_passes: int
    test_per_validation: float
    seconds_per_epoch: float | None
    overhead: float | None = None
    evaluation_seconds: float | None = None
    parameters: int | None = None
    members: int = 0

    def finish_seconds_per_member(self) -> float:
        """The test evaluation's and the export's time per member (MC dropout included)."""
        # Until a member is evaluated: a validation pass is about 5% of an epoch (validation included) here.
        evaluation = self.evaluation_seconds if self.evaluation_seconds is not None else 0.05 * (self.seconds_per_epoch or 0.0)
        export = EXPORT_SECONDS_PER_MILLION * (self.parameters or 0) / 1e6
        return evaluation * self.test_per_validation * (self.mc_passes + FINISH_PASSES) + export

    def deadline(self) -> float:
        """`time.time()` by which the member now training must stop, so that its evaluation and the export still fit."""
        return self.end - EXPORT_SECONDS - self.finish_seconds_per_member() * (self.members + 1)

    def next_epochs(self, now: float | None = None) -> int | None:
        """The epochs of the next member, or None when none should start."""
        now = time.time() if now is None else now
        if self.seconds_per_epoch is None:  # the chosen trial ran before a resume or on a worker: time the first member
            return self.full_epochs if self.members == 0 else None
        finish = self.finish_seconds_per_member()
        left = self.end - now - EXPORT_SECONDS - finish * self.members
        # Until a member is timed, building and tracing it is taken as an epoch and 2 s.
        overhead = (self.overhead if self.overhead is not None else self.seconds_per_epoch + 2.0) + finish
        return next_member_epochs(left, self.seconds_per_epoch, overhead, self.full_epochs, self.cap - self.members,
                                  first=self.members == 0)  # fmt: skip

    def record(self, retrained: "Retrained", member_seconds: float, evaluation_seconds: float) -> None:
        """Takes the times of a member just trained: its steady epoch, its time outside epochs, its evaluation."""
        self.members += 1
        self.seconds_per_epoch = retrained.steady_epoch_seconds
        self.overhead = max(0.0, member_seconds - sum(retrained.epoch_seconds))
        self.evaluation_seconds = evaluation_seconds
        if retrained.model is not None:
            self.parameters = int(retrained.model.count_params())


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
    listen: Callable[[events.Event], None] | None = None,
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
        listen: Receives an `events.EpochEnded` after every epoch. Defaults to None.
    """
    graph_memory.release_finished_graphs()  # the trials' and earlier seeds' graphs
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    started = time.monotonic()
    model = hypermodel.build(hyperparameters)
    batch_size = hyperparameters.get("batch_size")

    def tell(epoch: int, logs: dict, seconds: float) -> None:
        if listen is not None:
            listen(events.EpochEnded("retraining", str(seed), epoch + 1, dict(logs), seconds, time.time()))

    timer = callbacks.EpochTimer(tell)
    history = model.fit(
        feeder.train.batches(batch_size, shuffle=True, seed=seed),
        validation_data=feeder.val.batches(EVAL_BATCH_SIZE),
        epochs=epochs,
        callbacks=[*_retraining_callbacks(patience, log_dir, seed, epochs, deadline, say), timer],
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
        epochs_planned=epochs,
        epoch_seconds=tuple(timer.seconds),
    )


def _retraining_callbacks(patience: int, log_dir: Path, seed: int, epochs: int, deadline: float | None,
                          say: Callable[[str], None] | None) -> list:  # fmt: skip
    """A member's callbacks: early stopping keeping the best weights, the NaN guard, TensorBoard, deadline, progress."""
    return [
        callbacks.early_stopping(patience, restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
        callbacks.tensorboard(hparams.retrain_session_dir(log_dir, seed)),
        *([callbacks.Deadline(deadline)] if deadline is not None else []),
        *([callbacks.Progress(say, f"retraining seed {seed}", epochs)] if say is not None else []),
    ]


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
