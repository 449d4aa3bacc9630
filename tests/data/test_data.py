"""byol_tf.data: source strings, image folders with bad files, offline TFDS, the synthetic
shapes, and the pretraining pipeline's layout (epochs, exact resumption, sharding)."""

import dataclasses
import logging
import os
import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from byol_tf import augment, data
from byol_tf.config import base_config
from byol_tf.data.pipeline import VIEWS
from tests import REPO

SIZE = 8  # crop output side: tiny images keep the suite fast on 2 shared cores


def tiny_config(**overrides):
    """base_config with tiny data; overrides use dotted names, e.g. {"data.cache": True}."""
    c = base_config()
    c.seed = 5
    c.data.image_size = SIZE
    c.data.global_batch_size = 8
    c.data.num_parallel_calls = 2
    c.data.prefetch = 1
    c.data.synthetic.update(num_train=40, num_test=16, image_size=12, num_classes=4)
    c.update_from_flattened_dict(overrides)
    return c


def take(ds, n):
    return [{k: v.numpy() for k, v in batch.items()} for batch in ds.take(n)]


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


# --- Source strings ------------------------------------------------------------------------------


def test_unknown_prefix_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown data source 'imagenet:train'.*tfds:<name>"):
        data.load_source("imagenet:train", tiny_config())


def test_missing_and_empty_folders_name_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        data.load_source(f"folder:{missing}", tiny_config())
    empty = tmp_path / "empty"
    (empty / "cats").mkdir(parents=True)
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=f"{empty}.*no images"):
        data.load_source(f"folder:{empty}", tiny_config())


# --- Image folders -------------------------------------------------------------------------------


def _write(path, contents):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(contents)


