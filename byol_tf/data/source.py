"""`Source`: one opened data source, the examples it yields, and its epoch layout.

A `Source` knows its size and labels and yields examples `{"image": uint8 [H, W, 3], "label":
int64 (-1 if unlabelled), "index": int64}`. `byol_tf.data.sources.load_source` opens one from
its name.

Epoch layout. Sources with random access (synthetic, folders, and any source loaded with
`data.cache`) lay out epoch e as a permutation seeded by (seed, e), cut into global batches;
each of the P input pipelines takes the p-th contiguous block of every global batch. So a
multi-worker run feeds every replica exactly what a single process with as many replicas
would, and resuming at step s skips whole steps, with no reading. TFDS sources have no random
access: each epoch is a seeded file shuffle plus a seeded shuffle buffer, sharded across
pipelines by files. That order is deterministic for a seed but not the same as the random-access
layout, and it changes with the number of pipelines; resuming reads and drops the skipped part
of the epoch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

import numpy as np
import tensorflow as tf

Element = dict[str, tf.Tensor]


class Reader(Protocol):
    """A source without random access (TFDS, a user's `tf.data.Dataset`): it streams."""

    def epoch(self, epoch, seed, shard_index, num_shards, per_step, steps, skip_steps=0):
        """This shard's examples of `epoch` (see `Source.epoch_examples`)."""

    def ordered(self) -> tf.data.Dataset:
        """Every example once, in a fixed order, numbered from 0."""


def to_rgb_uint8(image: tf.Tensor) -> tf.Tensor:
    """uint8 RGB from uint8 or float ([0, 1]) images with 1, 3 or 4 (RGBA) channels."""
    if image.dtype != tf.uint8:
        image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
    channels = image.shape[-1]
    if channels == 3:
        return image
    if channels == 1:
        return tf.image.grayscale_to_rgb(image)
    if channels is not None:
        return image[..., :3]  # RGBA
    return tf.cond(
        tf.shape(image)[-1] == 1, lambda: tf.tile(image, [1, 1, 3]), lambda: image[..., :3]
    )


# Any non-zero constant; see pin_graph_seed.
_DATA_GRAPH_SEED = 20200613


def pin_graph_seed() -> None:
    """Makes tensor-seeded tf.data shuffles depend on our seed only.

    tf.data combines an op seed with the graph-level seed, which a traced dataset function
    inherits from TF's global seed. That makes the order change with `tf.random.set_seed`, and
    with a global seed of 0 (what `config.seed=0` sets) the (0, 0) check in TF's `get_seed`
    evaluates the symbolic op seed as a Python bool and fails (tensorflow#17284). Pinning the
    graph seed of the function being traced fixes both; it touches no other graph.
    """
    if not tf.executing_eagerly():
        tf.compat.v1.get_default_graph().seed = _DATA_GRAPH_SEED


def stream_epoch(
    ds: tf.data.Dataset, shard_index, num_shards, per_step, steps, skip_steps, element_fn
) -> tf.data.Dataset:
    """Cuts a streamed (already sharded and shuffled) epoch into this shard's `steps` steps.

    A shard may hold fewer than steps * per_step examples; wrapping around keeps every pipeline
    at exactly `steps` steps per epoch (otherwise workers would go out of step). Each example
    is numbered as the slot it fills in the random-access layout.
    """
    ds = ds.repeat().take(steps * per_step).enumerate().skip(skip_steps * per_step)
    global_batch = per_step * num_shards

    def number(count, example):
        index = (count // per_step) * global_batch + shard_index * per_step + count % per_step
        return element_fn(example, index)

    return ds.map(number)


def one_shape(shapes: np.ndarray) -> tuple[int, int, int] | None:
    """The [H, W, 3] shared by every row of `shapes` ([N, 3]), or None if they differ or N = 0."""
    if not len(shapes) or not (shapes == shapes[0]).all():
        return None
    return tuple(int(n) for n in shapes[0])


def make_element(image: tf.Tensor, label: tf.Tensor, index: tf.Tensor) -> Element:
    return {
        "image": image,
        "label": tf.cast(label, tf.int64),
        "index": tf.cast(index, tf.int64),
    }


def autotune(value: int) -> int:
    """A `data.num_parallel_calls` / `data.prefetch` value for tf.data: -1 is AUTOTUNE."""
    return tf.data.AUTOTUNE if value < 0 else value


@dataclasses.dataclass
class Source:
    """One opened data source.

    Exactly one of `lookup` (random access: int64 index -> (uint8 image, int64 label)) and
    `reader` (streaming: TFDS, a `tf.data.Dataset`) is set; `load_source` and `from_dataset`
    fill them in.
    """

    spec: str
    num_examples: int
    num_classes: int | None  # None: unlabelled, labels are -1
    skipped: int = 0  # corrupt or unreadable files left out
    class_names: list[str] | None = None
    lookup: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    reader: Reader | None = dataclasses.field(default=None, repr=False, compare=False)
    # Known without reading images (synthetic, folders, cached sources): int64 [num_examples],
    # in index order. Downstream tools use it to pick label subsets cheaply.
    labels: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    # Folders: each example's path relative to the folder, in index order (subset files list
    # these). None elsewhere, where the index names an example.
    example_ids: list[str] | None = dataclasses.field(default=None, repr=False, compare=False)
    # [H, W, 3] when every image is known to have that shape (synthetic, cached, TFDS features
    # with a static shape, folders whose pre-scan saw one size); None when sizes vary or are
    # unknown. The pretraining pipeline then crops whole batches instead of single images.
    image_shape: tuple[int, int, int] | None = None

    def __post_init__(self):
        if (self.lookup is None) == (self.reader is None):
            raise ValueError(
                f"Source {self.spec!r} needs exactly one of `lookup` (random access) and "
                "`reader` (TFDS); use load_source to open a source."
            )

    @property
    def random_access(self) -> bool:
        return self.lookup is not None

    def load(self, index: tf.Tensor) -> Element:
        """The example at `index` (random-access sources only)."""
        image, label = self.lookup(index)
        return make_element(image, label, index)

    def epoch_indices(
        self,
        epoch: int | tf.Tensor,
        seed: int,
        shard_index: int,
        num_shards: int,
        examples_per_shard_step: int,
        steps: int,
        skip_steps: int | tf.Tensor = 0,
    ) -> tf.Tensor:
        """int64 [(steps - skip_steps) * examples_per_shard_step]: this shard's indices in epoch.

        The epoch's permutation, cut to `steps` global batches of examples_per_shard_step *
        num_shards, each split into num_shards contiguous blocks; this is block `shard_index` of
        every step from `skip_steps` on. `epoch` and `skip_steps` may be tensors.
        """
        if not self.random_access:
            raise ValueError(f"Source {self.spec!r} streams: it has no random access.")
        global_batch = examples_per_shard_step * num_shards
        if steps * global_batch > self.num_examples:
            raise ValueError(
                f"{steps} steps of {global_batch} examples need {steps * global_batch} examples, "
                f"but {self.spec!r} has {self.num_examples}."
            )
        perm = tf.random.experimental.stateless_shuffle(
            tf.range(self.num_examples, dtype=tf.int64),
            seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]),
        )
        blocks = tf.reshape(
            perm[: steps * global_batch], [steps, num_shards, examples_per_shard_step]
        )
        return tf.reshape(blocks[:, shard_index, :], [-1])[skip_steps * examples_per_shard_step :]

    def epoch_examples(
        self,
        epoch: int | tf.Tensor,
        seed: int,
        shard_index: int,
        num_shards: int,
        examples_per_shard_step: int,
        steps: int,
        skip_steps: int | tf.Tensor = 0,
    ) -> tf.data.Dataset:
        """The examples shard `shard_index` of `num_shards` reads in `epoch`, from `skip_steps`.

        Random-access sources follow the layout of `epoch_indices`. TFDS sources shuffle files
        with seed + epoch, shard by files (or by example when there are fewer files than
        shards), shuffle with `data.shuffle_buffer`, and take steps * examples_per_shard_step;
        their "index" is the position in that order, numbered as in the random-access layout.
        """
        args = (epoch, seed, shard_index, num_shards, examples_per_shard_step, steps, skip_steps)
        if self.reader is not None:
            return self.reader.epoch(*args)
        indices = self.epoch_indices(*args)
        return tf.data.Dataset.from_tensor_slices(indices).map(
            self.load, num_parallel_calls=tf.data.AUTOTUNE
        )

    def ordered_examples(self, shard_index: int = 0, num_shards: int = 1) -> tf.data.Dataset:
        """Every example once, in a fixed order (evaluation); shard p gets indices p, p+P, ..."""
        if self.reader is not None:
            return self.reader.ordered().shard(num_shards, shard_index)
        ds = tf.data.Dataset.range(shard_index, self.num_examples, num_shards)
        return ds.map(self.load, num_parallel_calls=tf.data.AUTOTUNE)
