"""BatchNorm whose training pass is one fused kernel: the layer every byol-tf model uses.

Keras 3's BatchNormalization trains with `tf.nn.moments` and `tf.nn.batch_normalization`:
about ten element-wise ops and reductions forward and as many again in the gradient, each
reading the whole activation and several kept alive for the backward pass. TensorFlow's
FusedBatchNormV3 (oneDNN on CPU, cuDNN on GPU, an XLA lowering on TPU) does the forward in one
op and the backward in one op. A BYOL step runs BatchNorm in training mode in the online and
the target networks, so this is where the step's element-wise time and activation memory go
(docs/performance.md has the measurement).

The arithmetic is Keras's: normalise with the batch mean and the biased batch variance, and
update the moving statistics with `moving = momentum * moving + (1 - momentum) * batch`
using the biased variance (the fused kernel reports the unbiased one; it is rescaled). Where
the fused kernel does not apply, Keras's own path runs: inference, a frozen layer,
cross-replica (`synchronized`) statistics, a mask, a normalised axis other than the last, or
a rank other than 2 and 4.

While `byol_tf.models.remat` re-runs a segment for its gradient, the moving statistics are
left alone: the forward pass already updated them once for this batch.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from byol_tf.models.remat import recomputing


@keras.saving.register_keras_serializable(package="byol_tf")
class BatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization with a fused training pass; same variables and math."""

    def _fused_applies(self, inputs, training, mask) -> bool:
        rank = inputs.shape.rank
        return (
            bool(training)
            and self.trainable
            and not self.synchronized
            and not self.renorm
            and mask is None
            and rank in (2, 4)
            and self.axis % rank == rank - 1
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, training, mask):
            if not (training and recomputing()):
                return super().call(inputs, training=training, mask=mask)
            # Keras's path assigns the moving statistics itself; momentum 1 keeps them exactly.
            momentum, self.momentum = self.momentum, 1.0
            try:
                return super().call(inputs, training=training, mask=mask)
            finally:
                self.momentum = momentum
        x = tf.cast(inputs, tf.float32)  # statistics in float32 under mixed precision, as Keras
        channels = x.shape[-1]
        images = x if x.shape.rank == 4 else tf.reshape(x, [-1, 1, 1, channels])
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels])
        y, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=images,
            scale=gamma,
            offset=beta,
            mean=tf.zeros([0]),
            variance=tf.zeros([0]),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        count = tf.cast(tf.size(images) // channels, tf.float32)
        # The kernel's variance output carries Bessel's correction; Keras tracks the biased one.
        variance = unbiased_variance * tf.math.divide_no_nan(count - 1.0, count)
        if not recomputing():
            self._update_moving_statistics(mean, variance)
        if x.shape.rank == 2:
            y = tf.reshape(y, tf.shape(x))
        return tf.cast(y, self.compute_dtype)

    def _update_moving_statistics(self, mean: tf.Tensor, variance: tf.Tensor) -> None:
        momentum = self.momentum
        self.moving_mean.assign(
            tf.cast(self.moving_mean, tf.float32) * momentum + mean * (1.0 - momentum)
        )
        self.moving_variance.assign(
            tf.cast(self.moving_variance, tf.float32) * momentum + variance * (1.0 - momentum)
        )
