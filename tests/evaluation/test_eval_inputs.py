"""The labelled input pipelines of the downstream tools: subsets only, per-image seeded crops,
deterministic epochs, index-ordered test batches, and the same examples from streaming
sources (no random access) as from random-access ones."""

import numpy as np
import tensorflow as tf

from byol_tf.data import Source, load_source
from byol_tf.data.pipeline import eval_dataset
from byol_tf.evaluation import inputs, subsets
from tests.helpers.downstream_data import eval_config


def config():
    c = eval_config("linear_eval")
    c.data.synthetic.num_train = 40
    c.data.synthetic.image_size = 24
    c.data.synthetic.num_classes = 4
    return c


class _Streaming:
    """A stand-in for a TFDS reader: ordered examples only, no random access."""

    def __init__(self, source):
        self.source = source

    def ordered(self):
        return self.source.ordered_examples()


def streaming(source):
    return Source("stream", source.num_examples, source.num_classes, reader=_Streaming(source))


def test_train_batches_use_the_subset_with_per_image_seeded_crops():
    c = config()
    source = load_source("synthetic:train", c)
    labels = subsets.source_labels(source)
    indices = np.array([1, 5, 8, 13, 21, 34, 35, 39])
    batches = list(inputs.train_batches(source, indices, c, 16, 4, seed=0).take(6))
    assert all(b["image"].shape == (4, 16, 16, 3) for b in batches)
    seen = np.concatenate([b["label"].numpy() for b in batches[:2]])
    np.testing.assert_array_equal(np.sort(seen), np.sort(labels[indices]))  # epoch 1 = subset
    again = list(inputs.train_batches(source, indices, c, 16, 4, seed=0).take(6))
    for a, b in zip(batches, again):
        np.testing.assert_array_equal(a["image"].numpy(), b["image"].numpy())
    other = next(iter(inputs.train_batches(source, indices, c, 16, 4, seed=1)))
    assert not np.array_equal(other["image"].numpy(), batches[0]["image"].numpy())
    # A crop of the 24 px image resized to 16 px is not the plain test view of that image.
    test_view = next(iter(inputs.train_batches(source, indices, c, 16, 4, 0, augmented=False)))
    assert not np.allclose(test_view["image"].numpy(), batches[0]["image"].numpy())
    assert inputs.steps_per_epoch(4, len(indices)) == 2
    assert inputs.effective_batch(256, len(indices)) == 8


def test_eval_dataset_in_index_order_and_streaming_sources_agree():
    c = config()
    source = load_source("synthetic:train", c)
    indices = np.array([30, 2, 17, 9])
    direct = next(iter(eval_dataset(source, c, 8, 24, indices=indices)))
    stream = streaming(source)
    assert not stream.random_access
    streamed = next(iter(eval_dataset(stream, c, 8, 24, indices=indices)))
    np.testing.assert_array_equal(direct["label"].numpy(), streamed["label"].numpy())
    np.testing.assert_allclose(direct["image"].numpy(), streamed["image"].numpy())
    # Sorted by index, and at full size the test view is the image itself.
    first = source.load(tf.constant(2, tf.int64))["image"].numpy() / 255.0
    np.testing.assert_allclose(direct["image"].numpy()[0], first, atol=1e-6)
    np.testing.assert_array_equal(subsets.source_labels(stream), subsets.source_labels(source))
    seen = set()
    for batch in inputs.train_batches(stream, indices, c, 16, 2, seed=0).take(4):
        seen.update(batch["label"].numpy().tolist())
    assert seen <= set(subsets.source_labels(source)[indices].tolist())
