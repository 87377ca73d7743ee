"""Writing the export of a run: `checkpoints/RUN/best/`.

Owns: the files a person needs to use and trust the model (`model.keras`, a
TF SavedModel for serving, `hyperparameters.json`, `metrics.json` and the
`README.md` model card with its three pictures) and writing them atomically: everything goes to a
temporary folder that is renamed into place, so a half-written export never
looks complete. Does not own: training or evaluation; it never trains.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import keras
import numpy as np

from tuning.data.types import RawInput, TableEncoding
from tuning.final import evaluate, plots
from tuning.records import state
from tuning.records.metrics import METRICS_FILE, FinalFigures, RunMetrics, SearchFigures
from tuning.text import calibration_warning

MODEL_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "learning_curves.png"
SEARCH_PNG = "search_progress.png"
GAP_WARNING = 0.01  # a search-to-retrain validation gap above this is called over-fitting


@dataclass(frozen=True)
class Figures:
    """What the card's pictures are drawn from.

    Args:
        confusion: Test confusion matrix, `[true, predicted]`.
        class_names: One name per class.
        history: Keras history of the exported retraining.
        best_epoch: The epoch whose weights were kept.
        trial_scores: Each ended trial's score in end order; None when it failed.
        trial_seconds: Each of those trials' wall time.
    """

    confusion: np.ndarray
    class_names: list
    history: dict
    best_epoch: int
    trial_scores: list
    trial_seconds: list


def write_export(
    export_dir: Path,
    model: keras.Model,
    hyperparameters: dict,
    metrics: RunMetrics,
    figures: Figures,
    raw_input: Optional[RawInput] = None,
) -> Path:
    """Writes the export and swaps it into `export_dir`.

    Args:
        export_dir: `checkpoints/RUN/best`.
        model: The retrained model.
        hyperparameters: The chosen hyperparameter values.
        metrics: What `metrics.json` holds; the card is written from it.
        figures: The data of the card's pictures.
        raw_input: How the user's raw input becomes the model's (`with_raw_input`).
            Defaults to None: the model takes the arrays it was trained on.

    Returns:
        `export_dir`.
    """
    for leftover in [*export_dir.parent.glob(f"{export_dir.name}.tmp-*"), *export_dir.parent.glob(f"{export_dir.name}.old-*")]:
        shutil.rmtree(leftover, ignore_errors=True)  # from a process killed mid-export
    # model.keras and the SavedModel each hold the weights; the card's pictures and the graph are a few MB more.
    state.check_room(export_dir.parent, 2 * state.weights_bytes(model.count_params()) + (8 << 20), "the export")
    staging = export_dir.with_name(f"{export_dir.name}.tmp-{os.getpid()}")
    staging.mkdir(parents=True)
    model = with_raw_input(inference_model(model), raw_input)  # the first a no-op on what `assess` passed through it
    model.save(staging / MODEL_FILE)
    with contextlib.redirect_stdout(io.StringIO()):  # model.export prints its endpoints
        model.export(str(staging / SAVED_MODEL_DIR), format="tf_saved_model", verbose=False)
    _write_json(staging / "hyperparameters.json", hyperparameters)
    metrics.write(staging / METRICS_FILE)
    plots.confusion_matrix_png(figures.confusion, figures.class_names, staging / CONFUSION_PNG)
    plots.learning_curves_png(figures.history, staging / CURVES_PNG, figures.best_epoch)
    plots.search_progress_png(figures.trial_scores, figures.trial_seconds, staging / SEARCH_PNG)
    (staging / "README.md").write_text(model_card(model, hyperparameters, metrics))
    _swap_into_place(staging, export_dir)
    return export_dir


# Keras's random preprocessing layers default to `training=True` when a model is called
# without it, which `model.export`'s serving function does: left in, they would shift and
# flip what a served model sees. They exist for training only, so the export leaves them out.
TRAINING_ONLY_LAYERS = (
    keras.layers.RandomFlip, keras.layers.RandomTranslation, keras.layers.RandomRotation,
    keras.layers.RandomZoom, keras.layers.RandomContrast,
)  # fmt: skip


def inference_model(model: keras.Model) -> keras.Model:
    """The model as it is exported: no training-only layers (in a chain of layers), no optimizer, loss or their state.

    Augmentation layers are dropped (they pass inputs through at inference
    anyway, so predictions are unchanged). A compiled model's optimizer slots
    would double or triple `model.keras`, and its training loss or optimizer
    may be one of this project's own (label smoothing's loss, 1cycle's SGD),
    which a plain `keras.models.load_model` could not rebuild without
    importing `tuning`. The result shares the trained layers and their weights.

    A model that is not a chain of layers (a user's branching model) is
    exported as it is, less its compile: its layers are the user's to mind.

    Args:
        model: The trained model, a chain of layers as every registered space
            builds, or an ensemble of such chains from `evaluate.average`.
    """
    parts = evaluate.members(model)
    if len(parts) > 1:
        return evaluate.average([_chain_for_inference(part) for part in parts])
    return _chain_for_inference(model)


def _chain_for_inference(model: keras.Model) -> keras.Model:
    if not evaluate.is_chain(model):
        return evaluate.uncompiled_copy(model)
    inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name=model.inputs[0].name.split(":")[0] or "image")
    x = inputs
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.InputLayer, *TRAINING_ONLY_LAYERS)):
            x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def with_raw_input(model: keras.Model, raw: Optional[RawInput]) -> keras.Model:
    """`model` behind the steps that turn the user's raw input into what it was trained on, as Keras layers.

    Pixels are rescaled (`Rescaling`) and, when `--image-size` resized them
    for training, resized (`Resizing`, the same bilinear resize); a table's
    rows come as a dict of columns, numeric ones as numbers and text ones
    looked up (`StringLookup`, one-hot, the layout `TableEncoding` trained
    on). Standardization is the space's own layer, inside `model`. The result
    loads with a plain `keras.models.load_model`.

    Args:
        model: The exported model, taking the training arrays.
        raw: How the raw input became those arrays; None leaves `model` as it is.
    """
    if raw is None or (raw.table is None and raw.scale == 1.0 and raw.image_size is None):
        return model
    if raw.table is not None:
        return _table_front(model, raw.table)
    shape = tuple(model.inputs[0].shape[1:])
    inputs = keras.Input(shape=(None, None, shape[-1]) if raw.image_size else shape, name="raw")
    x = keras.layers.Rescaling(raw.scale, name="rescale")(inputs) if raw.scale != 1.0 else inputs
    if raw.image_size is not None:
        x = keras.layers.Resizing(*raw.image_size, name="resize")(x)
    return keras.Model(inputs, model(x), name=model.name)


def _table_front(model: keras.Model, table: TableEncoding) -> keras.Model:
    """A dict of raw columns in, `table`'s encoding (`StringLookup` one-hot for text columns), then `model`."""
    inputs, parts = {}, []
    for i, column in enumerate(table.columns):
        # Keras maps a dict by its keys; the tensor's own name must also be a valid TensorFlow name.
        name = column.name if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", column.name) else f"column_{i}"
        if column.vocabulary is None:
            inputs[column.name] = keras.Input(shape=(1,), name=name, dtype="float32")
            parts.append(inputs[column.name])
        else:
            inputs[column.name] = keras.Input(shape=(1,), name=name, dtype="string")
            lookup = keras.layers.StringLookup(vocabulary=list(column.vocabulary), output_mode="one_hot", name=f"lookup_{i}")
            parts.append(lookup(inputs[column.name]))
    x = keras.layers.Concatenate(name="encoded")(parts) if len(parts) > 1 else parts[0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")  # a renamed column
        return keras.Model(inputs, model(x), name=model.name)


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _swap_into_place(staging: Path, target: Path) -> None:
    retired = target.with_name(f"{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def _architecture(model: keras.Model) -> str:
    """The numbered layers; for an ensemble, a sentence saying so and its members' layers, once per architecture."""
    members = evaluate.members(model)
    architectures: dict[tuple[str, ...], list[str]] = {}
    for member in members:
        architectures.setdefault(tuple(_layer_lines(member)), []).append(member.name)
    if len(members) == 1:
        return _numbered(next(iter(architectures)))
    ensemble = (f"The average of the class probabilities of {len(members)} networks (`{members[0].name}` to "
                f"`{members[-1].name}`), retrained with different seeds")  # fmt: skip
    if len(architectures) == 1:
        return f"{ensemble}; each has these layers:\n\n{_numbered(next(iter(architectures)))}"
    return f"{ensemble}, in {len(architectures)} architectures:\n\n" + "\n\n".join(
        f"{', '.join(f'`{name}`' for name in names)}:\n\n{_numbered(lines)}" for lines, names in architectures.items())


def _numbered(lines: Sequence[str]) -> str:
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))


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


def _engine(search: SearchFigures) -> str:
    optuna = search.optuna
    if optuna:
        return (f"Optuna's `{search.tuner}` sampler (pruner `{optuna['pruner']}`, study "
                f"`{optuna['study_name']}` in `{optuna['storage']}`) driving Keras Tuner")  # fmt: skip
    return f"Keras Tuner's `{search.tuner}`"


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


def _variance_lines(final: FinalFigures, search: SearchFigures) -> str:
    seeds = final.seeds
    val, test = final.val_accuracy_spread, final.test_accuracy_spread
    rows = "\n".join(
        f"| {s['seed']} | {s['val_accuracy']:.4f} | {s['test_accuracy']:.4f} | {s['epochs_run']} |" for s in seeds
    )
    gap = final.search_validation_gap
    if gap > GAP_WARNING:
        verdict = (f"The search's best trial scored {search.best_trial_val_accuracy:.4f} on validation, "
                   f"{gap:.4f} above the retrained mean: **the search over-fitted its validation split** "
                   "(it picked a lucky run). Expect the retrained figures, not the search's.")  # fmt: skip
    elif gap < -GAP_WARNING:
        verdict = (f"The retrained mean is {-gap:.4f} above the search's best trial "
                   f"({search.best_trial_val_accuracy:.4f}), which trained for fewer epochs.")  # fmt: skip
    else:
        verdict = (f"The search's best trial ({search.best_trial_val_accuracy:.4f}) and the retrained mean "
                   f"agree within {GAP_WARNING:.2f}: no sign that the search over-fitted its validation split.")
    joined = _joined_loser(final.final_rung)
    chosen = "so no score chose among them" if joined is None else (
        f"so no score chose among them but one: seed {joined[1]} trained the final rung's other configuration "
        f"(trial {joined[0]}) and joined because the average's validation accuracy was no lower with it")  # fmt: skip
    exported = (
        f"the export averages the {len(seeds)} models' class probabilities (a deep ensemble: "
        f"validation {final.val_accuracy:.4f}, test {final.test_accuracy:.4f}), {chosen}"
        if len(seeds) > 1 else "it is exported as it is"
    )
    return f"""Retrained {len(seeds)} time(s) from scratch with different seeds; {exported}.
Each seed's own figures:

| seed | validation accuracy | test accuracy | epochs |
| --- | --- | --- | --- |
{rows}

Validation accuracy {val['mean']:.4f} ± {val['std']:.4f} (range {val['min']:.4f} to {val['max']:.4f});
test accuracy {test['mean']:.4f} ± {test['std']:.4f} (range {test['min']:.4f} to {test['max']:.4f}).
{verdict}"""


def _trial_epochs_text(search: SearchFigures) -> str:
    epochs = search.trial_epochs
    if not epochs:
        return f"up to {search.max_epochs} epochs per trial"
    if epochs["min"] == epochs["max"]:
        return f"every trial trained {epochs['max']} epochs"
    return f"trials trained {epochs['min']} to {epochs['max']} epochs"


def model_card(model: keras.Model, hyperparameters: dict, metrics: RunMetrics) -> str:
    """The `README.md` of an export, from the same figures as `metrics.json`."""
    return (_card_head(metrics) + _card_quality(metrics) + _card_description(model, metrics)
            + _card_provenance(hyperparameters, metrics) + _card_loading(metrics) + _card_limits(metrics))  # fmt: skip


def _card_head(metrics: RunMetrics) -> str:
    data, search = metrics.dataset, metrics.search
    return f"""# {metrics.run}: a dense classifier for {data.name}

Found by `tuning` with {_engine(search)} over the `{search.space}` search space,
then retrained from scratch and evaluated on the held-out test set after selection was over.

"""


def _card_quality(metrics: RunMetrics) -> str:
    data, search, final = metrics.dataset, metrics.search, metrics.final
    low, high = final.test_accuracy_ci95
    return f"""## How good it is
| split | accuracy | loss | examples |
| --- | --- | --- | --- |
| validation (used for selection) | {final.val_accuracy:.4f} | {final.val_loss:.4f} | {data.sizes['val']} |
| test (read only after selection) | {final.test_accuracy:.4f} | {final.test_loss:.4f} | {data.sizes['test']} |

Test accuracy {final.test_accuracy:.4f}, 95% Wilson interval [{low:.4f}, {high:.4f}] over the
{data.sizes['test']} test examples. Expected calibration error (15 bins) on test: {final.test_ece:.4f}.
{f"**{calibration_warning(final.test_ece)}**" if calibration_warning(final.test_ece) else ''}
{_mc_line(final.mc_dropout)}
### Retrain variance
{_variance_lines(final, search)}

### Pictures
- [Confusion matrix on the test set]({CONFUSION_PNG})
- [Learning curves of the retraining best on validation (seed {final.curves_seed})]({CURVES_PNG})
- [Search progress: best score so far by trial and by time]({SEARCH_PNG})

"""


def _card_description(model: keras.Model, metrics: RunMetrics) -> str:
    data, final = metrics.dataset, metrics.final
    layers = _architecture(model)
    shape = ", ".join(str(d) for d in data.input_shape)
    taken = (f"Input: {data.raw_input}." if data.raw_input else f"Input: float32 images of shape ({shape}) with pixels "
             f"scaled to [0, 1]\n(divide 8-bit pixels by {data.max_value:g}).")  # fmt: skip
    return f"""## What it is
{final.parameters:,} parameters. {taken} Output: {data.n_classes} class probabilities (softmax),
classes {', '.join(data.class_names)}.

{layers}

"""


def _card_provenance(hyperparameters: dict, metrics: RunMetrics) -> str:
    data, search, final = metrics.dataset, metrics.search, metrics.final
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(search.trials_by_status.items()))
    hp_lines = "\n".join(f"| `{k}` | `{v}` |" for k, v in sorted(hyperparameters.items()))
    machine, versions = metrics.machine or {}, metrics.versions or {}
    version_text = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if k != "platform")
    gpus = ", ".join(machine.get("gpus") or []) or "none"
    joined = _joined_loser(final.final_rung)
    table = ("" if joined is None else f"The table is trial {final.final_rung['kept']}'s configuration; seed {joined[1]}'s "
             f"member trained trial {joined[0]}'s (the final rung's other).\n\n")  # fmt: skip
    return f"""## How it was found
- Search: {search.tuner}, {counts} (cap {search.max_trials}; {_trial_epochs_text(search)}), {search.wall_seconds:.0f} s.
- Retraining: {len(final.seeds)} seed(s) of up to {final.epoch_budget} epochs, {final.wall_seconds:.0f} s in all; seed {final.curves_seed} ran {final.epochs_run} epochs and kept epoch {final.best_epoch}.
{_final_rung_line(final.final_rung)}{_lr_range_line(metrics.learning_rate_range_test)}- Seed {metrics.seed}. Rerun the search with: `{metrics.reproducing_command()}`
- Data: {data.source}, {data.sizes['train']} train / {data.sizes['val']} validation / {data.sizes['test']} test, sha256 prefix `{data.fingerprint}`.
- Machine: {machine.get('processor', 'unknown')}, {machine.get('cpu_count', '?')} cores, GPUs: {gpus}.
- Versions: {version_text}.

{table}| hyperparameter | value |
| --- | --- |
{hp_lines}

"""


