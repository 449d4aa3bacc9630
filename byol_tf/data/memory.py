"""Decoded images kept in memory (`data.cache`): any source becomes a random-access one."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from absl import logging

from byol_tf.data.source import Source, one_shape


def _table_lookup(
    flat: np.ndarray, shapes: np.ndarray, labels: np.ndarray, shape: tuple | None
) -> Callable:
    """index -> (image, label) over decoded images kept in memory.

    `flat` holds every image's pixels one after the other and `shapes` their [H, W, 3]. Same-size
    images (`shape`, their one shape) become one [N, H, W, 3] tensor; mixed sizes stay packed
    and are sliced by offset.
    """
    labels_t = tf.constant(labels, tf.int64)
    if shape is not None:
        stacked = tf.constant(flat.reshape(len(shapes), *shape))
        return lambda i: (tf.gather(stacked, i), tf.gather(labels_t, i))
    offsets = tf.constant(np.concatenate([[0], np.cumsum(shapes.prod(axis=1))]), tf.int64)
    shapes_t, flat_t = tf.constant(shapes), tf.constant(flat)

    def lookup(i):
        return tf.reshape(flat_t[offsets[i] : offsets[i + 1]], shapes_t[i]), tf.gather(labels_t, i)

    return lookup


def cache_in_memory(source: Source) -> Source:
    """Decodes every example of `source` once into memory and returns a random-access source."""
    ds = source.ordered_examples().map(
        lambda ex: (tf.reshape(ex["image"], [-1]), tf.shape(ex["image"], tf.int64), ex["label"])
    )
    # Ragged batches keep the per-element Python overhead off a 50,000-image loop.
    flat, shapes, labels = [], [], []
    for pixels, shape, label in ds.ragged_batch(1024):
        # Images of a statically known size batch into a dense tensor, not a ragged one.
        values = pixels.flat_values if isinstance(pixels, tf.RaggedTensor) else pixels
        flat.append(tf.reshape(values, [-1]).numpy())
        shapes.append(shape.numpy())
        labels.append(label.numpy())
    flat, shapes = np.concatenate(flat), np.concatenate(shapes)
    logging.info(
        "Cached %d decoded images of %s in memory (%.0f MB).",
        len(shapes),
        source.spec,
        flat.nbytes / 2**20,
    )
    labels = np.concatenate(labels)
    shape = one_shape(shapes)
    lookup = _table_lookup(flat, shapes, labels, shape)
    return dataclasses.replace(source, lookup=lookup, reader=None, labels=labels, image_shape=shape)
