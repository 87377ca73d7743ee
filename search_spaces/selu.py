"""`selu`: self-normalizing networks (Klambauer et al., 2017).

Only the mix that self-normalizes can be built: inputs standardized with the
training split's statistics, plain Dense layers with SELU and LeCun-normal
initialization, no batch or layer normalization, and alpha dropout (never
plain dropout). Activation, initializer and normalization are not
hyperparameters here, so no sampler can choose an invalid combination.
"""

from __future__ import annotations

import keras
import keras_tuner as kt

from search_spaces.base import SearchSpace

MAX_LAYERS = 20
UNITS = (64, 128, 256, 512, 1024)


class SeluSpace(SearchSpace):
    """Standardize → (Dense SELU, LeCun normal → [AlphaDropout])* → softmax."""

    DEFAULT_OPTIMIZER = "nadam"

    def build_network(self, hp: kt.HyperParameters) -> keras.Model:
        inputs, x = self.inputs_and_augmentation(hp)
        x = self.standardizer()(x)
        depth = hp.Int("num_layers", 1, MAX_LAYERS, sampling="log", default=4)
        alpha_dropout = hp.Float("alpha_dropout", 0.0, 0.2, step=0.05, default=0.05)
        for i in range(depth):
            with hp.conditional_scope("num_layers", list(range(i + 1, MAX_LAYERS + 1))):
                units = hp.Choice(f"units_{i}", list(UNITS), default=256)
            x = keras.layers.Dense(units, activation="selu", kernel_initializer="lecun_normal")(x)
            if alpha_dropout > 0:
                x = keras.layers.AlphaDropout(alpha_dropout)(x)
        outputs = keras.layers.Dense(self.context.n_classes, activation="softmax", name="probabilities")(x)
        return keras.Model(inputs, outputs, name="selu")


SPACE = SeluSpace
