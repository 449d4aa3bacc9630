"""BYOL's regression loss between online predictions and target projections.

Both functions return one value per example and leave the batch reduction to the caller. In a
distributed step, average over the *global* batch with
`tf.nn.compute_average_loss(per_example_loss, global_batch_size=...)`, so that summing the
replicas' gradients (what Keras optimizers do) gives the gradient of the global mean.

The loss is always computed in float32, whatever the dtype of the heads' outputs, because the
cosine of two nearly parallel vectors loses most of its digits in float16/bfloat16.
"""

from __future__ import annotations

import tensorflow as tf

# Floor on the squared norm inside tf.math.l2_normalize: a zero vector normalises to zero
# (cosine 0, loss 2) instead of dividing by zero.
_NORM_EPSILON = 1e-12


def regression_loss(prediction: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Per-example `2 - 2 * cos(prediction, target)`; no gradient flows into `target`.

    Args:
      prediction: [B, D] online predictions q(z).
      target: [B, D] target projections z'; wrapped in stop_gradient here so callers cannot
        forget it.

    Returns:
      float32 [B], each value in [0, 4].
    """
    prediction = tf.cast(prediction, tf.float32)
    target = tf.stop_gradient(tf.cast(target, tf.float32))
    prediction = tf.math.l2_normalize(prediction, axis=-1, epsilon=_NORM_EPSILON)
    target = tf.math.l2_normalize(target, axis=-1, epsilon=_NORM_EPSILON)
    cosine = tf.reduce_sum(prediction * target, axis=-1)
    return 2.0 - 2.0 * cosine


def byol_loss(
    online_pred_view1: tf.Tensor,
    online_pred_view2: tf.Tensor,
    target_proj_view1: tf.Tensor,
    target_proj_view2: tf.Tensor,
) -> tf.Tensor:
    """Symmetrised BYOL loss per example: view 1 predicts view 2's target and vice versa.

    The two directions are summed, not averaged, as in the paper and DeepMind's code; the mean
    would halve every gradient (a mistake recorded in another BYOL port).

    Returns:
      float32 [B], each value in [0, 8] (each direction contributes [0, 4]). Average over the
      global batch with `tf.nn.compute_average_loss`.
    """
    return regression_loss(online_pred_view1, target_proj_view2) + regression_loss(
        online_pred_view2, target_proj_view1
    )
