"""Writing the export of a run: `checkpoints/RUN/best/`.

Owns: the files a person needs to use and trust the model (`model.keras`, a
TF SavedModel for serving, `hyperparameters.json`, `metrics.json` and the
`README.md` model card) and writing them atomically: everything goes to a
temporary folder that is renamed into place, so a half-written export never
looks complete. Does not own: training or evaluation; it never trains.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import keras

MODEL_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"


def write_export(
    export_dir: Path,
    model: keras.Model,
    hyperparameters: dict,
    metrics: dict,
) -> Path:
    """Writes the export and swaps it into `export_dir`.

    Args:
        export_dir: `checkpoints/RUN/best`.
        model: The retrained model.
        hyperparameters: The chosen hyperparameter values.
        metrics: What `metrics.json` holds; the card is written from it.

    Returns:
        `export_dir`.
    """
    staging = export_dir.with_name(f"{export_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _make_loadable_with_keras_alone(model)
    model.save(staging / MODEL_FILE)
    with contextlib.redirect_stdout(io.StringIO()):  # model.export prints its endpoints
        model.export(str(staging / SAVED_MODEL_DIR), format="tf_saved_model", verbose=False)
    _write_json(staging / "hyperparameters.json", hyperparameters)
    _write_json(staging / "metrics.json", metrics)
    (staging / "README.md").write_text(model_card(model, hyperparameters, metrics))
    _swap_into_place(staging, export_dir)
    return export_dir


def _make_loadable_with_keras_alone(model: keras.Model) -> None:
    """Swaps a custom training optimizer (1cycle's `OneCycleSGD`) for its stock Keras twin.

    The export is for inference; its optimizer only has to deserialize, and a
    stock one needs no custom objects and no import of `tuning` to do so.
    """
    as_stock = getattr(model.optimizer, "as_stock", None)
    if as_stock is not None:
        model.compile(optimizer=as_stock(), loss=model.loss, metrics=["accuracy"])


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _swap_into_place(staging: Path, target: Path) -> None:
    retired = target.with_name(f"{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def _layer_lines(model: keras.Model) -> list[str]:
    lines = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        detail = ""
        if isinstance(layer, keras.layers.Dense):
            detail = f" {layer.units} units, {layer.activation.__name__}"
        elif isinstance(layer, keras.layers.Activation):
            detail = f" {layer.activation.__name__}"
        elif isinstance(layer, keras.layers.Dropout):
            detail = f" rate {layer.rate:g}"
        lines.append(f"{type(layer).__name__}{detail}")
    return lines


def _engine(search: dict) -> str:
    optuna = search.get("optuna")
    if optuna:
        return (f"Optuna's `{search['tuner']}` sampler (pruner `{optuna['pruner']}`, study "
                f"`{optuna['study_name']}` in `{optuna['storage']}`) driving Keras Tuner")  # fmt: skip
    return f"Keras Tuner's `{search['tuner']}`"


def _lr_range_line(test: dict | None) -> str:
    if not test:
        return ""
    low, high = test["bounds"]
    return (
        f"- A learning-rate range test ran first (`--lr-range auto`); the learning rate was searched "
        f"in [{low:.2e}, {high:.2e}].\n"
    )


def _mc_line(mc: dict | None) -> str:
    if not mc:
        return "The model has no dropout, so no MC-dropout figures apply.\n"
    return (
        f"MC dropout (mean of {mc['passes']} stochastic passes): test accuracy {mc['accuracy']:.4f}, "
        f"ECE {mc['ece']:.4f}. The exported model itself is deterministic.\n"
    )


def model_card(model: keras.Model, hyperparameters: dict, metrics: dict) -> str:
    """The `README.md` of an export, from the same figures as `metrics.json`."""
    data, search, final = metrics["dataset"], metrics["search"], metrics["final"]
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(search["trials_by_status"].items()))
    layers = "\n".join(f"{i}. {line}" for i, line in enumerate(_layer_lines(model), 1))
    shape = ", ".join(str(d) for d in data["input_shape"])
    hp_lines = "\n".join(f"| `{k}` | `{v}` |" for k, v in sorted(hyperparameters.items()))
    return f"""# {metrics['run']}: a dense classifier for {data['name']}

Found by `tuning` with {_engine(search)} over the `{search['space']}` search space,
then retrained from scratch and evaluated once on the held-out test set.

## How good it is
| split | accuracy | loss | examples |
| --- | --- | --- | --- |
| validation (used for selection) | {final['val_accuracy']:.4f} | {final['val_loss']:.4f} | {data['sizes']['val']} |
| test (touched once, after selection) | {final['test_accuracy']:.4f} | {final['test_loss']:.4f} | {data['sizes']['test']} |

Expected calibration error (15 bins) on test: {final['test_ece']:.4f}.
{_mc_line(final.get('mc_dropout'))}
The best search trial scored {search['best_trial_val_accuracy']:.4f} validation accuracy;
the retrained model scored {final['val_accuracy']:.4f}.

## What it is
{final['parameters']:,} parameters. Input: float32 images of shape ({shape}) with pixels scaled to [0, 1]
(divide 8-bit pixels by {data['max_value']:g}). Output: {data['n_classes']} class probabilities (softmax),
classes {', '.join(data['class_names'])}.

{layers}

## How it was found
- Search: {search['tuner']}, {counts} (cap {search['max_trials']}), {search['wall_seconds']:.0f} s.
- Retraining: {final['epochs_run']} epochs (best epoch {final['best_epoch']}), {final['wall_seconds']:.0f} s.
{_lr_range_line(metrics.get('learning_rate_range_test'))}- Seed {metrics['seed']}. Command: `{metrics['command']}`
- Data: {data['source']}, {data['sizes']['train']} train / {data['sizes']['val']} validation / {data['sizes']['test']} test, sha256 prefix `{data['fingerprint']}`.

| hyperparameter | value |
| --- | --- |
{hp_lines}

## How to load it
```python
import keras
model = keras.models.load_model("{MODEL_FILE}")      # safe_mode=True works: no custom objects
probabilities = model.predict(images)                # images: float32, shape (n, {shape}), in [0, 1]
```
For serving, `{SAVED_MODEL_DIR}/` is a TF SavedModel:
```python
import tensorflow as tf
served = tf.saved_model.load("{SAVED_MODEL_DIR}")
probabilities = served.serve(tf.constant(images))
```
`hyperparameters.json` and `metrics.json` hold the figures above.

## Known limits
- One retraining with one seed: the test accuracy has run-to-run variance this card does not measure.
- The validation split is the last {data['sizes']['val']} examples of the official training set; the
  search selected on it, so the validation accuracy above is optimistic. Trust the test figure.
- A dense network ignores image structure; convolutional networks do better on images.
"""
