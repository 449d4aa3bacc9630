"""The projector g and predictor q: Linear -> norm -> ReLU -> Linear (the paper's MLP).

The first Linear has a bias and the last has none, as in the reference code. The norm is
configurable (batch, layer, none) for the Fetterman & Albrecht ablations.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from byol_tf.models.batchnorm import BatchNormalization


@keras.saving.register_keras_serializable(package="byol_tf")
class MLPHead(keras.Model):
    def __init__(
        self,
        hidden_dim: int = 4096,
        output_dim: int = 256,
        norm: str = "batch",
        bn_momentum: float = 0.9,
        bn_epsilon: float = 1e-5,
        synchronized: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if norm not in ("batch", "layer", "none"):
            raise ValueError(f"MLP norm={norm!r} is not one of batch, layer, none.")
        self.settings = dict(
            hidden_dim=hidden_dim,
            output_dim=output_dim,
            norm=norm,
            bn_momentum=bn_momentum,
            bn_epsilon=bn_epsilon,
            synchronized=synchronized,
        )
        self.hidden = keras.layers.Dense(hidden_dim, use_bias=True, name="hidden")
        if norm == "batch":
            self.norm = BatchNormalization(
                momentum=bn_momentum, epsilon=bn_epsilon, synchronized=synchronized, name="bn"
            )
        elif norm == "layer":
            self.norm = keras.layers.LayerNormalization(epsilon=bn_epsilon, name="ln")
        else:
            self.norm = None
        self.out = keras.layers.Dense(output_dim, use_bias=False, name="output")

    def call(self, x, training=False):
        x = self.hidden(x)
        if self.norm is not None:
            x = self.norm(x, training=training)
        return self.out(tf.nn.relu(x))

    def get_config(self):
        return {**super().get_config(), **self.settings}
