"""The pictures of the model card, drawn with matplotlib.

Owns: the confusion matrix, the learning curves of the final retraining, and
the search's best-score-so-far against trial number and trial time. Takes
plain arrays and writes PNG files; computes nothing about models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """Counts of true (rows) against predicted (columns) classes, labelled with class names."""
    plt = _pyplot()
    n = len(class_names)
    figure, axes = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046)
    axes.set_xticks(range(n), labels=class_names, rotation=45, ha="right")
    axes.set_yticks(range(n), labels=class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center", fontsize=7,
                  color="white" if count > threshold else "black")  # fmt: skip
    axes.set_title(f"test confusion matrix ({matrix.sum()} examples)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def learning_curves_png(history: dict, path: Path, best_epoch: Optional[int] = None) -> Path:
    """Loss and accuracy per epoch of the final retraining, training and validation."""
    plt = _pyplot()
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = history.get(prefix + metric)
            if values:
                axes.plot(range(1, len(values) + 1), values, marker=".", label=label)
        if best_epoch:
            axes.axvline(best_epoch, color="grey", linestyle=":", label=f"kept epoch {best_epoch}")
        if metric == "loss":
            axes.set_yscale("log")  # late epochs' small gains stay visible
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric + (" (log scale)" if metric == "loss" else ""))
        axes.legend()
    figure.suptitle("final retraining")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def search_progress_png(scores: Sequence[Optional[float]], seconds: Sequence[float], path: Path) -> Path:
    """Best validation score so far against trial number and against cumulative trial time.

    Args:
        scores: Each finished trial's score in the order trials ended; None for failed ones.
        seconds: Each of those trials' wall time.
        path: Where to write the PNG.
    """
    plt = _pyplot()
    best, best_so_far = -np.inf, []
    for score in scores:
        if score is not None and np.isfinite(score):
            best = max(best, score)
        best_so_far.append(best if np.isfinite(best) else np.nan)
    elapsed = np.cumsum(seconds) / 60.0
    figure, (by_trial, by_time) = plt.subplots(1, 2, figsize=(10, 4))
    trial_numbers = np.arange(1, len(scores) + 1)
    by_trial.scatter(trial_numbers, [np.nan if s is None else s for s in scores], s=12, alpha=0.5, label="trial")
    by_trial.step(trial_numbers, best_so_far, where="post", color="C1", label="best so far")
    by_trial.set_xlabel("trial")
    by_time.step(elapsed, best_so_far, where="post", color="C1", label="best so far")
    by_time.set_xlabel("cumulative trial time (minutes)")
    for axes in (by_trial, by_time):
        axes.set_ylabel("validation accuracy")
        axes.legend()
    figure.suptitle("search progress")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
