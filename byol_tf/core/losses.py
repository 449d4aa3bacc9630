"""BYOL's regression loss, and the NT-Xent contrastive loss used as a baseline.

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


# Subtracted from an example's similarity with itself so that it drops out of the softmax.
_SELF_MASK = 1e9


def nt_xent_loss(
    z1: tf.Tensor,
    z2: tf.Tensor,
    temperature: float,
    z1_keys: tf.Tensor | None = None,
    z2_keys: tf.Tensor | None = None,
    offset=0,
) -> tf.Tensor:
    """SimCLR's NT-Xent per example, summed over the two views as anchors.

    Of 2N projections (two views of N images), each anchor's positive is the other view of
    its image and its negatives are the other 2N - 2; the denominator runs over all 2N - 1
    projections but the anchor itself. Similarities are cosines divided by `temperature`.

    Under data parallelism each replica holds a slice of the batch: `z1`, `z2` [b, D] are
    this replica's anchors, `z1_keys`, `z2_keys` [N, D] the projections of the whole global
    batch (all-gathered, this replica's slice included), and `offset` the index of this
    replica's first example in them. Without keys the anchors are the whole batch.

    Returns:
      float32 [b]: loss(view1 anchor) + loss(view2 anchor) of each example. Averaged over the
      global batch N (`tf.nn.compute_average_loss`), this is the sum of the two views' mean
      losses, as in SimCLR's code (twice the mean over the 2N anchors of the paper's formula).
    """
    z1, z2 = (
        tf.math.l2_normalize(tf.cast(z, tf.float32), axis=-1, epsilon=_NORM_EPSILON)
        for z in (z1, z2)
    )
    if z1_keys is None:
        z1_keys, z2_keys = z1, z2
    else:
        z1_keys, z2_keys = (
            tf.math.l2_normalize(tf.cast(z, tf.float32), axis=-1, epsilon=_NORM_EPSILON)
            for z in (z1_keys, z2_keys)
        )
    own = tf.range(tf.shape(z1)[0]) + tf.cast(offset, tf.int32)  # anchors' indices in the keys
    self_mask = tf.one_hot(own, tf.shape(z1_keys)[0]) * _SELF_MASK

    def direction(anchors, same_view_keys, other_view_keys):
        positive_and_cross = tf.matmul(anchors, other_view_keys, transpose_b=True) / temperature
        same_view = tf.matmul(anchors, same_view_keys, transpose_b=True) / temperature - self_mask
        logits = tf.concat([positive_and_cross, same_view], axis=1)  # [b, 2N]
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=own, logits=logits)

    return direction(z1, z1_keys, z2_keys) + direction(z2, z2_keys, z1_keys)
