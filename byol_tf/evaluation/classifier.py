"""Training and scoring a classifier: the loop shared by linear evaluation and fine-tuning.

`fit` runs SGD with Nesterov momentum under a cosine learning rate (optionally after a linear
warm-up; `byol_tf.core.schedules.warmup_cosine`) on softmax cross-entropy, with L2 weight decay
added to the gradients of kernels only (rank >= 2: convolution and dense kernels; biases and
normalisation parameters are not decayed, whatever their names). One epoch runs per compiled
call. Keras's SGD keeps the learning rate inside its momentum buffer (v = m·v − lr·g), where
DeepMind's optax SGD applies it outside (v = m·v + g, step −lr·v); the two agree while the
learning rate is constant and differ slightly while it decays.

`top_k_accuracy` scores class scores against labels: top-1 and top-5 as fractions, ties
broken towards the lower class id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from byol_tf.core.schedules import WarmupCosineSchedule


def top_k_accuracy(scores, labels) -> dict[str, float]:
    """{"top1", "top5"} in [0, 1] of class scores [N, C] against int labels [N]."""
    scores = np.asarray(scores)
    labels = np.asarray(labels).astype(np.int64)
    if len(labels) == 0:
        raise ValueError("Cannot score an empty set of predictions.")
    ranked = np.argsort(-scores, axis=1, kind="stable")
    top5 = ranked[:, : min(5, scores.shape[1])]
    return {
        "top1": float(np.mean(ranked[:, 0] == labels)),
        "top5": float(np.mean(np.any(top5 == labels[:, None], axis=1))),
    }


def l2_gradients(grads: Sequence, variables: Sequence, weight_decay: float) -> list:
    """grad + weight_decay * w for kernels (rank >= 2); other gradients unchanged."""
    if not weight_decay:
        return list(grads)
    return [
        g + weight_decay * tf.convert_to_tensor(v) if g is not None and len(v.shape) >= 2 else g
        for g, v in zip(grads, variables)
    ]


def sgd_settings(config: ml_collections.ConfigDict) -> dict:
    """`fit`'s optimizer and schedule arguments from a downstream config."""
    return dict(
        momentum=config.optimizer.momentum,
        nesterov=config.optimizer.nesterov,
        weight_decay=config.optimizer.weight_decay,
        warmup_epochs=config.schedule.warmup_epochs,
        progress=config.train.progress_bar,
    )


def fit(
    logits_fn: Callable[[tf.Tensor, bool], tf.Tensor],
    variables: Sequence,
    batches: tf.data.Dataset,
    epochs: int,
    steps_per_epoch: int,
    peak_lr: float,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 0.0,
    warmup_epochs: float = 0.0,
    progress: bool = False,
    name: str = "train",
) -> list[float]:
    """Trains `variables` to minimise cross-entropy of `logits_fn(x, training=True)`.

    Args:
      logits_fn: (inputs, training) -> logits [b, C].
      variables: what the optimizer updates (other variables `logits_fn` reads stay fixed).
      batches: endless dataset of {"image" or "feature": x, "label": y}.
      epochs, steps_per_epoch: the run is epochs * steps_per_epoch optimizer steps.
      peak_lr: the learning rate after warm-up, before the cosine decay.

    Returns:
      The mean training loss of every epoch.
    """
    total = int(round(epochs * steps_per_epoch))
    if total < 1:
        raise ValueError(f"{epochs} epochs of {steps_per_epoch} steps is no training at all.")
    warmup = int(round(warmup_epochs * steps_per_epoch))
    optimizer = keras.optimizers.SGD(
        WarmupCosineSchedule(peak_lr, warmup, total), momentum=momentum, nesterov=nesterov
    )
    optimizer.build(variables)
    input_key = next(k for k in batches.element_spec if k != "label")

    @tf.function
    def run(iterator, num_steps):
        loss_sum = tf.constant(0.0)
        for _ in tf.range(num_steps):
            batch = next(iterator)
            with tf.GradientTape() as tape:
                logits = tf.cast(logits_fn(batch[input_key], True), tf.float32)
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(batch["label"], logits)
                )
            grads = tape.gradient(loss, variables)
            optimizer.apply(l2_gradients(grads, variables, weight_decay), variables)
            loss_sum += loss
        return loss_sum / tf.cast(num_steps, tf.float32)

    bar = (
        keras.utils.Progbar(total, stateful_metrics=["loss"], unit_name=name) if progress else None
    )
    iterator = iter(batches)
    losses, done = [], 0
    for _ in range(int(np.ceil(total / steps_per_epoch))):
        n = min(steps_per_epoch, total - done)
        loss = float(run(iterator, tf.constant(n)))
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"The {name} loss became {loss} after step {done + n}; lower the learning rate."
            )
        done += n
        losses.append(loss)
        if bar is not None:
            bar.update(done, values=[("loss", loss)])
    return losses


def predict(
    logits_fn: Callable[[tf.Tensor, bool], tf.Tensor], batches: tf.data.Dataset
) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode class scores [N, C] and labels [N] over a finite dataset."""
    input_key = next(k for k in batches.element_spec if k != "label")
    forward = tf.function(lambda x: tf.cast(logits_fn(x, False), tf.float32), reduce_retracing=True)
    scores, labels = [], []
    for batch in batches:
        scores.append(forward(batch[input_key]).numpy())
        labels.append(batch["label"].numpy())
    return np.concatenate(scores), np.concatenate(labels)
