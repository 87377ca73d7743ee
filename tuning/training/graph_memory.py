"""Handing back the memory of models a process has finished with.

Owns one workaround for a TensorFlow leak. In graph mode, `tf.custom_gradient`
registers each traced call's gradient function under a fresh name
(`CustomGradient-N`) in TensorFlow's global gradient registry and never
removes it (tensorflow/tensorflow#97697; keras-team/tf-keras#898 proposes
the same purge for `clear_session`). The function's closure holds the traced
graph, and the graph holds the handle of every variable it captured. Keras's
TensorFlow optimizer reaches `custom_gradient` through
`ReplicaContext.all_reduce` when it applies gradients, so every `model.fit`
kept its model's weights and optimizer slots alive for the rest of the
process: about 30 MB per trial of a 2x1024 MNIST network, however
`clear_session`, `gc` or `malloc_trim` were called.

Does not own: when it is safe to call (the tuner after each trial,
`tuning.final.evaluate` before each retraining), or collecting what it frees (the
next `gc.collect()`, which Keras Tuner and `clear_session` both run).
"""

from __future__ import annotations

from tensorflow.python.framework import ops

CUSTOM_GRADIENT_PREFIX = "CustomGradient-"  # tensorflow/python/ops/custom_gradient.py names each call so


def _custom_gradients() -> tuple[dict, list[str]]:
    """TensorFlow's gradient table and its per-call names; `({}, [])` where this TensorFlow has no such table."""
    entries = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if not isinstance(entries, dict):
        return {}, []
    return entries, [name for name in entries if name.startswith(CUSTOM_GRADIENT_PREFIX)]


def custom_gradient_count() -> int:
    """How many per-call custom gradients TensorFlow's registry holds now."""
    return len(_custom_gradients()[1])


def release_finished_graphs() -> int:
    """Drops the per-call custom gradients from TensorFlow's registry, so dead graphs can be collected.

    Call it only between trainings: a gradient function is read once, when
    the train step that uses it is traced, and a later trace registers a new
    one. Dropping them mid-trace would break that trace's gradient. The
    gradients TensorFlow and Keras register by op type at import are kept.

    Returns:
        The number of entries dropped; 0 where TensorFlow no longer keeps
        this registry (then there is nothing to release).
    """
    entries, names = _custom_gradients()
    for name in names:
        del entries[name]
    return len(names)
