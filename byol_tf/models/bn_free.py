"""BatchNorm-free ResNets with a data-dependent start (Richemond et al. 2020, Sec. 3.2).

One forward pass in training mode on a batch of augmented images records, for every
BatchNorm layer, the per-channel mean mu and standard deviation sigma = sqrt(var + epsilon)
of its input. Each BatchNorm then becomes a trainable per-channel scale and offset
(`ChannelAffine`) initialised to

    scale = gamma0 * g / sigma,   offset = gamma0 * (b - mu * g / sigma),

with g, b the BatchNorm's own gamma and beta, gamma0 = 0 for the last norm of each residual
branch and 1 elsewhere. For a fresh BatchNorm (g = 1, b = 0) this is the paper's
gamma = gamma0 / sigma, beta = -mu * gamma; keeping g and b makes every gamma0 = 1 layer
reproduce its BatchNorm's training-mode output on that batch exactly. With gamma0 = 0 each
residual branch starts at zero, so every block starts as relu(shortcut); the statistics of
the layers after such a block were still recorded in the BatchNorm network (one pass, as in
the paper), so they normalise their new inputs only approximately.

`remove_batchnorm(encoder, images)` returns the transformed copy of a BatchNorm ResNet;
`init_from_batchnorm(encoder, images)` initialises a ResNet already built with
norm="affine" in place (what the Trainer does for `model.norm="bn_free_init"`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from byol_tf.models.encoder import Encoder
from byol_tf.models.resnet import ChannelAffine, ResNet


def _norms(net: ResNet) -> list[tuple[keras.Layer, bool]]:
    """(norm layer, is the last norm of a residual branch) in a fixed structural order."""
    out = [(net.stem_bn, False)]
    for block in net.blocks:
        out += [(norm, i == len(block.norms) - 1) for i, norm in enumerate(block.norms)]
        if block.proj_norm is not None:
            out.append((block.proj_norm, False))
    return out


def _convs(net: ResNet) -> list[keras.layers.Conv2D]:
    out = [net.stem_conv]
    for block in net.blocks:
        out += list(block.convs) + ([block.proj_conv] if block.proj_conv is not None else [])
    return out


def _split(model: keras.Model) -> tuple[ResNet, Encoder | None]:
    backbone = model.backbone if isinstance(model, Encoder) else model
    if not isinstance(backbone, ResNet):
        raise TypeError(
            f"BatchNorm removal supports byol_tf's ResNet (or an Encoder around one), not "
            f"{type(backbone).__name__}; build the encoder from the config (model.encoder)."
        )
    return backbone, model if isinstance(model, Encoder) else None


def batchnorm_statistics(model: keras.Model, images) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-channel (mu, sigma) of every BatchNorm's input in one training-mode pass.

    In the order of `_norms` of the model's ResNet; sigma = sqrt(var + epsilon) with the
    biased batch variance, exactly what the BatchNorm divides by. The model's weights,
    moving statistics included, are left as they were.
    """
    backbone, _ = _split(model)
    norms = [norm for norm, _ in _norms(backbone)]
    for norm in norms:
        if not isinstance(norm, keras.layers.BatchNormalization):
            raise TypeError(f"{norm.path} is a {type(norm).__name__}, not a BatchNormalization.")
        if not norm.trainable:
            raise ValueError(
                f"{norm.path} is frozen: in training mode it would not use batch statistics."
            )
    saved = [(n.momentum, n.moving_mean.numpy(), n.moving_variance.numpy()) for n in norms]
    try:
        # With momentum 0 a training-mode call leaves exactly the batch mean and (biased)
        # variance in the moving statistics, computed by the layer itself.
        for norm in norms:
            norm.momentum = 0.0
        model(tf.convert_to_tensor(images), training=True)
        stats = [
            (n.moving_mean.numpy(), np.sqrt(n.moving_variance.numpy() + n.epsilon)) for n in norms
        ]
    finally:
        for norm, (momentum, mean, variance) in zip(norms, saved):
            norm.momentum = momentum
            norm.moving_mean.assign(mean)
            norm.moving_variance.assign(variance)
    return stats


def _set_affine(bn_net: ResNet, affine_net: ResNet, stats, last_gamma0: float) -> None:
    for (bn, last), (affine, _), (mu, sigma) in zip(_norms(bn_net), _norms(affine_net), stats):
        if not isinstance(affine, ChannelAffine):
            raise TypeError(f"{affine.path} is a {type(affine).__name__}, not a ChannelAffine.")
        gamma0 = last_gamma0 if last else 1.0
        g = bn.gamma.numpy() if bn.scale else np.ones_like(mu)
        b = bn.beta.numpy() if bn.center else np.zeros_like(mu)
        scale = gamma0 * g / sigma
        affine.gamma.assign(scale)
        affine.beta.assign(gamma0 * b - mu * scale)


def _copy_convs(source: ResNet, destination: ResNet) -> None:
    for src, dst in zip(_convs(source), _convs(destination), strict=True):
        dst.kernel.assign(src.kernel)


def remove_batchnorm(model: keras.Model, images, last_gamma0: float = 0.0) -> keras.Model:
    """A copy of a BatchNorm ResNet (or Encoder) with every BatchNorm replaced as above.

    Args:
      model: an `Encoder` around a `ResNet` with norm "batch"/"sync_batch", or the ResNet.
      images: one batch of augmented images in the model's input format ([0, 1] for an
        Encoder); its statistics set the affine parameters.
      last_gamma0: gamma0 of the last norm of each residual branch (0 in the paper; 1 makes
        the copy compute exactly what `model` computes in training mode on `images`).

    Returns:
      The same kind of model (Encoder or ResNet) with norm "affine", new variables, the same
      convolution kernels, and no BatchNormalization layer. `model` is left unchanged.
    """
    backbone, encoder = _split(model)
    stats = batchnorm_statistics(model, images)
    settings = {**backbone.settings, "norm": "affine"}
    new_backbone = ResNet(**settings, name=backbone.name)
    new = (
        new_backbone
        if encoder is None
        else Encoder(new_backbone, encoder.mean, encoder.std, name=encoder.name)
    )
    new(tf.zeros((1, *tf.convert_to_tensor(images).shape[1:])), training=False)
    _copy_convs(backbone, new_backbone)
    _set_affine(backbone, new_backbone, stats, last_gamma0)
    return new


def init_from_batchnorm(encoder: Encoder, images, last_gamma0: float = 0.0) -> None:
    """Initialises a norm="affine" ResNet encoder in place from its BatchNorm twin's statistics.

    The twin is a BatchNorm ResNet with the same settings and the same convolution kernels;
    its statistics on `images` ([0, 1], augmented) set the affine parameters. The kernels
    of `encoder` are not changed.
    """
    backbone, _ = _split(encoder)
    if backbone.settings["norm"] != "affine":
        raise ValueError(
            f"init_from_batchnorm needs a ResNet built with norm='affine', not "
            f"{backbone.settings['norm']!r}; use remove_batchnorm to transform a BatchNorm one."
        )
    twin_backbone = ResNet(**{**backbone.settings, "norm": "batch"}, name=backbone.name)
    twin = Encoder(twin_backbone, encoder.mean, encoder.std, name=encoder.name)
    twin(tf.zeros((1, *tf.convert_to_tensor(images).shape[1:])), training=False)
    _copy_convs(backbone, twin_backbone)
    _set_affine(twin_backbone, backbone, batchnorm_statistics(twin, images), last_gamma0)
