"""Per-profile defaults, and training-only augmentation that the export neither needs nor shows."""

from __future__ import annotations

import subprocess
import sys

import keras
import keras_tuner as kt
import numpy as np
import pytest

import search_spaces
from search_spaces.base import SpaceContext, default_values
from tests.conftest import make_dataset

AUGMENTATION = (keras.layers.RandomTranslation, keras.layers.RandomFlip)


def context(shape, mirror_invariant=False, **options) -> SpaceContext:
    n = int(np.prod(shape))
    return SpaceContext(shape, 10, np.full(n, 0.5, np.float32), np.full(n, 0.04, np.float32),
                        train_size=1000, epochs=3, mirror_invariant=mirror_invariant, **options)  # fmt: skip


def defaults_of(space) -> tuple[dict, kt.HyperParameters]:
    declared = kt.HyperParameters()
    space.build(declared)
    return default_values(declared), declared


def test_profiles_follow_the_images():
    assert context((28, 28)).profile == "grey" and context((28, 28)).image_shape == (28, 28, 1)
    assert context((32, 32, 3)).profile == "colour" and context((32, 32, 3)).image_shape == (32, 32, 3)
    assert context((50,)).profile == "grey" and context((50,)).image_shape is None


def test_dense_defaults_are_the_strong_guess_of_each_profile():
    grey, _ = defaults_of(search_spaces.get("dense")(context((28, 28))))
    assert {k: grey[k] for k in ("num_layers", "units_0", "units_1", "activation", "normalization", "dropout",
                                 "standardize", "optimizer", "learning_rate", "lr_schedule", "translate")} == {
        "num_layers": 2, "units_0": 1024, "units_1": 1024, "activation": "relu", "normalization": "none",
        "dropout": 0.3, "standardize": False, "optimizer": "adam", "learning_rate": 2e-3, "lr_schedule": "cosine",
        "translate": 2,
    }  # fmt: skip
    assert "flip" not in grey  # digits are never mirrored
    colour, _ = defaults_of(search_spaces.get("dense")(context((32, 32, 3), mirror_invariant=True)))
    assert {k: colour[k] for k in ("num_layers", "normalization", "dropout", "standardize", "learning_rate",
                                   "weight_decay", "translate", "flip")} == {
        "num_layers": 3, "normalization": "batch", "dropout": 0.1, "standardize": True, "learning_rate": 1e-3,
        "weight_decay": 1e-4, "translate": 3, "flip": True,
    }  # fmt: skip


def test_flips_are_declared_only_where_a_mirror_keeps_the_label():
    _, declared = defaults_of(search_spaces.get("dense")(context((32, 32, 3), mirror_invariant=False)))
    assert "flip" not in declared and "translate" in declared
    _, declared = defaults_of(search_spaces.get("dense")(context((4, 5))))  # too small to shift
    assert "translate" not in declared


def test_the_dataset_registry_says_which_data_may_be_mirrored():
    from tuning.data.datasets import DATASETS

    assert DATASETS.get("cifar10").mirror_invariant
    assert not DATASETS.get("mnist").mirror_invariant and not DATASETS.get("digits").mirror_invariant


def build_default(space) -> keras.Model:
    values, declared = defaults_of(space)
    hp = declared.copy()
    hp.values = values
    return space.build(hp)


@pytest.mark.parametrize("shape, mirror", [((28, 28), False), ((16, 16, 3), True)])
def test_augmentation_is_active_in_training_and_inert_at_inference(shape, mirror):
    model = build_default(search_spaces.get("dense")(context(shape, mirror)))
    augmentation = [l for l in model.layers if isinstance(l, AUGMENTATION)]
    assert augmentation
    x = np.random.default_rng(0).uniform(size=(8, *shape)).astype("float32")
    # The same weights without the augmentation layers predict exactly what the model predicts.
    plain = keras.Sequential([l for l in model.layers[1:] if not isinstance(l, (*AUGMENTATION, keras.layers.Reshape))])
    np.testing.assert_allclose(model.predict(x, verbose=0), plain.predict(x.reshape(8, -1), verbose=0), atol=1e-6)
    image = x.reshape(8, *context(shape).image_shape)
    shifted = image
    for layer in augmentation:
        shifted = layer(shifted, training=True)
    assert not np.allclose(np.asarray(shifted), image)  # in training the inputs do move
    for layer in augmentation:
        np.testing.assert_array_equal(np.asarray(layer(image, training=False)), image)


LOAD = """
import sys, keras, numpy as np
model = keras.models.load_model(sys.argv[1], safe_mode=True)
np.save(sys.argv[2], model.predict(np.load(sys.argv[3]), verbose=0))
print("tuning" in sys.modules, "search_spaces" in sys.modules)
"""


def test_an_exported_augmented_model_with_label_smoothing_loads_with_keras_alone(tmp_path):
    from tuning.final import evaluate, export

    space = search_spaces.get("dense")(context((16, 16, 3), mirror_invariant=True))
    values, declared = defaults_of(space)
    hp = declared.copy()
    hp.values = {**values, "label_smoothing": 0.1}
    model = space.build(hp)
    assert type(model.loss).__name__ == "SparseSmoothedCrossentropy"
    data = make_dataset(shape=(16, 16, 3), n_classes=10)
    model.fit(data.train.x, data.train.y, epochs=1, batch_size=32, verbose=0)
    exported = export.inference_model(evaluate.average([model]))
    assert not any(isinstance(l, AUGMENTATION) for l in exported.layers)  # absent from the export
    exported.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", data.test.x)
    done = subprocess.run([sys.executable, "-c", LOAD, str(tmp_path / "m.keras"), str(tmp_path / "p.npy"),
                           str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), model.predict(data.test.x, verbose=0), atol=1e-6)


def test_label_smoothing_changes_the_training_loss_only():
    from search_spaces.base import SparseSmoothedCrossentropy

    y = np.array([0, 2])
    p = np.array([[0.8, 0.1, 0.1], [0.2, 0.2, 0.6]], dtype="float32")
    plain = keras.losses.SparseCategoricalCrossentropy()(y, p)
    assert float(SparseSmoothedCrossentropy(0.0)(y, p)) == pytest.approx(float(plain), rel=1e-5)
    assert float(SparseSmoothedCrossentropy(0.1)(y, p)) > float(plain)
