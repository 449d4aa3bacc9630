"""TFDS sources (`tfds:<name>:<split>`), read offline from `data.data_dir`; never downloads.

TFDS has no random access: each epoch is a seeded file shuffle plus a seeded shuffle buffer,
sharded across input pipelines by files (see the epoch layout in `byol_tf.data.source`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import ml_collections
import tensorflow as tf

from byol_tf.data.source import (
    Element,
    Source,
    make_element,
    pin_graph_seed,
    stream_epoch,
    to_rgb_uint8,
)

# `name[:version]:split`, where the split may be a slice such as `train[:10%]`.
_TFDS_SPEC = re.compile(r"^(?P<name>[^:\[]+?(?::\d[\d.*]*)?):(?P<split>.+)$")


@dataclasses.dataclass
class TfdsReader:
    builder: Any
    split: str
    shuffle_buffer: int
    label_key: str | None
    num_files: int

    def _element(self, example: dict, index: tf.Tensor) -> Element:
        label = example[self.label_key] if self.label_key else tf.constant(-1, tf.int64)
        return make_element(to_rgb_uint8(example["image"]), label, index)

    def epoch(self, epoch, seed, shard_index, num_shards, per_step, steps, skip_steps=0):
        import tensorflow_datasets as tfds

        pin_graph_seed()
        shuffle_seed = tf.cast(seed, tf.int64) + tf.cast(epoch, tf.int64)
        # TFDS shards by files and refuses when there are fewer files than pipelines; then
        # every pipeline reads the same seeded order and keeps every P-th example instead.
        by_files = self.num_files >= num_shards
        context = tf.distribute.InputContext(num_shards, shard_index, num_shards)
        read_config = tfds.ReadConfig(
            shuffle_seed=shuffle_seed,
            input_context=context if by_files else None,
            try_autocache=False,  # rebuilt every epoch: an automatic cache would not be reused
        )
        ds = self.builder.as_dataset(split=self.split, shuffle_files=True, read_config=read_config)
        if not by_files:
            ds = ds.shard(num_shards, shard_index)
        ds = ds.shuffle(self.shuffle_buffer, seed=shuffle_seed)
        return stream_epoch(ds, shard_index, num_shards, per_step, steps, skip_steps, self._element)

    def ordered(self) -> tf.data.Dataset:
        ds = self.builder.as_dataset(split=self.split, shuffle_files=False)
        return ds.enumerate().map(lambda i, ex: self._element(ex, i))


def open_tfds(spec: str, rest: str, config: ml_collections.ConfigDict) -> Source:
    import tensorflow_datasets as tfds

    match = _TFDS_SPEC.match(rest)
    if not match:
        raise ValueError(
            f"Data source {spec!r} should be 'tfds:<name>:<split>', e.g. 'tfds:cifar10:train'."
        )
    name, split = match["name"], match["split"]
    data_dir = config.data.data_dir or None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        where = data_dir or "TFDS's default data_dir"
        raise ValueError(
            f"TFDS has no dataset {name!r} (from {spec!r}), neither registered nor prepared in "
            f"{where}. Check the name, or pass --config.data.data_dir."
        ) from e
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"TFDS dataset {name!r} (split {split!r}) is not prepared in data_dir="
            f"{builder.data_dir!r}, and byol-tf never downloads. Run "
            f"`tfds.builder({name!r}, data_dir=...).download_and_prepare()` (or `tfds build "
            f"{name}`) on a machine with internet, copy the data_dir here and pass "
            "--config.data.data_dir=<that dir>."
        )
    try:
        split_info = builder.info.splits[split]
    except (KeyError, ValueError) as e:
        raise ValueError(
            f"TFDS dataset {name!r} has no split {split!r} (from {spec!r}); its splits are "
            f"{', '.join(builder.info.splits)}; slices such as 'train[:10%]' also work."
        ) from e
    if split_info.num_examples == 0:
        raise ValueError(f"TFDS split {name}:{split} (from {spec!r}) is empty.")
    features = builder.info.features
    if "image" not in features:
        raise ValueError(
            f"TFDS dataset {name!r} has no 'image' feature (it has {', '.join(features)}); "
            "byol-tf reads image datasets."
        )
    # Only a ClassLabel is a class id; any other "label" feature is not used.
    label = features["label"] if "label" in features else None
    if not isinstance(label, tfds.features.ClassLabel):
        label = None
    names = label.names if label is not None else None
    reader = TfdsReader(
        builder,
        split,
        config.data.shuffle_buffer,
        "label" if label is not None else None,
        len(split_info.file_instructions),
    )
    return Source(
        spec,
        split_info.num_examples,
        label.num_classes if label is not None else None,
        class_names=list(names) if names else None,
        reader=reader,
        image_shape=_static_rgb_shape(features["image"].shape),
    )


def _static_rgb_shape(shape) -> tuple[int, int, int] | None:
    """[H, W, 3] of the images `to_rgb_uint8` makes from a feature of `shape`, if static."""
    height, width = shape[0], shape[1]
    return None if height is None or width is None else (int(height), int(width), 3)
