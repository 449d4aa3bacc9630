"""The input pipelines: pretraining batches of two views, and plain evaluation batches.

`pretrain_dataset` is infinite over epochs and a pure function of (config.seed, step):

- per example, tf.data decodes the image and takes each view's random resized crop, seeded
  by (seed, epoch, example index, view), so a crop does not depend on how the data is sharded;
  when every image has one known size (`Source.image_shape`, `data.batched_crop`), only the
  crop's random numbers are drawn per example and the batch is cropped at once, with the same
  result and far fewer small ops;
- examples are batched to the per-replica batch with static shapes (TPUs need them);
- per batch, the rest of T and T' (flip, colour, grayscale, blur, solarize) runs seeded by
  (seed, global step, global replica id, view), unless `augment.on_device` moves that part into
  the train step, which uses the same seeds (`batch_augment_seed`).

With the epoch layout of `source.py`, R workers with one replica each therefore produce the
same per-replica batches, bit for bit, as one process with R replicas, and a run resumed at
step s produces the batches an uninterrupted run would have produced from step s.
With `data.service_address`, the same batches are produced on a tf.data service
(`byol_tf/data/service.py`).
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np
import tensorflow as tf

from byol_tf import augment
from byol_tf.config import derive_steps
from byol_tf.data import service
from byol_tf.data.source import autotune
from byol_tf.data.sources import Source

VIEWS = ("view1", "view2")
_NO_END = 2**62  # epochs: the pretraining dataset never ends; the train loop stops it


def _fold(seed: tf.Tensor, *values) -> tf.Tensor:
    for value in values:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(value, tf.int64))
    return seed


def crop_seed(seed: int, epoch, index, view_index: int) -> tf.Tensor:
    """[2] int64 seed of one example's crop for one view (0 = view1, 1 = view2)."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return _fold(base, index, view_index)


def batch_augment_seed(seed: int, step, replica, view_index: int) -> tf.Tensor:
    """[2] int64 seed of the post-crop ops of one replica's batch at one global step.

    The same value whether tf.data (augment.on_device=False) or the train step computes it,
    so moving the ops onto the device does not change the views.
    """
    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    return _fold(base, replica, 1000 + view_index)


def _recorded_size(image: tf.Tensor, shape: tuple[int, int, int]) -> tf.Tensor:
    """`image` with its static shape set, after checking that it has the source's one size."""
    check = tf.debugging.assert_equal(
        tf.shape(image),
        tf.constant(shape, tf.int32),
        message=f"An image's size differs from the size {shape} recorded for its source (did "
        "an image folder change after it was scanned?). Set data.batched_crop=false to crop "
        "images one at a time, whatever their size.",
    )
    with tf.control_dependencies([check]):
        return tf.ensure_shape(tf.identity(image), shape)


