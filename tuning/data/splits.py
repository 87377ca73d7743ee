"""Carving a validation or test split out of a user's data: stratified, shuffled, with a fixed seed.

Owns: the one rule for splits the user did not give. Each class keeps its
share in both parts (scikit-learn's `train_test_split` with `stratify`), so a
file sorted by class still validates on every class, and the seed is fixed
(`SPLIT_SEED`), so a rerun and every method of a benchmark see the same
split. The built-in datasets keep their own fixed splits
(`tuning.data.builtin`).
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from tuning.errors import UsageError

SPLIT_SEED = 0
VALIDATION_SHARE = 0.1
TEST_SHARE = 0.2


def stratified_split(y: np.ndarray, share: float, what: str, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices `(kept, held_out)` with `share` of every class held out, shuffled by `seed`.

    Args:
        y: Integer labels.
        share: The fraction held out, between 0 and 1.
        what: What the held-out part is for, for the error ("validation", "test").
        seed: The shuffle's seed. Defaults to `SPLIT_SEED`.
    """
    counts = np.bincount(y)
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise UsageError(f"the labels hold only one class ({present.tolist()}); a classifier needs at least two")
    held_out = max(len(present), int(round(share * len(y))))
    if held_out >= len(y) - len(present):
        raise UsageError(f"{len(y)} examples are too few to hold out {share:.0%} for {what} and keep every class "
                         f"in training; give more examples")  # fmt: skip
    if counts[present].min() < 2:
        rare = int(present[np.argmin(counts[present])])
        raise UsageError(f"class {rare} has 1 example; a stratified {what} split needs at least 2 of each class")
    kept, out = train_test_split(np.arange(len(y)), test_size=held_out, stratify=y, random_state=seed, shuffle=True)
    return np.sort(kept), np.sort(out)