def _pixels(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """Two classes of tiny images in several formats, plus one corrupt and one empty file."""
    root = tmp_path_factory.mktemp("images")
    rgb = {name: _pixels((5 + i, 7, 3), i) for i, name in enumerate(["a0", "a1", "b0"])}
    rgb["a0"] = np.broadcast_to(np.uint8([200, 40, 90]), (5, 7, 3))  # flat: JPEG keeps it
    gray, rgba = _pixels((6, 6, 1), 10), _pixels((4, 9, 4), 11)
    _write(root / "ants" / "a0.jpg", tf.io.encode_jpeg(rgb["a0"], quality=100).numpy())
    _write(root / "ants" / "a1.PNG", tf.io.encode_png(rgb["a1"]).numpy())
    _write(root / "ants" / "deeper" / "gray.png", tf.io.encode_png(gray).numpy())
    _write(root / "bees" / "b0.png", tf.io.encode_png(rgb["b0"]).numpy())
    _write(root / "bees" / "rgba.png", tf.io.encode_png(rgba).numpy())
    _write(root / "bees" / "readme.txt", b"ignored")
    corrupt = tf.io.encode_jpeg(_pixels((16, 16, 3), 12)).numpy()[:40] + _pixels(64, 13).tobytes()
    _write(root / "bees" / "corrupt.jpg", corrupt)
    _write(root / "ants" / "empty.jpg", b"")
    return root, rgb, gray, rgba


def test_folder_skips_bad_files_and_reads_gray_and_rgba_as_rgb(image_tree, caplog):
    root, rgb, gray, rgba = image_tree
    with caplog.at_level(logging.WARNING):
        source = data.load_source(f"folder:{root}", tiny_config())
    assert (source.num_examples, source.skipped) == (5, 2)
    assert (source.num_classes, source.class_names) == (2, ["ants", "bees"])
    assert "corrupt.jpg" in caplog.text and "empty.jpg" in caplog.text and "2 " in caplog.text
    examples = list(source.ordered_examples().as_numpy_iterator())
    # Sorted by path: ants/a0.jpg, ants/a1.PNG, ants/deeper/gray.png, bees/b0.png, bees/rgba.png.
    assert [int(ex["label"]) for ex in examples] == [0, 0, 0, 1, 1]
    assert [int(ex["index"]) for ex in examples] == [0, 1, 2, 3, 4]
    assert all(ex["image"].dtype == np.uint8 and ex["image"].shape[2] == 3 for ex in examples)
    np.testing.assert_allclose(examples[0]["image"], rgb["a0"], atol=3)  # lossy JPEG
    np.testing.assert_array_equal(examples[1]["image"], rgb["a1"])
    np.testing.assert_array_equal(examples[2]["image"], np.repeat(gray, 3, axis=2))
    np.testing.assert_array_equal(examples[3]["image"], rgb["b0"])
    np.testing.assert_array_equal(examples[4]["image"], rgba[..., :3])

    # Cached in memory (mixed sizes, packed): the same examples, now from memory.
    cached = data.load_source(f"folder:{root}", tiny_config(**{"data.cache": True}))
    for ex, cached_ex in zip(examples, cached.ordered_examples().as_numpy_iterator(), strict=True):
        for key in ex:
            np.testing.assert_array_equal(ex[key], cached_ex[key])


def test_folder_on_a_tensorflow_filesystem_reads_as_on_local_disk(image_tree):
    """`folder:ram://...` stands in for `folder:gs://...`: listed and read through tf.io.gfile."""
    root = image_tree[0]
    remote = f"ram://byol_images_{os.getpid()}"
    for directory, _, files in os.walk(root):
        target = remote + directory[len(str(root)) :]
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(os.path.join(directory, name), f"{target}/{name}", overwrite=True)
    local = data.load_source(f"folder:{root}", tiny_config())
    source = data.load_source(f"folder:{remote}", tiny_config())
    assert (source.num_examples, source.skipped, source.class_names) == (5, 2, ["ants", "bees"])
    assert source.example_ids == local.example_ids
    for ex, want in zip(source.ordered_examples(), local.ordered_examples(), strict=True):
        np.testing.assert_array_equal(ex["image"].numpy(), want["image"].numpy())
        assert int(ex["label"]) == int(want["label"])


def test_folder_without_subfolders_is_unlabelled(tmp_path):
    for i in range(3):
        _write(tmp_path / f"{i}.png", tf.io.encode_png(_pixels((4, 4, 3), i)).numpy())
    source = data.load_source(f"folder:{tmp_path}", tiny_config())
    assert (source.num_examples, source.num_classes, source.class_names) == (3, None, None)
    labels = [int(ex["label"]) for ex in source.ordered_examples().as_numpy_iterator()]
    assert labels == [-1, -1, -1]


def _class_folder(root, classes) -> str:
    for i, name in enumerate(classes):
        _write(root / name / "x.png", tf.io.encode_png(_pixels((4, 4, 3), i)).numpy())
    return f"folder:{root}"


def test_train_and_test_with_other_classes_are_refused_by_every_user(tmp_path):
    from byol_tf.config import load_config
    from byol_tf.evaluation import knn
    from byol_tf.evaluation.finetune import run_finetune
    from byol_tf.evaluation.setup import open_sources
    from byol_tf.training.monitor import KnnMonitor

    train_spec = _class_folder(tmp_path / "train", ["ants", "bees", "cats"])
    test_spec = _class_folder(tmp_path / "test", ["ants", "bees", "wasps"])
    differ = "only in train: cats; only in test: wasps"
    c = tiny_config(
        **{"eval.knn_train": train_spec, "eval.knn_test": test_spec, "eval.knn_every_epochs": 1}
    )
    train, test = data.load_source(train_spec, c), data.load_source(test_spec, c)
    with pytest.raises(ValueError, match=f"{tmp_path}/train.*{tmp_path}/test.*{differ}"):
        data.check_same_classes(train, test)
    # Each place that pairs a train and a test source refuses them before any work.
    with pytest.raises(ValueError, match=differ):
        knn.evaluate_knn(None, train, test, c)
    with pytest.raises(ValueError, match=differ):
        KnnMonitor(None, c, steps_per_epoch=1, log=print).on_train_begin()
    repo = REPO
    for tool in ("knn_eval", "linear_eval", "finetune"):
        config = load_config(os.path.join(repo, "configs", f"{tool}.py") + ":local")
        with pytest.raises(ValueError, match=differ):
            open_sources(train_spec, test_spec, config)
    with pytest.raises(ValueError, match=differ):
        run_finetune("not/read", train_spec, test_spec, config)
    # The same names in another order, and the passing cases.
    reordered = dataclasses.replace(test, class_names=["bees", "ants", "cats"])
    with pytest.raises(ValueError, match="class 0 is 'ants' in train, 'bees' in test"):
        data.check_same_classes(train, reordered)
    data.check_same_classes(train, dataclasses.replace(test, class_names=["ants", "bees", "cats"]))
    data.check_same_classes(train, data.load_source("synthetic:test", c))  # no names: unchecked


def test_eval_dataset_centre_crops_resizes_and_keeps_the_last_batch(image_tree):
    root = image_tree[0]
    source = data.load_source(f"folder:{root}", tiny_config())
    batches = take(data.eval_dataset(source, tiny_config(), batch_size=2, image_size=4), 10)
    assert [len(b["label"]) for b in batches] == [2, 2, 1]
    for b in batches:
        assert b["image"].shape[1:] == (4, 4, 3) and b["image"].dtype == np.float32
        assert 0.0 <= b["image"].min() and b["image"].max() <= 1.0
    assert np.concatenate([b["label"] for b in batches]).tolist() == [0, 0, 0, 1, 1]


# --- TFDS, offline -------------------------------------------------------------------------------


class ByolTestDigits(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A tiny grayscale dataset written to a temporary data_dir; the pixels encode the key."""

    VERSION = tfds.core.Version("1.0.0")
    # Defined in a package (tests.data): TFDS would look for a checksums file beside this module
    # through importlib_resources, which it does not install. The builder downloads nothing.
    code_path = None

    def _info(self):
        features = {
            "image": tfds.features.Image(shape=(6, 6, 1)),
            "label": tfds.features.ClassLabel(names=["zero", "one", "two"]),
        }
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"train": self._generate_examples(30), "test": self._generate_examples(9)}

    def _generate_examples(self, n):
        for i in range(n):
            yield i, {"image": np.full((6, 6, 1), i, np.uint8), "label": i % 3}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tfds"))
    # Two files per split, so that both ways of sharding (by file, by example) are exercised.
    ByolTestDigits(data_dir=directory).download_and_prepare(
        download_config=tfds.download.DownloadConfig(num_shards=2)
    )
    return directory


def test_tfds_source_reads_offline_as_rgb(tfds_dir):
    c = tiny_config(**{"data.data_dir": tfds_dir})
    source = data.load_source("tfds:byol_test_digits:train", c)
    assert (source.num_examples, source.num_classes) == (30, 3)
    assert source.class_names == ["zero", "one", "two"]
    examples = list(source.ordered_examples().as_numpy_iterator())
    keys = [int(ex["image"][0, 0, 0]) for ex in examples]
    assert sorted(keys) == list(range(30))
    assert [int(ex["index"]) for ex in examples] == list(range(30))
    for ex, key in zip(examples, keys, strict=True):
        assert ex["image"].shape == (6, 6, 3) and int(ex["label"]) == key % 3
    assert data.load_source("tfds:byol_test_digits:train[:10%]", c).num_examples == 3


def test_tfds_source_of_one_static_size_caches_in_memory(tfds_dir):
    # Images of a static size batch densely (not ragged) while caching.
    c = tiny_config(**{"data.data_dir": tfds_dir, "data.cache": True})
    source = data.load_source("tfds:byol_test_digits:train", c)
    assert source.random_access and source.image_shape == (6, 6, 3)
    plain = tiny_config(**{"data.data_dir": tfds_dir})
    streamed = data.load_source("tfds:byol_test_digits:train", plain)
    labels = []
    for ex, cached in zip(streamed.ordered_examples(), source.ordered_examples(), strict=True):
        np.testing.assert_array_equal(ex["image"].numpy(), cached["image"].numpy())
        labels.append(int(ex["label"]))
    np.testing.assert_array_equal(source.labels, labels)


def test_tfds_epochs_are_seeded_permutations_sharded_without_overlap(tfds_dir):
    c = tiny_config(**{"data.data_dir": tfds_dir})
    source = data.load_source("tfds:byol_test_digits:train", c)

    def keys(epoch, shard, shards, per_step):
        steps = 30 // (per_step * shards)
        ds = source.epoch_examples(epoch, 5, shard, shards, per_step, steps)
        return [int(ex["image"][0, 0, 0]) for ex in ds.as_numpy_iterator()]

    assert sorted(keys(0, 0, 1, 5)) == list(range(30))
    assert keys(0, 0, 1, 5) == keys(0, 0, 1, 5)
    assert keys(1, 0, 1, 5) != keys(0, 0, 1, 5)
    # 2 pipelines: one file (15 examples) each; 3 pipelines: more than files, split by example.
    for shards, per_step in ((2, 3), (3, 2)):
        parts = [keys(0, p, shards, per_step) for p in range(shards)]
        assert [len(part) for part in parts] == [30 // shards] * shards
        assert sorted(sum(parts, [])) == list(range(30))


def test_tfds_pipeline_resumes_exactly(tfds_dir):
    # Crops only: the batch augmentation's seeding is the same for every source (tested below).
    c = tiny_config(
        **{"data.data_dir": tfds_dir, "data.global_batch_size": 10, "augment.on_device": True}
    )
    source = data.load_source("tfds:byol_test_digits:train", c)
    full = take(data.pretrain_dataset(source, c), 5)  # 3 steps per epoch: crosses into epoch 1
    assert_batches_equal(take(data.pretrain_dataset(source, c, start_step=2), 3), full[2:])


@pytest.mark.parametrize("global_seed", [0, 7, None])
def test_tfds_order_ignores_the_global_seed(tfds_dir, global_seed):
    # tf.data folds TF's global seed into tensor-valued shuffle seeds and, when the global seed
    # is 0 (what `config.seed=0` sets through the Trainer), evaluates a symbolic tensor as a
    # Python bool (tensorflow#17284). The epoch order must work and be the same in all cases.
    c = tiny_config(
        **{"data.data_dir": tfds_dir, "data.global_batch_size": 10, "augment.on_device": True}
    )
    source = data.load_source("tfds:byol_test_digits:train", c)
    tf.random.set_seed(None)
    reference = take(data.pretrain_dataset(source, c), 4)
    try:
        tf.random.set_seed(global_seed)
        assert_batches_equal(take(data.pretrain_dataset(source, c), 4), reference)
    finally:
        tf.random.set_seed(None)


def test_unprepared_or_unknown_tfds_dataset_is_a_clear_error(tmp_path):
    c = tiny_config(**{"data.data_dir": str(tmp_path)})
    with pytest.raises(FileNotFoundError) as info:
        data.load_source("tfds:mnist:train", c)
    message = str(info.value)
    for part in ("'mnist'", "'train'", str(tmp_path), "download_and_prepare", "data.data_dir"):
        assert part in message
    with pytest.raises(ValueError, match="no dataset 'no_such_dataset_xyz'"):
        data.load_source("tfds:no_such_dataset_xyz:train", c)


# --- Synthetic shapes ----------------------------------------------------------------------------


def test_synthetic_is_deterministic_balanced_and_split():
    images, labels = data.make_synthetic(60, 16, 6, seed=3)
    assert images.shape == (60, 16, 16, 3) and images.dtype == np.uint8
    assert labels.shape == (60,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [10] * 6
    again = data.make_synthetic(60, 16, 6, seed=3)
    np.testing.assert_array_equal(images, again[0])
    np.testing.assert_array_equal(labels, again[1])
    assert not np.array_equal(images, data.make_synthetic(60, 16, 6, seed=4)[0])
    with pytest.raises(ValueError, match="num_classes=11"):
        data.make_synthetic(10, 16, 11, seed=0)

    c = tiny_config()
    train = data.load_source("synthetic", c)  # the split defaults to train
    test = data.load_source("synthetic:test", c)
    assert (train.num_examples, test.num_examples, train.num_classes) == (40, 16, 4)
    train_images = {ex["image"].tobytes() for ex in train.ordered_examples().as_numpy_iterator()}
    test_images = {ex["image"].tobytes() for ex in test.ordered_examples().as_numpy_iterator()}
    assert not train_images & test_images


def test_synthetic_nuisances_are_grey_levels_position_and_scale():
    images, labels = data.make_synthetic(400, 32, 8, seed=5)
    x = images.astype(np.float32) / 255.0
    # Grey: the three channels are one image.
    np.testing.assert_array_equal(images[..., 0], images[..., 1])
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    # Two grey levels per image, shape and background, 0.2 to 0.4 apart (up to pixel noise):
    # the shape covers more than 1% of every image, so the 1% and 99% quantiles of its pixels
    # sit on the two levels, give or take 2.3 noise standard deviations.
    g = x[..., 0].reshape(len(x), -1)
    gap = np.quantile(g, 0.99, axis=1) - np.quantile(g, 0.01, axis=1)
    assert gap.min() > 0.15 and gap.max() < 0.55
    # No class owns a brightness: the mean grey level of each class is about the same.
    class_means = [g[labels == k].mean() for k in range(8)]
    assert max(class_means) - min(class_means) < 0.1
    # Backgrounds (the border's median) span most of [0.15, 0.85] within every class.
    border = np.median(np.concatenate([x[:, 0, :, 0], x[:, -1, :, 0]], axis=1), axis=1)
    for k in range(8):
        assert border[labels == k].min() < 0.3 and border[labels == k].max() > 0.7


# --- The pretraining pipeline --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes_by_id():
    """24 synthetic shapes whose label is the example's index, to follow examples into batches."""
    images = tf.constant(data.make_synthetic(24, 12, 4, seed=0)[0])
    return data.Source("shapes-by-id", 24, None, lookup=lambda i: (tf.gather(images, i), i))


@pytest.fixture(scope="module")
def uninterrupted(shapes_by_id):
    """Nine batches of 8 from step 0: three epochs of three steps."""
    return take(data.pretrain_dataset(shapes_by_id, tiny_config()), 9)


def test_pretrain_batches_are_two_views_in_range(uninterrupted):
    for b in uninterrupted:
        assert b["view1"].shape == b["view2"].shape == (8, SIZE, SIZE, 3)
        assert b["view1"].dtype == b["view2"].dtype == np.float32
        assert b["label"].shape == (8,) and b["label"].dtype == np.int64
        assert 0.0 <= min(b["view1"].min(), b["view2"].min())
        assert max(b["view1"].max(), b["view2"].max()) <= 1.0
        # The two views of every image differ.
        assert np.abs(b["view1"] - b["view2"]).reshape(8, -1).max(axis=1).min() > 0


def test_every_epoch_visits_each_example_once(uninterrupted):
    ids = np.stack([b["label"] for b in uninterrupted]).reshape(3, 24)
    for epoch in ids:
        assert sorted(epoch.tolist()) == list(range(24))
    assert not np.array_equal(ids[0], ids[1])  # a new permutation every epoch


def test_resuming_gives_the_batches_of_an_uninterrupted_run(shapes_by_id, uninterrupted):
    # Step 4 is inside epoch 1; the five batches from it run into epoch 2.
    resumed = take(data.pretrain_dataset(shapes_by_id, tiny_config(), start_step=4), 5)
    assert_batches_equal(resumed, uninterrupted[4:])


def test_device_augmentation_uses_the_same_seeds_and_the_seed_matters(shapes_by_id, uninterrupted):
    c = tiny_config(**{"augment.on_device": True})
    cropped = take(data.pretrain_dataset(shapes_by_id, c), 2)
    for step, (batch, want) in enumerate(zip(cropped, uninterrupted[:2], strict=True)):
        np.testing.assert_array_equal(batch["label"], want["label"])
        for v, name in enumerate(VIEWS):
            seed = data.batch_augment_seed(c.seed, step, 0, v)
            got = augment.augment_batch(batch[name], c.augment[name], seed)
            np.testing.assert_allclose(got, want[name], atol=1e-6)
    c.seed += 1
    other = take(data.pretrain_dataset(shapes_by_id, c), 1)[0]
    assert not np.array_equal(other["label"], cropped[0]["label"])
    same_examples = [np.flatnonzero(cropped[0]["label"] == i) for i in other["label"]]
    assert not np.array_equal(other["view1"], cropped[0]["view1"][np.concatenate(same_examples)])


@pytest.mark.parametrize("on_device", [False, True])
def test_same_size_images_are_cropped_per_batch_with_the_per_example_views(
    shapes_by_id, uninterrupted, on_device
):
    c = tiny_config(**{"augment.on_device": on_device})
    per_example = take(data.pretrain_dataset(shapes_by_id, c), 4)
    sized = dataclasses.replace(shapes_by_id, image_shape=(12, 12, 3))
    per_batch = take(data.pretrain_dataset(sized, c), 4)
    assert_batches_equal(per_batch, per_example)
    if not on_device:
        assert_batches_equal(per_batch, uninterrupted[:4])
    # Resumed, with two replicas fed by one pipeline: still the per-example views.
    context = tf.distribute.InputContext(1, 0, 2)
    resumed = [data.pretrain_dataset(s, c, context, start_step=3) for s in (shapes_by_id, sized)]
    assert_batches_equal(take(resumed[1], 4), take(resumed[0], 4))
    # The batched path is the one taken: a wrong recorded size fails there.
    wrong = dataclasses.replace(shapes_by_id, image_shape=(10, 10, 3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="differs from the size"):
        take(data.pretrain_dataset(wrong, c), 1)
    # data.batched_crop=False keeps the per-example crop, which never looks at the size.
    c.data.batched_crop = False
    assert_batches_equal(take(data.pretrain_dataset(wrong, c), 4), per_example)


def test_a_folder_image_that_changed_size_after_the_scan_is_a_clear_error(tmp_path):
    for i in range(8):
        _write(tmp_path / f"{i}.png", tf.io.encode_png(_pixels((6, 6, 3), i)).numpy())
    source = data.load_source(f"folder:{tmp_path}", tiny_config())
    assert source.image_shape == (6, 6, 3)
    _write(tmp_path / "3.png", tf.io.encode_png(_pixels((7, 6, 3), 3)).numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\(6, 6, 3\).*batched_crop=false"):
        take(data.pretrain_dataset(source, tiny_config()), 1)


def test_sources_know_when_all_their_images_have_one_size(image_tree, folder_by_id, tfds_dir):
    root = image_tree[0]
    assert folder_by_id.image_shape == (6, 6, 3)
    assert data.load_source(f"folder:{root}", tiny_config()).image_shape is None  # mixed sizes
    unchecked = tiny_config(**{"data.validate_images": False})
    assert data.load_source(f"folder:{root}", unchecked).image_shape is None
    assert data.load_source(folder_by_id.spec, unchecked).image_shape is None  # not scanned
    cached = tiny_config(**{"data.validate_images": False, "data.cache": True})
    assert data.load_source(folder_by_id.spec, cached).image_shape == (6, 6, 3)
    cached.data.validate_images = True  # this folder holds corrupt files
    assert data.load_source(f"folder:{root}", cached).image_shape is None
    assert data.load_source("synthetic:train", tiny_config()).image_shape == (12, 12, 3)
    c = tiny_config(**{"data.data_dir": tfds_dir})
    assert data.load_source("tfds:byol_test_digits:train", c).image_shape == (6, 6, 3)  # gray


def test_two_pipelines_feed_the_replicas_exactly_as_one_pipeline(shapes_by_id, uninterrupted):
    c = tiny_config()
    one = take(data.pretrain_dataset(shapes_by_id, c, tf.distribute.InputContext(1, 0, 2)), 6)
    per_pipeline = [
        take(data.pretrain_dataset(shapes_by_id, c, tf.distribute.InputContext(2, p, 2)), 3)
        for p in range(2)
    ]
    for step in range(3):
        halves = []
        for p in range(2):
            # Replica p's batch is the same whether one pipeline or pipeline p produces it.
            assert_batches_equal([per_pipeline[p][step]], [one[2 * step + p]])
            halves.append(per_pipeline[p][step]["label"])
        assert not set(halves[0]) & set(halves[1])
        np.testing.assert_array_equal(np.concatenate(halves), uninterrupted[step]["label"])


def test_batch_that_does_not_split_over_replicas_is_a_clear_error(shapes_by_id):
    c = tiny_config()
    with pytest.raises(ValueError, match="global_batch_size=8.*3 replicas"):
        data.pretrain_dataset(shapes_by_id, c, tf.distribute.InputContext(1, 0, 3))
    assert data.steps_per_epoch(shapes_by_id, c) == 3


@pytest.fixture(scope="module")
def folder_by_id(tmp_path_factory):
    """16 PNG files, each alone in its class folder, so the label names the file."""
    root = tmp_path_factory.mktemp("by_id")
    for i in range(16):
        _write(root / f"c{i:02d}" / "x.png", tf.io.encode_png(_pixels((6, 6, 3), i)).numpy())
    return data.load_source(f"folder:{root}", tiny_config())


@pytest.mark.parametrize("which", ["shapes_by_id", "folder_by_id"])
def test_two_workers_read_disjoint_examples_in_an_epoch(request, which):
    """What each of 2 workers' input pipelines reads in one epoch: disjoint, together all."""
    source = request.getfixturevalue(which)
    c = tiny_config()
    steps = data.steps_per_epoch(source, c)
    seen = []
    for worker in range(2):
        ds = data.pretrain_dataset(source, c, tf.distribute.InputContext(2, worker, 2))
        labels = np.concatenate([b["label"] for b in take(ds, steps)])
        assert len(set(labels.tolist())) == len(labels) == steps * 4  # no repeat within a worker
        seen.append(set(labels.tolist()))
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(steps * 8))


def test_one_labelled_source_check_names_the_source_what_needs_it_and_the_fix(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    source = types.SimpleNamespace(num_classes=None, spec=f"folder:{flat}")
    with pytest.raises(
        ValueError,
        match=r"kNN evaluation needs labels, but the test source 'folder:.*flat' has no labels.*one subfolder per class",
    ):
        data.require_labels(source, "kNN evaluation", "test")
    assert data.require_labels(types.SimpleNamespace(num_classes=4, spec="x"), "anything") == 4


# --- Input statistics ----------------------------------------------------------------------------


def test_channel_statistics_are_the_numpy_mean_and_std_of_the_images():
    c = tiny_config(**{"data.image_size": 12})  # the synthetic images' own size: no resizing
    source = data.load_source("synthetic:train", c)
    pixels = np.stack([ex["image"].numpy() for ex in source.ordered_examples()]) / 255.0
    mean, std = data.channel_statistics(source, c)
    assert pixels.shape[1:] == (12, 12, 3)
    np.testing.assert_allclose(mean, pixels.reshape(-1, 3).mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(std, pixels.reshape(-1, 3).std(axis=0), atol=1e-5)
    # The first n examples only, when asked.
    first, _ = data.channel_statistics(source, c, max_examples=10)
    np.testing.assert_allclose(first, pixels[:10].reshape(-1, 3).mean(axis=0), atol=1e-5)
    assert data.channel_statistics(source, c) == (mean, std)  # the same on every call


@pytest.mark.parametrize(
    "mean, std", [((), (0.2, 0.2, 0.2)), ((0.5, 0.5), (0.2, 0.2)), ((0.5,) * 3, (0.2, 0.0, 0.2))]
)
def test_input_statistics_are_three_values_each_or_both_empty(mean, std):
    from byol_tf.config import validate

    c = tiny_config(**{"data.mean": mean, "data.std": std})
    with pytest.raises(ValueError, match=r"data.mean=.*three values each.*both \(\)"):
        validate(c)