def _joined_loser(rung: dict | None) -> tuple[str, int] | None:
    """The final rung's other trial and its member's seed when that member joined the ensemble, else None."""
    if not rung or not rung.get("loser_joined"):
        return None
    other = next(c["trial"] for c in rung["candidates"] if c["trial"] != rung["kept"])
    return other, rung["loser_seed"]


def _final_rung_line(rung: dict | None) -> str:
    if not rung:
        return ""
    scores = ", ".join(f"trial {c['trial']} {c['val_accuracy']:.4f}" for c in rung["candidates"])
    line = (f"- Final rung: the search's choice and the space's defaults, one member each at the members' length, on "
            f"validation: {scores}; trial {rung['kept']}'s configuration was retrained")  # fmt: skip
    if "loser_joined" not in rung:  # the time ran out inside the rung: one candidate trained
        return line + ".\n"
    ensemble = rung["ensemble_val_accuracy"]
    fate = "joined the ensemble" if rung["loser_joined"] else "was dropped"
    return (line + f", and the other's member {fate} (the average's validation accuracy "
            f"{ensemble['with_loser']:.4f} with it, {ensemble['without_loser']:.4f} without).\n")


def _card_loading(metrics: RunMetrics) -> str:
    data = metrics.dataset
    shape = ", ".join(str(d) for d in data.input_shape)
    if data.kind == "table":
        predict = ('rows = {name: numpy.array(values, dtype=object) for name, values in columns.items()}  '
                   '# or dict(pandas.read_csv(FILE)), the label dropped\n'
                   'probabilities = model.predict(rows)                    # raw CSV values, text included')  # fmt: skip
    elif data.raw_input:
        predict = f"probabilities = model.predict(inputs)                # {data.raw_input}"
    else:
        predict = f"probabilities = model.predict(images)                # images: float32, shape (n, {shape}), in [0, 1]"
    names = f"\nclass_names = {list(data.class_names)!r}  # probabilities[:, k] is class_names[k]" if data.raw_input else ""
    return f"""## How to load it
```python
import keras
import numpy

model = keras.models.load_model("{MODEL_FILE}")      # safe_mode=True works: no custom objects, no `tuning`
{predict}{names}
```
For serving, `{SAVED_MODEL_DIR}/` is a TF SavedModel:
```python
import tensorflow as tf
served = tf.saved_model.load("{SAVED_MODEL_DIR}")
probabilities = served.serve(tf.constant(images))
```
`hyperparameters.json` and `metrics.json` hold the figures above.

"""


def _card_limits(metrics: RunMetrics) -> str:
    data = metrics.dataset
    split = (f"The validation split ({data.sizes['val']} examples) was carved from the training data as the data's notes "
             "below say" if data.notes else f"The validation split is the last {data.sizes['val']} examples of the official "
             "training set")  # fmt: skip
    inputs = ("- The model takes the raw input described above; its scaling, encoding and standardization are inside it."
              if data.raw_input else "- Inputs must be scaled exactly as above; the model standardizes internally only if its "
              "first layers say so.")  # fmt: skip
    notes = "".join(f"\n- {note}" for note in data.notes or [])
    return f"""## Known limits
- The test accuracy of each retraining seed was measured to report the spread above; it chose nothing.
- {split}; the search selected on it, so validation figures are optimistic. Trust the test figure and its interval.
- A dense network ignores image structure; convolutional networks do better on images.
{inputs}

## The data, as the run read it{notes or chr(10) + "- " + data.name + ", a built-in dataset, with its fixed splits."}
"""