def steps_per_epoch(source: Source, config: ml_collections.ConfigDict) -> int:
    """Whole global batches per epoch; the last partial batch of each epoch is not used."""
    return derive_steps(config, source.num_examples)["steps_per_epoch"]


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Who reads what: P pipelines, this is pipeline p, each serving k replicas of batch b."""

    num_pipelines: int
    pipeline_id: int
    per_replica: int
    replicas_per_pipeline: int

    @property
    def per_pipeline(self) -> int:
        return self.per_replica * self.replicas_per_pipeline


def _layout(global_batch: int, input_context: tf.distribute.InputContext | None) -> _Layout:
    if input_context is None:
        return _Layout(1, 0, global_batch, 1)
    pipelines = input_context.num_input_pipelines
    replicas = input_context.num_replicas_in_sync
    if global_batch % replicas or replicas % pipelines:
        raise ValueError(
            f"data.global_batch_size={global_batch} must be divisible by the {replicas} replicas "
            f"in sync, which must split evenly over the {pipelines} input pipelines; use a "
            f"multiple of {replicas} for the batch size."
        )
    per_replica = input_context.get_per_replica_batch_size(global_batch)
    return _Layout(pipelines, input_context.input_pipeline_id, per_replica, replicas // pipelines)


def pretrain_dataset(
    source: Source,
    config: ml_collections.ConfigDict,
    input_context: tf.distribute.InputContext | None = None,
    start_step: int = 0,
) -> tf.data.Dataset:
    """The endless stream of this input pipeline's per-replica batches, from `start_step`.

    Args:
      source: from `load_source`.
      config: reads `seed`, `data.*` and `augment.*`.
      input_context: from `strategy.distribute_datasets_from_function`; None for one replica.
      start_step: global step of the first batch (a restored checkpoint's step).

    Returns:
      A dataset of {"view1", "view2": float32 [b, S, S, 3] in [0, 1], "label": int64 [b]},
      b the per-replica batch and S `data.image_size`. An input pipeline serving k replicas
      yields their k batches of a step one after the other (tf.distribute's order).
    """
    layout = _layout(config.data.global_batch_size, input_context)
    spe = steps_per_epoch(source, config)
    first_epoch, first_skip = divmod(int(start_step), spe)
    size = config.data.image_size
    parallel = autotune(config.data.num_parallel_calls)
    deterministic = config.data.deterministic

    def epoch_args(epoch):
        skip = tf.where(epoch == first_epoch, tf.constant(first_skip, tf.int64), 0)
        shard = (layout.pipeline_id, layout.num_pipelines, layout.per_pipeline, spe, skip)
        return (epoch, config.seed, *shard)

    # The functions given to tf.data below have no data-dependent Python control flow, so
    # AutoGraph is skipped: converting the augmentation code only slows down building.
    @tf.autograph.experimental.do_not_convert
    def crop(epoch, example):
        out = {"label": example["label"]}
        for v, name in enumerate(VIEWS):
            seed = crop_seed(config.seed, epoch, example["index"], v)
            out[name] = augment.crop_view(example["image"], config.augment[name], size, seed)
        return out

    # Same-size images are cropped a batch at a time: per example only the crop's random
    # numbers are drawn (from the same per-example seeds), which gives the same views as
    # `crop` for a fraction of the per-example ops.
    image_shape = source.image_shape if config.data.batched_crop else None

    @tf.autograph.experimental.do_not_convert
    def draw(epoch, example):
        out = {"label": example["label"], "image": _recorded_size(example["image"], image_shape)}
        for v, name in enumerate(VIEWS):
            out[name] = augment.crop_draws(crop_seed(config.seed, epoch, example["index"], v))
        return out

    @tf.autograph.experimental.do_not_convert
    def finish(batch, step, replica):
        # One replica's batch at one global step: the batched crop, then (unless the step does
        # it) the rest of T and T', seeded by (step, replica) whatever the topology.
        if image_shape:
            images = batch.pop("image")
            for name in VIEWS:
                batch[name] = augment.crop_batch(images, config.augment[name], size, batch[name])
        if config.augment.on_device:
            return batch
        for v, name in enumerate(VIEWS):
            seed = batch_augment_seed(config.seed, step, replica, v)
            # tf.data is never XLA-compiled: each op may run on only its drawn images.
            batch[name] = augment.augment_batch(
                batch[name], config.augment[name], seed, static_shapes=False
            )
        return batch

    per_example = draw if image_shape else crop
    # Nothing happens per batch when the crop is per example and the step augments.
    per_batch_work = finish if image_shape or not config.augment.on_device else None

    if config.data.service_address:
        ds = service.steps_dataset(
            source,
            config,
            layout,
            spe,
            int(start_step),
            per_example,
            per_batch_work,
        )
        return ds.prefetch(autotune(config.data.prefetch))

    epochs = tf.data.Dataset.range(first_epoch, _NO_END)
    if source.random_access:
        # Only indices go through flat_map; decoding happens in one parallel map that runs
        # across epoch boundaries without stalling.
        @tf.autograph.experimental.do_not_convert
        def indices(epoch):
            idx = source.epoch_indices(*epoch_args(epoch))
            return tf.data.Dataset.from_tensor_slices((tf.fill(tf.shape(idx), epoch), idx))

        @tf.autograph.experimental.do_not_convert
        def load_and_crop(epoch, index):
            return per_example(epoch, source.load(index))

        ds = epochs.flat_map(indices).map(
            load_and_crop, num_parallel_calls=parallel, deterministic=deterministic
        )
    else:

        @tf.autograph.experimental.do_not_convert
        def examples(epoch):
            return source.epoch_examples(*epoch_args(epoch)).map(lambda ex: (epoch, ex))

        ds = epochs.flat_map(examples).map(
            per_example, num_parallel_calls=parallel, deterministic=deterministic
        )
    # Every epoch holds whole steps, so batches never straddle an epoch.
    ds = ds.batch(layout.per_replica, drop_remainder=True)

    if per_batch_work is not None:
        k = layout.replicas_per_pipeline

        @tf.autograph.experimental.do_not_convert
        def per_batch(count, batch):
            # Batches of a step come in replica order, so the count gives the global step and
            # the global replica id.
            return finish(batch, start_step + count // k, layout.pipeline_id * k + count % k)

        ds = ds.enumerate().map(per_batch, num_parallel_calls=parallel, deterministic=deterministic)
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options).prefetch(autotune(config.data.prefetch))


def bn_free_init_batch(source: Source, config: ml_collections.ConfigDict) -> tf.Tensor:
    """view1 of step 0's global batch: the batch `model.norm="bn_free_init"` starts from.

    The same on every worker, so all of them start from the same weights: it is built locally
    from one pipeline reading the whole global batch, in deterministic order, never from a
    tf.data service (which hands each worker its own steps, in the order they finish).
    """
    local = config.copy_and_resolve_references()
    local.data.service_address = ""
    local.data.deterministic = True
    return next(iter(pretrain_dataset(source, local)))["view1"]


def center_crop_resize(image: tf.Tensor, size: int, crop_fraction: float = 1.0) -> tf.Tensor:
    """[H, W, 3] uint8 or float -> [size, size, 3] float32 in [0, 1]: the evaluation view.

    Takes the central square of side `crop_fraction` x min(H, W) and resizes it (bilinear,
    antialiased). 1.0 keeps the whole short side (CIFAR-style); DeepMind's ImageNet evaluation
    uses 224 / 256 = 0.875.
    """
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction={crop_fraction} must be in (0, 1].")
    shape = tf.shape(image)
    short = tf.minimum(shape[0], shape[1])
    side = tf.maximum(tf.cast(tf.cast(short, tf.float32) * crop_fraction, tf.int32), 1)
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    image = image[top : top + side, left : left + side]
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.image.resize(image, [size, size], antialias=True)
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 1.0), [size, size, 3])


def chosen_examples(source: Source, indices: np.ndarray | None = None) -> tf.data.Dataset:
    """The examples at `indices` (all when None) once, in index order."""
    if indices is None:
        return source.ordered_examples()
    if source.random_access:
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(indices, tf.int64))
        return ds.map(source.load, num_parallel_calls=tf.data.AUTOTUNE)
    mask = np.zeros(source.num_examples, bool)
    mask[indices] = True
    mask = tf.constant(mask)
    return source.ordered_examples().filter(lambda e: tf.gather(mask, e["index"]))


def eval_dataset(
    source: Source,
    config: ml_collections.ConfigDict,
    batch_size: int,
    image_size: int | None = None,
    indices: np.ndarray | None = None,
) -> tf.data.Dataset:
    """The examples at `indices` (every one when None) once, in index order, test-time view:
    {"image": float32 [n, S, S, 3] in [0, 1], "label": [n]}. The one eval input pipeline of
    byol-tf: the kNN check and monitor of a run, and every downstream tool.

    Each image is centre-cropped to a square, the middle `augment.test_crop_fraction` of it
    (1.0 when the config has none), and resized (bilinear, antialiased) to `image_size`
    (default `data.image_size`). The last batch may be smaller.
    """
    size = image_size or config.data.image_size
    fraction = config.augment.get("test_crop_fraction", 1.0)

    def prepare(example):
        image = center_crop_resize(example["image"], size, fraction)
        return {"image": image, "label": example["label"]}

    examples = chosen_examples(source, None if indices is None else np.sort(indices))
    ds = examples.map(
        prepare, num_parallel_calls=autotune(config.data.num_parallel_calls), deterministic=True
    )
    return ds.batch(batch_size).prefetch(autotune(config.data.prefetch))


def channel_statistics(
    source: Source, config: ml_collections.ConfigDict, max_examples: int = 4096
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel (mean, std) of `source`'s images in [0, 1], as the test-time view shows them.

    Over the first `max_examples` examples in index order (all, when fewer), each centre-cropped
    and resized as `eval_dataset` does; summed in float64, so the same source gives the same
    values on every call and every machine. What `data.mean = data.std = ()` computes.
    """
    count = min(max_examples, source.num_examples)
    sums, squares, pixels = np.zeros(3), np.zeros(3), 0
    for batch in eval_dataset(source, config, 256, indices=np.arange(count)):
        images = batch["image"].numpy().astype(np.float64).reshape(-1, 3)
        sums += images.sum(axis=0)
        squares += np.square(images).sum(axis=0)
        pixels += images.shape[0]
    mean = sums / pixels
    std = np.sqrt(np.maximum(squares / pixels - np.square(mean), 0.0))
    return tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std)
