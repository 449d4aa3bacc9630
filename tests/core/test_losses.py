"""byol_tf.core.losses against a NumPy reference, plus its invariants and stop-gradient."""

import numpy as np
import pytest
import tensorflow as tf

from byol_tf.core import losses


def _numpy_regression(p: np.ndarray, z: np.ndarray) -> np.ndarray:
    p = p / np.linalg.norm(p, axis=-1, keepdims=True)
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    return 2.0 - 2.0 * np.sum(p * z, axis=-1)


def _random(shape, seed):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_regression_loss_matches_numpy():
    p, z = _random((8, 16), 0), _random((8, 16), 1)
    got = losses.regression_loss(p, z)
    assert got.shape == (8,)
    np.testing.assert_allclose(got.numpy(), _numpy_regression(p, z), rtol=1e-5, atol=1e-6)


def test_regression_loss_is_scale_invariant():
    p, z = _random((4, 8), 2), _random((4, 8), 3)
    np.testing.assert_allclose(
        losses.regression_loss(3.0 * p, 0.5 * z).numpy(),
        losses.regression_loss(p, z).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


def test_identical_gives_zero_and_antiparallel_gives_four():
    x = _random((5, 32), 4)
    np.testing.assert_allclose(losses.regression_loss(x, x).numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(losses.regression_loss(x, -x).numpy(), 4.0, atol=1e-6)
    # Summed over both directions: antiparallel is 4 + 4, not their mean.
    np.testing.assert_allclose(losses.byol_loss(x, x, -x, -x).numpy(), 8.0, atol=1e-5)
    np.testing.assert_allclose(losses.byol_loss(x, x, x, x).numpy(), 0.0, atol=1e-5)


def test_byol_loss_is_the_sum_of_both_directions():
    p1, p2, z1, z2 = (_random((6, 16), s) for s in range(10, 14))
    expected = _numpy_regression(p1, z2) + _numpy_regression(p2, z1)
    got = losses.byol_loss(p1, p2, z1, z2)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_byol_loss_is_symmetric_in_the_views():
    p1, p2, z1, z2 = (_random((6, 16), s) for s in range(20, 24))
    np.testing.assert_allclose(
        losses.byol_loss(p1, p2, z1, z2).numpy(),
        losses.byol_loss(p2, p1, z2, z1).numpy(),
        rtol=1e-6,
    )


def test_range():
    # Low dimension so that nearly (anti)parallel pairs occur; bounds allow float rounding.
    p1, p2, z1, z2 = (_random((512, 2), s) for s in range(50, 54))
    per_direction = losses.regression_loss(p1, z1).numpy()
    assert per_direction.min() >= -1e-6 and per_direction.max() <= 4.0 + 1e-6
    assert per_direction.min() < 0.01 and per_direction.max() > 3.99
    both = losses.byol_loss(p1, p2, z1, z2).numpy()
    assert both.min() >= -1e-6 and both.max() <= 8.0 + 1e-6


def test_zero_vectors_do_not_nan():
    zeros = tf.zeros((2, 8))
    x = tf.constant(_random((2, 8), 7))
    with tf.GradientTape() as tape:
        tape.watch(zeros)
        loss = losses.regression_loss(zeros, x)
    grad = tape.gradient(loss, zeros)
    # A zero vector normalises to zero: cosine 0, loss 2, finite gradient.
    np.testing.assert_allclose(loss.numpy(), 2.0)
    assert np.all(np.isfinite(grad.numpy()))
    np.testing.assert_allclose(losses.regression_loss(x, tf.zeros((2, 8))).numpy(), 2.0)


def test_no_gradient_into_targets():
    p1, p2, z1, z2 = (tf.Variable(_random((4, 8), s)) for s in range(30, 34))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(losses.byol_loss(p1, p2, z1, z2))
    g_p1, g_p2, g_z1, g_z2 = tape.gradient(loss, [p1, p2, z1, z2])
    assert g_z1 is None and g_z2 is None
    assert np.any(g_p1.numpy() != 0) and np.any(g_p2.numpy() != 0)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_low_precision_inputs_give_float32(dtype):
    p, z = _random((4, 16), 8), _random((4, 16), 9)
    got = losses.byol_loss(*(tf.cast(t, dtype) for t in (p, p, z, z)))
    assert got.dtype == tf.float32
    # Only the input rounding differs from the float32 result.
    expected = 2.0 * _numpy_regression(p, z)
    np.testing.assert_allclose(got.numpy(), expected, atol=0.05)


def test_caller_average_with_compute_average_loss():
    # Documented use: the per-example loss is averaged over the global batch by the caller.
    p1, p2, z1, z2 = (_random((4, 8), s) for s in range(40, 44))
    per_example = losses.byol_loss(p1, p2, z1, z2)
    average = tf.nn.compute_average_loss(per_example, global_batch_size=8)
    np.testing.assert_allclose(average.numpy(), per_example.numpy().sum() / 8, rtol=1e-6)


# --- NT-Xent --------------------------------------------------------------------------------------


def _numpy_nt_xent(z1: np.ndarray, z2: np.ndarray, temperature: float) -> np.ndarray:
    """SimCLR's formula written out: 2N projections, each anchor against the 2N - 1 others."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    anchor_loss = np.zeros(2 * n)
    for a in range(2 * n):
        positive = (a + n) % (2 * n)
        others = [k for k in range(2 * n) if k != a]
        denominator = sum(np.exp(z[a] @ z[k] / temperature) for k in others)
        anchor_loss[a] = -np.log(np.exp(z[a] @ z[positive] / temperature) / denominator)
    return anchor_loss[:n] + anchor_loss[n:]  # per image: both views as anchors


# Three images, 2-d projections drawn by hand; image 2's views disagree the most.
HAND_Z1 = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], np.float32)
HAND_Z2 = np.array([[0.9, 0.1], [-0.3, 1.0], [1.0, -0.5]], np.float32)


def test_nt_xent_matches_numpy_on_a_hand_made_batch():
    got = losses.nt_xent_loss(HAND_Z1, HAND_Z2, temperature=0.5)
    expected = _numpy_nt_xent(HAND_Z1, HAND_Z2, 0.5)
    assert got.shape == (3,) and got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    # The view pair that agrees least costs the most.
    assert np.argmax(expected) == 2
    # Another temperature changes the value: the temperature is really applied.
    assert not np.allclose(losses.nt_xent_loss(HAND_Z1, HAND_Z2, 0.1).numpy(), expected)


def test_nt_xent_matches_numpy_on_random_batches():
    z1, z2 = _random((16, 8), 60), _random((16, 8), 61)
    np.testing.assert_allclose(
        losses.nt_xent_loss(z1, z2, 0.2).numpy(), _numpy_nt_xent(z1, z2, 0.2), rtol=1e-4
    )


def test_nt_xent_single_image_has_only_its_positive():
    # With N = 1 each anchor's only other projection is its positive: the loss is exactly 0.
    z1, z2 = _random((1, 4), 62), _random((1, 4), 63)
    np.testing.assert_allclose(losses.nt_xent_loss(z1, z2, 0.1).numpy(), [0.0], atol=1e-6)


def test_nt_xent_replica_slice_against_gathered_keys_equals_the_global_loss():
    # What a replica computes: its own anchors against the whole batch's keys, at its offset.
    z1, z2 = _random((6, 5), 64), _random((6, 5), 65)
    full = losses.nt_xent_loss(z1, z2, 0.3).numpy()
    for start in (0, 2, 4):
        part = losses.nt_xent_loss(z1[start : start + 2], z2[start : start + 2], 0.3, z1, z2, start)
        np.testing.assert_allclose(part.numpy(), full[start : start + 2], rtol=1e-5, atol=1e-6)
    # The wrong offset pairs anchors with other images' views: a different loss.
    wrong = losses.nt_xent_loss(z1[2:4], z2[2:4], 0.3, z1, z2, 0).numpy()
    assert not np.allclose(wrong, full[2:4], atol=1e-3)


def test_nt_xent_gradient_reaches_anchors_and_keys():
    z1, z2 = (tf.Variable(_random((4, 6), s)) for s in (66, 67))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(losses.nt_xent_loss(z1, z2, 0.5))
    g1, g2 = tape.gradient(loss, [z1, z2])
    assert np.all(np.isfinite(g1.numpy())) and np.abs(g2.numpy()).max() > 0
