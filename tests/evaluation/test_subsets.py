"""Label subsets and validation splits: balanced, deterministic, nested, held out from the test
set; subset files round-trip; errors name the problem."""

import os

import numpy as np
import pytest

from byol_tf.data import load_source
from byol_tf.evaluation import subsets
from tests.helpers.downstream_data import PER_CLASS, eval_config, folders, specs


@pytest.fixture(scope="module")
def config():
    return eval_config("finetune")


@pytest.fixture(scope="module")
def synthetic(config):
    c = config.copy_and_resolve_references()
    c.data.synthetic.num_train = 500
    c.data.synthetic.num_classes = 5
    return load_source("synthetic:train", c)


def test_balanced_deterministic_and_nested(synthetic):
    labels = subsets.source_labels(synthetic)
    small = subsets.select_subset(synthetic, label_fraction=0.05, seed=3)
    large = subsets.select_subset(synthetic, label_fraction=0.2, seed=3)
    # 5% of 500 over 5 classes = 5 per class; 20% = 20 per class.
    assert small.per_class == [5] * 5 and large.per_class == [20] * 5
    np.testing.assert_array_equal(np.bincount(labels[small.indices], minlength=5), [5] * 5)
    assert set(small.indices) <= set(large.indices)  # 5% is inside 20% for the same seed
    again = subsets.select_subset(synthetic, label_fraction=0.05, seed=3)
    np.testing.assert_array_equal(small.indices, again.indices)
    assert small.sha256 == again.sha256
    other = subsets.select_subset(synthetic, label_fraction=0.05, seed=4)
    assert other.sha256 != small.sha256 and other.per_class == small.per_class
    assert small.sha256 == subsets.subset_hash([str(i) for i in small.indices])
    assert list(small.indices) == sorted(small.indices)
    everything = subsets.select_subset(synthetic, label_fraction=1.0)
    assert everything.method == "all" and len(everything.indices) == 500


def test_labels_per_class_and_info(synthetic):
    subset = subsets.select_subset(synthetic, labels_per_class=7, seed=0)
    info = subset.info()
    assert info["num_examples"] == 35 and info["per_class"] == [7] * 5
    assert info["method"] == "labels_per_class" and info["seed"] == 0
    assert len(info["sha256"]) == 64


def test_subset_is_disjoint_from_the_test_set(config):
    train_spec, test_spec = specs()
    train, test = load_source(train_spec, config), load_source(test_spec, config)
    subset = subsets.select_subset(train, labels_per_class=4, seed=0)
    root = folders()
    chosen = {os.path.realpath(os.path.join(root["train"], i)) for i in subset.ids}
    test_files = {os.path.realpath(os.path.join(root["test"], i)) for i in test.example_ids}
    assert len(chosen) == 16 and not chosen & test_files
    subsets.check_disjoint(train, test)  # no error
    with pytest.raises(ValueError, match="both 'folder:"):
        subsets.check_disjoint(train, load_source(train_spec, config))
    # The same files reached through another path are caught too.
    alias = os.path.join(root["root"], "alias")
    if not os.path.exists(alias):
        os.symlink(root["train"], alias)
    with pytest.raises(ValueError, match=r"64 image\(s\) are in both"):
        subsets.check_disjoint(train, load_source("folder:" + alias, config))


def test_validation_split_is_stratified_and_disjoint(synthetic):
    labels = subsets.source_labels(synthetic)
    fit, val = subsets.validation_split(labels, 5, 0.1, seed=0)
    assert not set(fit) & set(val) and len(fit) + len(val) == 500
    np.testing.assert_array_equal(np.bincount(labels[val], minlength=5), [10] * 5)
    fit2, val2 = subsets.validation_split(labels, 5, 0.1, seed=0)
    np.testing.assert_array_equal(val, val2)


def test_subset_file_round_trip(tmp_path, config):
    train = load_source(specs()[0], config)
    subset = subsets.select_subset(train, labels_per_class=3, seed=5)
    path = subsets.write_subset_file(str(tmp_path / "subset.txt"), subset, train)
    lines = open(path).read().splitlines()
    assert lines[0].startswith("#") and lines[-1] == subset.ids[-1]
    assert all(name.endswith(".png") and "/" in name for name in subset.ids)
    read = subsets.select_subset(train, subset_file=path)
    np.testing.assert_array_equal(read.indices, subset.indices)
    assert read.sha256 == subset.sha256 and read.method == "subset_file"
    (tmp_path / "bad.txt").write_text("red/red_000.png\nred/nope.png\n")
    with pytest.raises(ValueError, match=r"1 example\(s\) that .* does not have.*nope\.png"):
        subsets.select_subset(train, subset_file=str(tmp_path / "bad.txt"))
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        subsets.select_subset(train, subset_file=str(tmp_path / "missing.txt"))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_label_fraction_outside_0_1_is_refused(synthetic, fraction):
    with pytest.raises(ValueError, match=rf"label_fraction={fraction} must be in \(0, 1\]"):
        subsets.select_subset(synthetic, label_fraction=fraction)


def test_more_labels_per_class_than_exist(config):
    train = load_source(specs()[0], config)
    too_many = PER_CLASS["train"] + 1
    with pytest.raises(
        ValueError, match=rf"{too_many} labels per class requested, but class 0 \('blue'\).*only 16"
    ):
        subsets.select_subset(train, labels_per_class=too_many)


def test_source_without_labels(config):
    flat = load_source("folder:" + folders()["unlabelled"], config)
    with pytest.raises(ValueError, match="has no labels"):
        subsets.select_subset(flat, label_fraction=0.5)
