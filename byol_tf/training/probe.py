"""The online linear probe: a classifier on stop-gradient representations, trained during
pretraining only to watch the representation improve (DeepMind's BYOL does the same).

With `eval.online_probe=True` the `Trainer` holds an `OnlineProbe`: a float32 Dense layer
with one output per class, zero-initialised, and its own optimizer. Inside each replica step
it reads the representation y of view1 that the online network computed (training mode) for
the BYOL loss, through `tf.stop_gradient`, and takes one SGD step on the softmax
cross-entropy with the batch's labels, averaged over the global batch. The BYOL gradients
never see the probe and its optimizer never sees the online weights, so pretraining is the
same, bit for bit, with and without it (tested). Its top-1 on the training batch,
`probe_top1`, and its loss, `probe_loss`, are logged with the other metrics.

Learning rate: `eval.online_probe_base_lr` x global batch / 256 (the project's scaling),
cosine-decayed to 0 over the run's steps without warm-up, with heavy-ball momentum
`eval.online_probe_momentum`. Where we differ from the reference: DeepMind adds the
classifier's loss to the BYOL loss and trains its weights with the same LARS optimizer and
schedule (`byol_experiment.py`); the stop-gradient makes the two losses independent there
too. A separate optimizer keeps the probe's settings apart from LARS's trust ratio and
weight decay, and lets runs with and without the probe share the BYOL optimizer's state.

Examples whose label is -1 (unlabelled examples of a labelled source) are left out of the
loss and the accuracy; a batch without any labelled example logs NaN.
"""

from __future__ import annotations

import keras
import ml_collections
import tensorflow as tf

from byol_tf.core.schedules import WarmupCosineSchedule, scaled_learning_rate

# What each replica returns; summed over replicas, then turned into `probe_loss`/`probe_top1`.
REPLICA_SUMS = ("probe_loss_sum", "probe_correct", "probe_count")
METRICS = ("probe_loss", "probe_top1")


class OnlineProbe:
    """The linear probe's head and optimizer, and its update inside the replica step.

    Build it inside `strategy.scope()`: the constructor creates and builds both, so their
    variables exist (and can be checkpointed) before the first step.
    """

    def __init__(
        self,
        num_classes: int,
        representation_dim: int,
        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
        momentum: float,
    ):
        self.num_classes = int(num_classes)
        # float32 whatever the global policy: the head is tiny and needs no loss scaling.
        self.head = keras.layers.Dense(
            self.num_classes, kernel_initializer="zeros", dtype="float32", name="online_probe"
        )
        self.head.build((None, int(representation_dim)))
        self.optimizer = keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=float(momentum), name="online_probe_sgd"
        )
        self.optimizer.build(self.head.trainable_variables)

    def replica_update(
        self, representation: tf.Tensor, labels: tf.Tensor, global_batch_size: int
    ) -> dict[str, tf.Tensor]:
        """One probe step on this replica's batch; returns its `REPLICA_SUMS`.

        `representation` is detached here, so the caller may pass the tensor it differentiates.
        """
        y = tf.stop_gradient(tf.cast(representation, tf.float32))
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        labelled = labels >= 0
        weight = tf.cast(labelled, tf.float32)
        # -1 would be an invalid class id for the cross-entropy op; its weight is 0 anyway.
        classes = tf.where(labelled, labels, tf.zeros_like(labels))
        variables = self.head.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.head(y)
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(classes, logits)
            loss = tf.nn.compute_average_loss(
                per_example, sample_weight=weight, global_batch_size=global_batch_size
            )
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        hit = tf.cast(
            tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), classes), tf.float32
        )
        return {
            "probe_loss_sum": tf.reduce_sum(per_example * weight),
            "probe_correct": tf.reduce_sum(hit * weight),
            "probe_count": tf.reduce_sum(weight),
        }


def probe_metrics(sums: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """`probe_loss` and `probe_top1` over the labelled examples of the global batch.

    `sums` holds the `REPLICA_SUMS` already summed over replicas; 0 labelled examples give NaN.
    """
    count = sums["probe_count"]
    return {
        "probe_loss": sums["probe_loss_sum"] / count,
        "probe_top1": sums["probe_correct"] / count,
    }


def build_probe(
    config: ml_collections.ConfigDict,
    num_classes: int,
    encoder: keras.Model,
    total_steps: int,
) -> OnlineProbe:
    """The probe configured by `config.eval`, sized for `encoder`'s representation.

    Call inside the strategy's scope. The representation size comes from one inference-mode
    forward pass of a blank image (no statistic or weight changes).
    """
    size = config.data.image_size
    dim = encoder(tf.zeros((1, size, size, 3)), training=False).shape[-1]
    peak = scaled_learning_rate(config.eval.online_probe_base_lr, config.data.global_batch_size)
    schedule = WarmupCosineSchedule(peak, 0, total_steps, name="online_probe_lr")
    return OnlineProbe(num_classes, int(dim), schedule, config.eval.online_probe_momentum)
