"""Data sources, each named by one string, the same in configs and in every tool:
`synthetic[:train|test]`, `tfds:<name>:<split>` or `folder:<path>`.

`load_source` opens one as a `Source` (`byol_tf.data.source`, where the examples and the epoch
layout are described); folders are read by `folders.py`, TFDS by `tfds_source.py`, and
`data.cache` keeps the decoded images in memory (`memory.py`). `check_same_classes` refuses a
train/test pair whose labels mean different classes.
"""

from __future__ import annotations

import ml_collections
import numpy as np
import tensorflow as tf

from byol_tf.data.folders import open_folder
from byol_tf.data.memory import cache_in_memory
from byol_tf.data.source import Element, Source
from byol_tf.data.synthetic import make_synthetic
from byol_tf.data.tfds_source import open_tfds

__all__ = ["SPEC_HELP", "Element", "Source", "check_same_classes", "load_source"]

SPEC_HELP = "'synthetic[:train|test]', 'tfds:<name>:<split>' or 'folder:<path>'"


def load_source(spec: str, config: ml_collections.ConfigDict) -> Source:
    """Opens the source named by `spec` (see the module docstring); never downloads.

    With `config.data.cache`, folder and TFDS sources are decoded into memory once here and
    then behave as random-access sources.
    """
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        return _synthetic(spec, rest or "train", config)
    if kind == "folder":
        source = open_folder(spec, rest, config)
    elif kind == "tfds":
        source = open_tfds(spec, rest, config)
    else:
        raise ValueError(f"Unknown data source {spec!r}: use {SPEC_HELP}.")
    return cache_in_memory(source) if config.data.cache else source


def _synthetic(spec: str, split: str, config: ml_collections.ConfigDict) -> Source:
    s = config.data.synthetic
    if split not in ("train", "test"):
        raise ValueError(f"Synthetic split {split!r} in {spec!r} is not 'train' or 'test'.")
    count = s.num_train if split == "train" else s.num_test
    if count < 1:
        raise ValueError(f"Source {spec!r} is empty: data.synthetic.num_{split}={count}.")
    # Separate derived seeds, so that test images are new draws rather than train images.
    seed = int(np.random.SeedSequence([s.seed, 0 if split == "train" else 1]).generate_state(1)[0])
    images, labels = make_synthetic(count, s.image_size, s.num_classes, seed)
    stacked, labels_t = tf.constant(images), tf.constant(labels)
    return Source(
        spec,
        count,
        s.num_classes,
        lookup=lambda i: (tf.gather(stacked, i), tf.gather(labels_t, i)),
        labels=labels,
        image_shape=tuple(int(n) for n in images.shape[1:]),
    )


def _listed(names: list[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown}, ... ({len(names)} in all)"


def require_labels(source: Source, needed_by: str, role: str = "") -> int:
    """The number of classes of `source`; when it has none, a ValueError naming the source,
    what needs its labels and how to give it some. The one labelled-source check of byol-tf."""
    if source.num_classes is None:
        raise ValueError(
            f"{needed_by} needs labels, but the {role + ' ' if role else ''}source "
            f"{source.spec!r} has no labels (a folder without class subfolders, or a TFDS split "
            "without a ClassLabel 'label'). Use a labelled source: a folder with one subfolder "
            "per class, a labelled TFDS split, or 'synthetic:train' / 'synthetic:test'."
        )
    return int(source.num_classes)


def check_same_classes(train: Source, test: Source) -> None:
    """Raises ValueError if both sources name their classes and the names differ.

    Each folder numbers its own sorted class subfolders (a TFDS dataset its ClassLabel), so
    a train and a test source with different classes would silently give one id to two
    classes. Sources without class names (synthetic, unlabelled) are not checked.
    """
    a, b = train.class_names, test.class_names
    if a is None or b is None or list(a) == list(b):
        return
    problems = []
    if only_train := [n for n in a if n not in b]:
        problems.append(f"only in train: {_listed(only_train)}")
    if only_test := [n for n in b if n not in a]:
        problems.append(f"only in test: {_listed(only_test)}")
    if not problems:
        i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        problems.append(f"different order: class {i} is {a[i]!r} in train, {b[i]!r} in test")
    raise ValueError(
        f"The train source {train.spec!r} and the test source {test.spec!r} do not have the same "
        f"classes ({'; '.join(problems)}), so their class ids would not mean the same classes. "
        "Give both the same class subfolders (an empty subfolder keeps a class's id)."
    )
