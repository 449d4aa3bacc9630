"""Precise BatchNorm statistics for a random network: the average of the batch statistics."""

import keras
import numpy as np
import pytest

from byol_tf.models.bn_stats import batchnorm_layers, estimate_batchnorm_statistics


def _conv_bn() -> keras.Model:
    inputs = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(3, 3, name="conv")
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn")(conv(inputs))
    return keras.Model(inputs, keras.layers.ReLU()(x))


def test_statistics_are_the_mean_of_the_batch_statistics_and_weights_stay():
    model = _conv_bn()
    rng = np.random.default_rng(0)
    # Batches with different means, so a running average with any fixed momentum would differ.
    batches = [rng.normal(loc, 1.0, (4, 6, 6, 2)).astype(np.float32) for loc in (0.0, 2.0, -1.0)]
    weights = [w.numpy().copy() for w in model.trainable_weights]

    assert estimate_batchnorm_statistics(model, iter(batches)) == 3

    conv = model.get_layer("conv")
    outputs = [conv(b).numpy().reshape(-1, 3) for b in batches]
    bn = model.get_layer("bn")
    np.testing.assert_allclose(
        bn.moving_mean.numpy(), np.mean([o.mean(0) for o in outputs], 0), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        bn.moving_variance.numpy(), np.mean([o.var(0) for o in outputs], 0), rtol=1e-4, atol=1e-5
    )
    assert bn.momentum == 0.9  # restored
    for before, after in zip(weights, model.trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())


def test_finds_nested_batchnorm_and_refuses_no_batches():
    inner = _conv_bn()
    outer = keras.Sequential([inner, keras.layers.BatchNormalization(name="outer_bn")])
    outer(np.zeros((1, 6, 6, 2), np.float32))
    assert [layer.name for layer in batchnorm_layers(outer)] == ["bn", "outer_bn"]
    with pytest.raises(ValueError, match="at least one batch"):
        estimate_batchnorm_statistics(outer, iter([]))
