"""`Encoder`: any backbone behind one interface, [0, 1] images in, representation y out.

Input normalisation (data mean/std) lives here, so an exported encoder takes plain [0, 1]
images. A backbone returning a feature map is global-average-pooled. Users can bring any
Keras model, optionally cut at a hidden layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="byol_tf")
class Encoder(keras.Model):
    def __init__(
        self,
        backbone: keras.Model,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        **kwargs,
    ):
        kwargs.setdefault("name", "encoder")
        super().__init__(**kwargs)
        self.backbone = backbone
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def call(self, images, training=False):
        x = tf.cast(images, self.compute_dtype)
        x = (x - tf.constant(self.mean, x.dtype)) / tf.constant(self.std, x.dtype)
        y = self.backbone(x, training=training)
        if len(y.shape) == 4:
            y = tf.reduce_mean(y, axis=(1, 2))
        return y

    @classmethod
    def from_keras_model(
        cls,
        model: keras.Model,
        hidden_layer: str | None = None,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        name: str = "encoder",
    ) -> Encoder:
        """Wraps a user model; with `hidden_layer`, that layer's output is the representation."""
        if hidden_layer is not None:
            try:
                inputs = model.inputs
            except (AttributeError, ValueError):
                inputs = None
            if not inputs:
                raise ValueError(
                    f"hidden_layer={hidden_layer!r} needs a model with defined inputs, but "
                    f"{model.name!r} has none yet: build it from keras.Input (a functional "
                    "model, or a Sequential starting with keras.Input(shape=...)), or pass "
                    "the model without hidden_layer."
                )
            try:
                layer = model.get_layer(hidden_layer)
            except ValueError as e:
                names = ", ".join(layer.name for layer in model.layers[-8:])
                raise ValueError(
                    f"hidden_layer={hidden_layer!r} is not a layer of {model.name!r} "
                    f"(its last layers: {names})."
                ) from e
            model = keras.Model(inputs, layer.output, name=f"{model.name}_to_{hidden_layer}")
        return cls(model, mean=mean, std=std, name=name)

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
