"""ResNet v1 encoders: depths 18-200, width multipliers, ImageNet or CIFAR stem, three norms.

The stride of a downsampling block sits on its 3x3 convolution ("v1.5", as in torchvision
and Haiku). Normalisation is BatchNorm, synchronised BatchNorm (statistics over all
replicas), or GroupNorm with Weight Standardisation, the variant that trains without batch
statistics (Richemond et al. 2020). A fourth option, "affine", has no normalisation at all:
each norm is a learned per-channel scale and offset (`ChannelAffine`), which
`byol_tf.models.bn_free` initialises from BatchNorm statistics. The output is the
global-average-pooled feature map. With `remat`, training keeps only each residual block's
input and recomputes the block in the backward pass (`byol_tf.models.remat`).
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

from byol_tf.models.batchnorm import BatchNormalization
from byol_tf.models.remat import recompute

# depth -> (block kind, blocks per stage)
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
NORMS = ("batch", "sync_batch", "group_ws", "affine")


@keras.saving.register_keras_serializable(package="byol_tf")
class WSConv2D(keras.layers.Conv2D):
    """Conv2D whose kernel is standardised per output channel before use (BiT, NFNets)."""

    def convolution_op(self, inputs, kernel):
        mean = tf.reduce_mean(kernel, axis=(0, 1, 2), keepdims=True)
        var = tf.math.reduce_variance(kernel, axis=(0, 1, 2), keepdims=True)
        return super().convolution_op(inputs, (kernel - mean) * tf.math.rsqrt(var + 1e-10))


@keras.saving.register_keras_serializable(package="byol_tf")
class ChannelAffine(keras.layers.Layer):
    """x * gamma + beta per channel (last axis): a norm layer's affine part, without the norm.

    The variables are called `gamma` and `beta`, like BatchNorm's, so the optimizer's
    exclusion patterns treat them the same way (no weight decay, no trust ratio).
    """

    def __init__(self, gamma_initializer="ones", beta_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.beta_initializer = keras.initializers.get(beta_initializer)

    def build(self, input_shape):
        channels = (int(input_shape[-1]),)
        self.gamma = self.add_weight(
            shape=channels, initializer=self.gamma_initializer, name="gamma"
        )
        self.beta = self.add_weight(shape=channels, initializer=self.beta_initializer, name="beta")

    def call(self, x, training=False):  # `training` only to match the norms it stands in for
        return x * tf.cast(self.gamma, x.dtype) + tf.cast(self.beta, x.dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
            "beta_initializer": keras.initializers.serialize(self.beta_initializer),
        }


def group_count(groups: int, channels: int) -> int:
    """The largest group count <= `groups` that divides `channels`."""
    g = max(1, min(groups, channels))
    while channels % g:
        g -= 1
    return g


class ResidualBlock(keras.layers.Layer):
    """Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1) residual block with a projection shortcut."""

    def __init__(
        self, kind: str, filters: int, stride: int, in_channels: int, conv, norm, **kwargs
    ):
        super().__init__(**kwargs)
        out = filters * (4 if kind == "bottleneck" else 1)
        if kind == "basic":
            self.convs = [conv(filters, 3, stride, "conv1"), conv(filters, 3, 1, "conv2")]
            self.norms = [norm(filters, "bn1"), norm(filters, "bn2", last=True)]
        else:
            self.convs = [
                conv(filters, 1, 1, "conv1"),
                conv(filters, 3, stride, "conv2"),
                conv(out, 1, 1, "conv3"),
            ]
            self.norms = [norm(filters, "bn1"), norm(filters, "bn2"), norm(out, "bn3", last=True)]
        self.proj_conv = self.proj_norm = None
        if stride != 1 or in_channels != out:
            self.proj_conv = conv(out, 1, stride, "proj_conv")
            self.proj_norm = norm(out, "proj_bn")

    def call(self, x, training=False):
        shortcut = x
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = norm(conv(x), training=training)
            if i < len(self.convs) - 1:
                x = tf.nn.relu(x)
        if self.proj_conv is not None:
            shortcut = self.proj_norm(self.proj_conv(shortcut), training=training)
        return tf.nn.relu(x + shortcut)


@keras.saving.register_keras_serializable(package="byol_tf")
class ResNet(keras.Model):
    """A ResNet v1 feature extractor: images (already normalised) -> [N, D] pooled features."""

    def __init__(
        self,
        depth: int = 50,
        width_multiplier: int = 1,
        base_width: int = 64,
        stem: str = "imagenet",
        norm: str = "batch",
        bn_momentum: float = 0.9,
        bn_epsilon: float = 1e-5,
        gn_groups: int = 32,
        zero_init_residual: bool = False,
        remat: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if depth not in DEPTHS:
            raise ValueError(f"ResNet depth {depth} is not one of {sorted(DEPTHS)}.")
        if norm not in NORMS:
            raise ValueError(f"model.norm={norm!r} is not one of {', '.join(NORMS)}.")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"model.stem={stem!r} is not one of imagenet, cifar.")
        self.settings = dict(
            depth=depth,
            width_multiplier=width_multiplier,
            base_width=base_width,
            stem=stem,
            norm=norm,
            bn_momentum=bn_momentum,
            bn_epsilon=bn_epsilon,
            gn_groups=gn_groups,
            zero_init_residual=zero_init_residual,
            remat=remat,
        )
        kind, blocks = DEPTHS[depth]
        self.kind = kind
        expansion = 4 if kind == "bottleneck" else 1
        width = base_width * width_multiplier
        self.feature_dim = width * 8 * expansion

        if stem == "imagenet":
            self.stem_conv = self._conv(width, 7, 2, "stem_conv")
            self.stem_pool = keras.layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")
        else:
            self.stem_conv = self._conv(width, 3, 1, "stem_conv")
            self.stem_pool = None
        self.stem_bn = self._norm(width, "stem_bn")

        self.blocks = []
        in_channels = width
        for stage, count in enumerate(blocks):
            filters = width * 2**stage
            for b in range(count):
                stride = 2 if (b == 0 and stage > 0) else 1
                block = ResidualBlock(
                    kind,
                    filters,
                    stride,
                    in_channels,
                    self._conv,
                    self._norm,
                    name=f"stage{stage + 1}_block{b}",
                )
                self.blocks.append(block)
                in_channels = filters * expansion
        self.pool = keras.layers.GlobalAveragePooling2D(name="avg_pool")

    def _conv(self, filters: int, size: int, stride: int, name: str):
        cls = WSConv2D if self.settings["norm"] == "group_ws" else keras.layers.Conv2D
        return cls(
            filters,
            size,
            strides=stride,
            padding="same",
            use_bias=False,
            name=name,
            kernel_initializer=keras.initializers.VarianceScaling(
                2.0, "fan_out", "truncated_normal"
            ),
        )

    def _norm(self, channels: int, name: str, last: bool = False):
        s = self.settings
        # zero_init_residual: each residual branch starts as zero, so each block starts as identity.
        gamma = "zeros" if (last and s["zero_init_residual"]) else "ones"
        if s["norm"] == "affine":
            return ChannelAffine(gamma_initializer=gamma, name=name)
        if s["norm"] == "group_ws":
            return keras.layers.GroupNormalization(
                groups=group_count(s["gn_groups"], channels),
                epsilon=s["bn_epsilon"],
                gamma_initializer=gamma,
                name=name,
            )
        return BatchNormalization(
            momentum=s["bn_momentum"],
            epsilon=s["bn_epsilon"],
            gamma_initializer=gamma,
            synchronized=s["norm"] == "sync_batch",
            name=name,
        )

    def call(self, images, training=False):
        x = tf.nn.relu(self.stem_bn(self.stem_conv(images), training=training))
        if self.stem_pool is not None:
            x = self.stem_pool(x)
        for block in self.blocks:
            # An unbuilt block must create its variables in a plain call, not inside the
            # custom gradient; the first call is a build call anyway.
            if training and self.settings["remat"] and block.built:
                x = recompute(functools.partial(block, training=True))(x)
            else:
                x = block(x, training=training)
        return self.pool(x)

    def get_config(self):
        return {**super().get_config(), **self.settings}
