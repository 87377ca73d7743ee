"""`dense`: the general space of fully connected classifiers.

Tunes depth (1 to 20 hidden layers, log-uniform so shallow nets are tried
often), units per layer, activation, kernel initializer, normalization,
dropout, input standardization, and (from the base class) optimizer,
learning rate, learning-rate schedule and batch size.
"""

from __future__ import annotations

import keras
import keras_tuner as kt

from search_spaces.base import SearchSpace

MAX_LAYERS = 20
UNITS = (64, 128, 256, 512, 1024)
ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "swish", "gelu", "tanh")
INITIALIZERS = ("he_normal", "glorot_uniform", "lecun_normal")
NORMALIZATIONS = ("none", "batch", "layer")


class DenseSpace(SearchSpace):
    """A stack of Dense → [norm] → activation → [dropout] blocks and a softmax.

    Its defaults, which the search tries first, are a strong single guess for
    image MLPs: 2×1024 ReLU, dropout 0.3, Adam warmed up to 2e-3 then
    cosine-annealed, batch 128.
    """

    DEFAULT_LEARNING_RATE = 2e-3

    def build_network(self, hp: kt.HyperParameters) -> keras.Model:
        inputs = keras.Input(shape=self.context.input_shape, name="image")
        x = keras.layers.Flatten()(inputs)
        if hp.Boolean("standardize", default=False):
            x = self.standardizer()(x)
        depth = hp.Int("num_layers", 1, MAX_LAYERS, sampling="log", default=2)
        activation = hp.Choice("activation", list(ACTIVATIONS), default="relu")
        initializer = hp.Choice("kernel_initializer", list(INITIALIZERS), default="he_normal")
        normalization = hp.Choice("normalization", list(NORMALIZATIONS), default="none")
        dropout = hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.3)
        for i in range(depth):
            with hp.conditional_scope("num_layers", list(range(i + 1, MAX_LAYERS + 1))):
                units = hp.Choice(f"units_{i}", list(UNITS), default=1024)
            x = keras.layers.Dense(
                units, kernel_initializer=initializer, use_bias=normalization != "batch"
            )(x)
            if normalization == "batch":
                x = keras.layers.BatchNormalization()(x)
            elif normalization == "layer":
                x = keras.layers.LayerNormalization()(x)
            x = keras.layers.Activation(activation)(x)
            if dropout > 0:
                x = keras.layers.Dropout(dropout)(x)
        outputs = keras.layers.Dense(self.context.n_classes, activation="softmax", name="probabilities")(x)
        return keras.Model(inputs, outputs, name="dense")


SPACE = DenseSpace
