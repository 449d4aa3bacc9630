"""Weighted k-nearest-neighbour classification on L2-normalised representations.

The protocol of solo-learn and lightly (Wu et al. 2018): cosine similarity to every train
example, the k most similar vote with weight exp(similarity / temperature).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from byol_tf.evaluation.classifier import top_k_accuracy


def knn_predict(
    train_features: tf.Tensor,
    train_labels: tf.Tensor,
    test_features: tf.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> tf.Tensor:
    """Returns class scores [num_test, num_classes] from temperature-weighted kNN votes."""
    train = tf.math.l2_normalize(tf.cast(train_features, tf.float32), axis=1)
    labels = tf.cast(train_labels, tf.int32)
    k = min(k, int(train.shape[0]))
    scores = []
    test = tf.math.l2_normalize(tf.cast(test_features, tf.float32), axis=1)
    # Chunked so a large train set never needs a [num_test, num_train] matrix at once.
    for start in range(0, int(test.shape[0]), chunk_size):
        sims = tf.matmul(test[start : start + chunk_size], train, transpose_b=True)
        top_sims, top_idx = tf.math.top_k(sims, k=k)
        weights = tf.exp(top_sims / temperature)
        votes = tf.one_hot(tf.gather(labels, top_idx), num_classes) * weights[..., None]
        scores.append(tf.reduce_sum(votes, axis=1))
    return tf.concat(scores, axis=0)


def knn_accuracy(
    train_features,
    train_labels,
    test_features,
    test_labels,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
) -> dict[str, float]:
    """Top-1 and top-5 accuracy (fractions in [0, 1]) of the weighted kNN classifier."""
    scores = knn_predict(
        train_features, train_labels, test_features, num_classes, k=k, temperature=temperature
    )
    return top_k_accuracy(scores.numpy(), test_labels)


def inference_forward(encoder, image_size: int | None = None) -> Callable[[tf.Tensor], tf.Tensor]:
    """The compiled inference-mode forward of `encoder`; build it once and reuse it.

    With `image_size` it is traced once for any batch size. That matters beyond speed: a run
    evaluates several encoders (learned, random) with the same code, and TF warns about
    "excessive retracing" once such functions have been traced five times between them.
    """
    signature = None if image_size is None else [tf.TensorSpec([None, image_size, image_size, 3])]
    return tf.function(
        lambda images: tf.cast(encoder(images, training=False), tf.float32),
        input_signature=signature,
        reduce_retracing=True,
    )


def representations(
    encoder, dataset: tf.data.Dataset, forward: Callable | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Representations (inference mode: BatchNorm uses moving statistics) and int64 labels of
    every {"image", "label"} batch of `dataset`.

    Pass `forward` (from `inference_forward`) when encoding with the same encoder repeatedly,
    so it is compiled once.
    """
    forward = forward or inference_forward(encoder)
    features, labels = [], []
    for batch in dataset:
        features.append(forward(batch["image"]).numpy())
        labels.append(batch["label"].numpy())
    if not features:
        raise ValueError("The dataset to encode is empty.")
    return np.concatenate(features), np.concatenate(labels).astype(np.int64)


def evaluate_knn(
    encoder,
    train_source,
    test_source,
    config,
    forward: Callable | None = None,
    image_size: int | None = None,
) -> dict[str, float]:
    """kNN accuracy (`top1`, `top5`) of `encoder` with the train source as memory bank, on the
    test source, with `eval.knn_k` and `eval.knn_temperature`: the one kNN of byol-tf (a
    run's check and monitor, and `byol-knn-eval`). Images at `image_size` (default
    `data.image_size`); also returns `num_train` and `num_test`."""
    from byol_tf import data as data_lib  # local: data imports augment, which is heavier

    data_lib.check_same_classes(train_source, test_source)
    data_lib.require_labels(train_source, "kNN evaluation", "train")
    data_lib.require_labels(test_source, "kNN evaluation", "test")
    size, batch = image_size or config.data.image_size, config.eval.batch_size
    forward = forward or inference_forward(encoder, size)
    train_x, train_y = representations(
        encoder, data_lib.eval_dataset(train_source, config, batch, size), forward
    )
    test_x, test_y = representations(
        encoder, data_lib.eval_dataset(test_source, config, batch, size), forward
    )
    num_classes = max(train_source.num_classes, test_source.num_classes)
    accuracy = knn_accuracy(
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes,
        k=config.eval.knn_k,
        temperature=config.eval.knn_temperature,
    )
    return {**accuracy, "num_train": len(train_y), "num_test": len(test_y)}
