"""`deep`: deep, narrow networks of the kind that expose vanishing gradients.

10 to 30 hidden layers of one width (50 to 200 units), He initialization with
Swish, ELU or ReLU, and batch normalization placed before or after the
activation. Nadam by default. CIFAR-10's 20×100 experiment is a point in it.
"""

from __future__ import annotations

import keras
import keras_tuner as kt

from search_spaces.base import SearchSpace


class DeepSpace(SearchSpace):
    """Depth × (Dense He → BN → act | Dense He → act → BN) → softmax."""

    DEFAULT_OPTIMIZER = "nadam"

    def build_network(self, hp: kt.HyperParameters) -> keras.Model:
        inputs, x = self.inputs_and_augmentation(hp)
        if hp.Boolean("standardize", default=True):
            x = self.standardizer()(x)
        depth = hp.Int("num_layers", 10, 30, step=5, default=20)
        units = hp.Int("units", 50, 200, step=50, default=100)
        activation = hp.Choice("activation", ["swish", "elu", "relu"], default="swish")
        initializer = hp.Choice("kernel_initializer", ["he_normal", "he_uniform"], default="he_normal")
        batch_norm = hp.Choice("batch_norm", ["before_activation", "after_activation"], default="before_activation")
        for _ in range(depth):
            x = keras.layers.Dense(
                units, kernel_initializer=initializer, use_bias=batch_norm != "before_activation"
            )(x)
            if batch_norm == "before_activation":
                x = keras.layers.BatchNormalization()(x)
                x = keras.layers.Activation(activation)(x)
            else:
                x = keras.layers.Activation(activation)(x)
                x = keras.layers.BatchNormalization()(x)
        outputs = keras.layers.Dense(self.context.n_classes, activation="softmax", name="probabilities")(x)
        return keras.Model(inputs, outputs, name="deep")


SPACE = DeepSpace
