"""The fused BatchNorm computes what Keras's BatchNormalization computes, with the fused kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from byol_tf.models.batchnorm import BatchNormalization

EPS = 1e-5


def _pair(shape, **kwargs):
    """A Keras BatchNormalization and ours, built with the same random gamma and beta."""
    rng = np.random.default_rng(1)
    layers = [
        keras.layers.BatchNormalization(epsilon=EPS, **kwargs),
        BatchNormalization(epsilon=EPS, **kwargs),
    ]
    weights = None
    for layer in layers:
        layer.build(shape)
        if weights is None:
            weights = [rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.weights]
        layer.set_weights(weights)
    return layers


def _numpy_reference(x, upstream, gamma, beta):
    """Training-mode BatchNorm and its gradients in float64, over all axes but the last."""
    c = x.shape[-1]
    x64, u = x.reshape(-1, c).astype(np.float64), upstream.reshape(-1, c).astype(np.float64)
    mean, var = x64.mean(0), x64.var(0)
    xhat = (x64 - mean) / np.sqrt(var + EPS)
    y = gamma * xhat + beta
    dx = gamma / np.sqrt(var + EPS) * (u - u.mean(0) - xhat * (u * xhat).mean(0))
    return y.reshape(x.shape), dx.reshape(x.shape), (u * xhat).sum(0), u.sum(0), mean, var


@pytest.mark.parametrize("shape", [(32, 24), (6, 5, 4, 7)])
def test_training_pass_matches_numpy_and_keras(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, shape).astype(np.float32)
    upstream = rng.normal(0.0, 1.0, shape).astype(np.float32)
    results = []
    for layer in _pair(shape, momentum=0.8):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, training=True)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [xt, layer.gamma, layer.beta])
        results.append((layer, [y.numpy()] + [g.numpy() for g in grads]))
    (keras_bn, keras_out), (ours, our_out) = results

    gamma, beta = ours.gamma.numpy().astype(np.float64), ours.beta.numpy().astype(np.float64)
    y, dx, dgamma, dbeta, mean, var = _numpy_reference(x, upstream, gamma, beta)
    for got, want in zip(our_out, (y, dx, dgamma, dbeta)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    for got, want in zip(our_out, keras_out):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # Moving statistics: Keras's rule with the biased variance, from the same starting values.
    start_mean, start_var = _pair(shape)[0].moving_mean.numpy(), _pair(shape)[0].moving_variance
    start_var = start_var.numpy()
    np.testing.assert_allclose(ours.moving_mean.numpy(), 0.8 * start_mean + 0.2 * mean, rtol=1e-5)
    np.testing.assert_allclose(ours.moving_variance.numpy(), 0.8 * start_var + 0.2 * var, rtol=1e-5)
    np.testing.assert_allclose(ours.moving_variance.numpy(), keras_bn.moving_variance.numpy(), 1e-5)


def test_inference_and_frozen_layers_use_the_moving_statistics():
    shape = (8, 3, 3, 5)
    x = tf.constant(np.random.default_rng(2).normal(1.0, 2.0, shape).astype(np.float32))
    keras_bn, ours = _pair(shape)
    np.testing.assert_allclose(ours(x, training=False), keras_bn(x, training=False), rtol=1e-6)
    ours.trainable = False
    keras_bn.trainable = False
    before = ours.moving_mean.numpy().copy()
    np.testing.assert_allclose(ours(x, training=True), keras_bn(x, training=True), rtol=1e-6)
    np.testing.assert_array_equal(ours.moving_mean.numpy(), before)


def test_without_scale_and_center():
    shape = (16, 6)
    x = tf.constant(np.random.default_rng(3).normal(0.0, 4.0, shape).astype(np.float32))
    keras_bn, ours = _pair(shape, scale=False, center=False)
    y = ours(x, training=True).numpy()
    np.testing.assert_allclose(y, keras_bn(x, training=True), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(0), 1.0, atol=1e-3)


def test_a_batch_of_one_has_zero_variance_as_in_keras():
    keras_bn, ours = _pair((1, 4))
    x = tf.constant([[1.0, -2.0, 3.0, 0.5]])
    # x - mean is 0 up to rounding, which 1/sqrt(eps) amplifies: both give beta to 1e-3.
    y = ours(x, training=True)
    np.testing.assert_allclose(y, keras_bn(x, training=True), atol=1e-3)
    np.testing.assert_allclose(y[0], ours.beta.numpy(), atol=1e-3)
    np.testing.assert_allclose(ours.moving_variance.numpy(), keras_bn.moving_variance.numpy())
    assert np.all(np.isfinite(ours.moving_variance.numpy()))


def _op_types(layer, x, training):
    graph = tf.function(lambda t: layer(t, training=training)).get_concrete_function(x).graph
    return {op.type for op in graph.get_operations()}


def test_the_training_pass_is_one_fused_op_and_other_cases_fall_back():
    x = tf.zeros((4, 3, 3, 2))
    assert "FusedBatchNormV3" in _op_types(_pair(x.shape)[1], x, True)
    assert "FusedBatchNormV3" not in _op_types(_pair(x.shape)[1], x, False)
    # Cross-replica statistics need Keras's all-reduced moments; a 3-D input has no fused op.
    assert "FusedBatchNormV3" not in _op_types(_pair(x.shape, synchronized=True)[1], x, True)
    x3 = tf.zeros((4, 3, 2))
    assert "FusedBatchNormV3" not in _op_types(_pair(x3.shape)[1], x3, True)


def test_mixed_precision_keeps_float32_statistics(monkeypatch):
    shape = (16, 4, 4, 3)
    x = np.random.default_rng(4).normal(0.5, 2.0, shape).astype(np.float32)
    outputs = []
    for cls in (keras.layers.BatchNormalization, BatchNormalization):
        layer = cls(epsilon=EPS, dtype="mixed_bfloat16")
        outputs.append(layer(tf.constant(x, tf.bfloat16), training=True))
        assert layer.moving_mean.dtype == "float32"
    assert outputs[1].dtype == tf.bfloat16
    np.testing.assert_allclose(
        tf.cast(outputs[1], tf.float32), tf.cast(outputs[0], tf.float32), atol=0.05
    )


def test_serialises_and_is_a_keras_batchnorm():
    layer = BatchNormalization(momentum=0.7, epsilon=1e-4, name="bn")
    assert isinstance(layer, keras.layers.BatchNormalization)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is BatchNormalization
    assert (clone.momentum, clone.epsilon) == (0.7, 1e-4)
