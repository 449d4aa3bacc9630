"""A user's `tf.data.Dataset` of images as a `Source`, for the Python API.

Elements may be an image, an `(image, label)` tuple or a dict with "image" (and "label"):
uint8 or float ([0, 1]) images with 1, 3 or 4 channels, of one size or of several; a batched
dataset is unbatched. The dataset must be finite and must give the same elements in the same
order each time it is iterated (no `shuffle` with `reshuffle_each_iteration`): byol-tf shuffles
it itself, with `data.shuffle_buffer` and the run's seed, so that a resumed run reads what an
uninterrupted one would, as for TFDS sources (`byol_tf.data.source`). Multi-worker pipelines
shard it by example.

Opening it costs one pass when its size is unknown to tf.data or its labels are to be counted;
with `data.cache` the images are decoded into memory once, and the source has random access.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np
import tensorflow as tf

from byol_tf.data.memory import cache_in_memory
from byol_tf.data.source import (
    Element,
    Source,
    make_element,
    pin_graph_seed,
    stream_epoch,
    to_rgb_uint8,
)

_ELEMENTS = "an image, an (image, label) tuple or a dict with 'image' (and 'label')"


def _image_and_label_specs(spec) -> tuple[tf.TensorSpec, tf.TensorSpec | None, str]:
    """The image's and label's specs in an element of `spec`, and how the element is laid out."""
    if isinstance(spec, tf.TensorSpec):
        return spec, None, "image"
    if isinstance(spec, tuple) and len(spec) in (1, 2):
        return spec[0], (spec[1] if len(spec) == 2 else None), "tuple"
    if isinstance(spec, dict) and "image" in spec:
        return spec["image"], spec.get("label"), "dict"
    raise ValueError(f"A dataset's elements should be {_ELEMENTS}; got element_spec {spec}.")


def _split(layout: str):
    if layout == "image":
        return lambda image: (image, tf.constant(-1, tf.int64))
    if layout == "tuple":
        return lambda image, label=None: (
            image,
            tf.constant(-1, tf.int64) if label is None else label,
        )
    return lambda element: (element["image"], element.get("label", tf.constant(-1, tf.int64)))


@dataclasses.dataclass
class DatasetReader:
    """Streams a finite, repeatable dataset of (image, label) pairs (see the module docstring)."""

    dataset: tf.data.Dataset
    shuffle_buffer: int

    def _element(self, pair: tuple[tf.Tensor, tf.Tensor], index: tf.Tensor) -> Element:
        image, label = pair
        return make_element(to_rgb_uint8(image), label, index)

    def epoch(self, epoch, seed, shard_index, num_shards, per_step, steps, skip_steps=0):
        pin_graph_seed()
        shuffle_seed = tf.cast(seed, tf.int64) + tf.cast(epoch, tf.int64)
        ds = self.dataset.shard(num_shards, shard_index)
        ds = ds.shuffle(self.shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=False)
        return stream_epoch(ds, shard_index, num_shards, per_step, steps, skip_steps, self._element)

    def ordered(self) -> tf.data.Dataset:
        return self.dataset.enumerate().map(lambda i, pair: self._element(pair, i))


def from_dataset(
    dataset: tf.data.Dataset,
    config: ml_collections.ConfigDict,
    name: str = "dataset",
    num_classes: int | None = None,
) -> Source:
    """`dataset` (see the module docstring) as a `Source` named `name`.

    `num_classes`: when the elements carry labels, the number of classes; by default one more
    than the largest label seen in the opening pass.
    """
    image_spec, label_spec, layout = _image_and_label_specs(dataset.element_spec)
    if image_spec.shape.rank == 4:  # batched: one example per element from here on
        dataset = dataset.unbatch()
        image_spec, label_spec, layout = _image_and_label_specs(dataset.element_spec)
    if image_spec.shape.rank != 3 or image_spec.shape[-1] not in (None, 1, 3, 4):
        raise ValueError(
            f"The images of dataset {name!r} should be [height, width, channels] with 1, 3 or 4 "
            f"channels (or batches of them); got shape {image_spec.shape}."
        )
    if not (image_spec.dtype == tf.uint8 or image_spec.dtype.is_floating):
        raise ValueError(
            f"The images of dataset {name!r} should be uint8 or float in [0, 1]; got "
            f"{image_spec.dtype.name}."
        )
    if label_spec is not None and (label_spec.shape.rank != 0 or not label_spec.dtype.is_integer):
        raise ValueError(
            f"The labels of dataset {name!r} should be integer class ids, one per image; got "
            f"{label_spec.dtype.name} of shape {label_spec.shape}."
        )
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            f"Dataset {name!r} is infinite (a `repeat()`?): byol-tf needs the examples of one "
            "epoch, and repeats them itself."
        )
    split = _split(layout)

    def pair(*element):
        image, label = split(*element)
        return image, tf.cast(label, tf.int64)

    pairs = dataset.map(pair, num_parallel_calls=tf.data.AUTOTUNE)
    size, labels = int(dataset.cardinality()), None
    if size < 0 or (label_spec is not None and num_classes is None):
        labels = np.concatenate(
            [b.numpy() for b in pairs.map(lambda _, label: label).batch(4096)] or [[]]
        ).astype(np.int64)
        size = len(labels)
    if size == 0:
        raise ValueError(f"Dataset {name!r} is empty.")
    if label_spec is None:
        labels, num_classes = None, None
    elif num_classes is None:
        if labels.min() < 0:
            raise ValueError(f"Dataset {name!r} has negative labels; class ids start at 0.")
        num_classes = int(labels.max()) + 1
    height, width = image_spec.shape[0], image_spec.shape[1]
    source = Source(
        name,
        size,
        num_classes,
        reader=DatasetReader(pairs, config.data.shuffle_buffer),
        image_shape=None if height is None or width is None else (int(height), int(width), 3),
    )
    return cache_in_memory(source) if config.data.cache else source
