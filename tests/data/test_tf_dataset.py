"""byol_tf.data.from_dataset: a user's tf.data.Dataset as a source (layouts, conversion,
the streamed epoch layout, resumption, caching) and the errors for what it cannot use."""

import numpy as np
import pytest
import tensorflow as tf

from byol_tf import data
from byol_tf.config import base_config

N, SIDE = 24, 6


def config(**overrides):
    c = base_config()
    c.data.shuffle_buffer = 7  # smaller than N: the shuffle is a real buffer, not a permutation
    c.update_from_flattened_dict(overrides)
    return c


def images_and_labels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, SIDE, SIDE, 3), dtype=np.uint8)
    labels = np.arange(N) % 5
    return images, labels


def ordered(source):
    out = [
        (e["image"].numpy(), int(e["label"]), int(e["index"])) for e in source.ordered_examples()
    ]
    return np.stack([o[0] for o in out]), [o[1] for o in out], [o[2] for o in out]


def test_image_label_pairs_keep_their_order_size_and_classes():
    images, labels = images_and_labels()
    source = data.from_dataset(tf.data.Dataset.from_tensor_slices((images, labels)), config())
    assert (source.num_examples, source.num_classes) == (N, 5)
    assert source.image_shape == (SIDE, SIDE, 3) and not source.random_access
    got, got_labels, indices = ordered(source)
    np.testing.assert_array_equal(got, images)
    assert got_labels == labels.tolist() and indices == list(range(N))


def test_batched_float_greyscale_images_without_labels_become_rgb_uint8_examples():
    grey = np.linspace(0.0, 1.0, N * SIDE * SIDE, dtype=np.float32).reshape(N, SIDE, SIDE, 1)
    ds = tf.data.Dataset.from_tensor_slices(grey).batch(5)  # 5 does not divide 24
    source = data.from_dataset(ds, config(), name="grey")
    assert source.spec == "grey" and source.num_examples == N and source.num_classes is None
    got, got_labels, _ = ordered(source)
    assert got.dtype == np.uint8 and got.shape == (N, SIDE, SIDE, 3)
    want = np.floor(grey * 255.5).astype(np.uint8)  # tf.image.convert_image_dtype's mapping
    np.testing.assert_array_equal(got[..., 0], want[..., 0])
    np.testing.assert_array_equal(got[..., 0], got[..., 2])
    assert set(got_labels) == {-1}


def test_dicts_with_a_given_number_of_classes():
    images, labels = images_and_labels()
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels, "id": labels})
    source = data.from_dataset(ds, config(), num_classes=10)
    assert source.num_classes == 10 and source.num_examples == N


def test_streamed_epochs_shard_disjointly_repeat_for_a_seed_and_resume_mid_epoch():
    images, labels = images_and_labels()
    source = data.from_dataset(tf.data.Dataset.from_tensor_slices((images, labels)), config())

    def epoch(e, shard, skip=0, seed=3):
        ex = source.epoch_examples(e, seed, shard, 2, 4, 3, skip)  # 2 shards x 4, 3 steps
        return [(int(x["label"]), x["image"].numpy().tobytes(), int(x["index"])) for x in ex]

    shard0, shard1 = epoch(0, 0), epoch(0, 1)
    assert len(shard0) == len(shard1) == 12
    # Sharded by example: the two pipelines never read the same image in one epoch.
    assert not {img for _, img, _ in shard0} & {img for _, img, _ in shard1}
    # Numbered as the slots they fill in the random-access layout: step s, shard p, position j.
    assert [i for *_, i in shard1[:5]] == [4, 5, 6, 7, 12]
    assert epoch(0, 0) == shard0  # the same seed and epoch: the same order
    assert epoch(1, 0) != shard0 and epoch(0, 0, seed=4) != shard0
    assert epoch(0, 0, skip=1) == shard0[4:]  # resuming at step 1 skips exactly one step


def test_cached_dataset_has_random_access_and_labels():
    images, labels = images_and_labels()
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    source = data.from_dataset(ds, config(**{"data.cache": True}))
    assert source.random_access
    np.testing.assert_array_equal(source.labels, labels)
    np.testing.assert_array_equal(source.load(tf.constant(7, tf.int64))["image"].numpy(), images[7])


@pytest.mark.parametrize(
    "ds, message",
    [
        (tf.data.Dataset.range(3).map(lambda i: tf.zeros([4, 4, 3])).repeat(), "is infinite"),
        (tf.data.Dataset.from_tensor_slices(np.zeros((3, 4, 4), np.uint8)), r"\[height, width"),
        (tf.data.Dataset.from_tensor_slices(np.zeros((3, 4, 4, 2), np.uint8)), "1, 3 or 4"),
        (tf.data.Dataset.from_tensor_slices(np.zeros((3, 4, 4, 3), np.int32)), "uint8 or float"),
        (
            tf.data.Dataset.from_tensor_slices((np.zeros((3, 4, 4, 3), np.uint8), ["a"] * 3)),
            "integer class ids",
        ),
        (
            tf.data.Dataset.from_tensor_slices((np.zeros((2, 4, 4, 3), np.uint8), [0, -1])),
            "negative",
        ),
        (tf.data.Dataset.from_tensor_slices(np.zeros((0, 4, 4, 3), np.uint8)), "is empty"),
        (
            tf.data.Dataset.from_tensor_slices({"pixels": np.zeros((3, 4, 4, 3))}),
            "should be an image",
        ),
    ],
)
def test_what_it_cannot_use_is_a_clear_error(ds, message):
    with pytest.raises(ValueError, match=message):
        data.from_dataset(ds, config())
