"""The exported model and its one evaluation on the test set, from the retrained members.

Owns: `assess`, the step between the retraining and the export. The members
are averaged into the model that is exported (without its training-only
layers), the test split is read once for it (`evaluate.evaluate_once`),
each member's own test accuracy is taken for the spread, and the export's
HParams session is written. No score chooses among the members: the export
averages them all. Does not own: training (`tuning.final.retraining`) or
files (`tuning.final.export`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tuning.final import evaluate
from tuning.final.export import inference_model
from tuning.final.retraining import Retrained
from tuning.records import hparams


@dataclass(frozen=True)
class Assessment:
    """The exported model and its one evaluation on the test set.

    Args:
        model: The exported model: the members' average, for inference.
        shown: The member whose curves the card shows: the best on validation.
        val: The exported model's validation scores.
        test: Its test scores (`evaluate.evaluate_once`).
        per_seed: Each member's seed, validation and test accuracy, and epochs.
        matrix: The test confusion matrix.
        epoch_budget: The most epochs a member was given.
        wall_seconds: The members' training time, summed.
    """

    model: Any
    shown: Retrained
    val: dict
    test: dict
    per_seed: list
    matrix: np.ndarray
    epoch_budget: int
    wall_seconds: float


def assess(retrains: list[tuple[Retrained, dict]], dataset, mc_passes: int, log_dir: Path, session_table: list,
           values: dict, say: Callable[[str], None] = print) -> Assessment:  # fmt: skip
    """Averages the retrained members into the export, then reads the test set, once.

    Args:
        retrains: Each member with its validation scores (`retraining.retrain_members`).
        dataset: The dataset; its test split is read here and nowhere else.
        mc_passes: MC-dropout passes of the test evaluation.
        log_dir: `logs/RUN`, for the export's HParams session.
        session_table: The space's HParams columns.
        values: The exported configuration's hyperparameter values.
        say: Where a line goes when MC dropout cannot run. Defaults to `print`.
    """
    shown, shown_val = max(retrains, key=lambda pair: pair[1]["accuracy"])
    # What is evaluated is exactly what is saved: the average, without its training-only layers.
    exported = inference_model(evaluate.average([retrained.model for retrained, _ in retrains]))
    val = shown_val if len(retrains) == 1 else evaluate.evaluate_split(exported, dataset.val)
    test = evaluate.evaluate_once(exported, dataset.test, mc_passes=mc_passes)
    if evaluate.has_dropout(exported) and test["mc_dropout"] is None:
        say("MC dropout: skipped, since the model is not a chain of layers; the test accuracy is its plain prediction's")
    per_seed = []
    for retrained, seed_val in retrains:
        seed_test = test if len(retrains) == 1 else evaluate.evaluate_split(retrained.model, dataset.test)
        per_seed.append({"seed": retrained.seed, "val_accuracy": seed_val["accuracy"], "test_accuracy": seed_test["accuracy"],
                         "epochs_run": retrained.epochs_run, "epochs_planned": retrained.epochs_planned})  # fmt: skip
    wall = sum(r.wall_seconds for r, _ in retrains)
    hparams.write_session(
        log_dir / hparams.EXPORT_SESSION, session_table, values, "export",
        {"score": val["accuracy"], "epochs": max(r.epochs_run for r, _ in retrains), "val_loss": val["loss"], "seconds": wall,
         "parameters": exported.count_params(), "test_accuracy": test["accuracy"]},
        group="export",
    )  # fmt: skip
    matrix = evaluate.confusion_matrix(exported, dataset.test, dataset.n_classes)
    epoch_budget = max(r.epochs_planned for r, _ in retrains)
    return Assessment(exported, shown, val, test, per_seed, matrix, epoch_budget, wall)
