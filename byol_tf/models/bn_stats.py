"""BatchNorm moving statistics estimated from data, for evaluating a network nobody trained.

A freshly built Keras BatchNormalization holds placeholder moving statistics (mean 0,
variance 1), so a random network in inference mode computes a function it never computes in
training. A trained network's statistics come from its own training-mode passes over the
data. `estimate_batchnorm_statistics` gives a network the same kind of statistics without
changing a single weight: the exact average, over the given batches, of each layer's batch
mean and variance (the "precise BN" estimate).
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import tensorflow as tf


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer inside `model`, in build order."""
    # Keras 3 has no public recursive layer walk; `_flatten_layers` is what `Model.layers` uses.
    layers = model._flatten_layers(include_self=False, recursive=True)  # noqa: SLF001
    return [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]


def estimate_batchnorm_statistics(model: keras.Model, batches: Iterable[tf.Tensor]) -> int:
    """Sets every BatchNorm layer's moving mean and variance to their average over `batches`.

    Runs `model(batch, training=True)` on each batch; the n-th batch enters each running
    average with weight 1/n, so after N batches each statistic is the plain mean of the N
    batch statistics, whatever the layers' momentum. Trainable weights do not change; the
    layers' momentum is restored. Returns the number of batches used.
    """
    layers = batchnorm_layers(model)
    momenta = [layer.momentum for layer in layers]
    count = 0
    try:
        for batch in batches:
            count += 1
            for layer in layers:
                # new = momentum * old + (1 - momentum) * batch_stat: 1 - 1/n keeps the mean.
                layer.momentum = 1.0 - 1.0 / count
            model(batch, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if count == 0:
        raise ValueError("estimate_batchnorm_statistics needs at least one batch.")
    return count
