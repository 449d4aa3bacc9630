"""The training input of the downstream tools, over any subset of a source's examples.

`train_batches` is the linear protocol's training input: endless epochs, each a permutation
seeded by (seed, epoch), every image randomly cropped (area and aspect ratio from
`augment.crop_*`) and flipped with draws seeded by (seed, epoch, index), so a run is
reproducible and two images never share a crop. With `augmented=False` the images get the
test-time view instead, as `byol_tf.data.eval_dataset` (the evaluation input) makes it.

Streaming TFDS sources (no random access) are filtered to the subset and shuffled with a
seeded buffer of `data.shuffle_buffer`; set `data.cache=true` to get exact per-epoch
permutations on small datasets.
"""

from __future__ import annotations

import ml_collections
import numpy as np
import tensorflow as tf

from byol_tf import augment
from byol_tf.data import Source, center_crop_resize, crop_seed
from byol_tf.data.pipeline import chosen_examples
from byol_tf.data.source import autotune


def epoch_permutations(pool: np.ndarray, seed: int) -> tf.data.Dataset:
    """Endless (epoch, element) pairs: epoch e is `pool` (int64) permuted with seed (seed, e)."""
    pool = tf.constant(np.asarray(pool, np.int64))

    def epoch_order(epoch):
        order = tf.random.experimental.stateless_shuffle(
            pool, seed=tf.stack([tf.cast(seed, tf.int64), epoch])
        )
        return tf.data.Dataset.from_tensor_slices((tf.fill(tf.shape(order), epoch), order))

    return tf.data.Dataset.range(2**62).flat_map(epoch_order)


def effective_batch(batch_size: int, num_examples: int) -> int:
    """The train batch: `batch_size`, or every example when there are fewer."""
    if num_examples < 1:
        raise ValueError("No training examples were selected.")
    return min(int(batch_size), int(num_examples))


def steps_per_epoch(batch_size: int, num_examples: int) -> int:
    """Whole batches per epoch (the last partial batch is dropped, so BatchNorm never sees a
    batch of one)."""
    return num_examples // effective_batch(batch_size, num_examples)


def train_batches(
    source: Source,
    indices: np.ndarray,
    config: ml_collections.ConfigDict,
    image_size: int,
    batch_size: int,
    seed: int,
    augmented: bool = True,
) -> tf.data.Dataset:
    """Endless {"image": float32 [b, S, S, 3] in [0, 1], "label": int64 [b]} batches."""
    a = config.augment
    indices = np.asarray(indices, np.int64)
    batch = effective_batch(batch_size, len(indices))
    parallel = autotune(config.data.num_parallel_calls)

    def view(epoch, example):
        image, label = example["image"], example["label"]
        if not augmented:
            return {
                "image": center_crop_resize(image, image_size, a.test_crop_fraction),
                "label": label,
            }
        seed_crop = crop_seed(seed, epoch, example["index"], 0)
        seed_flip = crop_seed(seed, epoch, example["index"], 1)
        image = augment.random_resized_crop(
            image[None], image_size, seed_crop, tuple(a.crop_area), tuple(a.crop_aspect_ratio)
        )
        image = augment.random_flip(image, seed_flip, a.flip_p)[0]
        return {"image": tf.ensure_shape(image, [image_size, image_size, 3]), "label": label}

    if source.random_access:
        # Only indices go through flat_map; decoding runs in the parallel map below.
        ds = epoch_permutations(indices, seed).map(
            lambda epoch, index: view(epoch, source.load(index)),
            num_parallel_calls=parallel,
            deterministic=True,
        )
    else:
        ds = chosen_examples(source, indices).shuffle(
            config.data.shuffle_buffer, seed=seed, reshuffle_each_iteration=True
        )
        # The running count stands in for the epoch in the augmentation seeds.
        ds = ds.repeat().enumerate().map(view, num_parallel_calls=parallel, deterministic=True)
    ds = ds.batch(batch, drop_remainder=True)
    return ds.prefetch(autotune(config.data.prefetch))
