"""Data sources, each named by one string, the same in configs and in every tool:
`synthetic[:train|test]`, `tfds:<name>:<split>` or `folder:<path>`.

A `Source` knows its size and labels and yields examples `{"image": uint8 [H, W, 3], "label":
int64 (-1 if unlabelled), "index": int64}`.

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
import os
import re
from collections.abc import Callable
from typing import Any

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from byol_tf.data.synthetic import make_synthetic

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
SPEC_HELP = "'synthetic[:train|test]', 'tfds:<name>:<split>' or 'folder:<path>'"
_MAX_NAMED_BAD_FILES = 5

Element = dict[str, tf.Tensor]


def _element(image: tf.Tensor, label: tf.Tensor, index: tf.Tensor) -> Element:
    return {
        "image": image,
        "label": tf.cast(label, tf.int64),
        "index": tf.cast(index, tf.int64),
    }


@dataclasses.dataclass
class Source:
    """One opened data source.

    Exactly one of `lookup` (random access: int64 index -> (uint8 image, int64 label)) and
    `reader` (TFDS streaming) is set; `load_source` fills them in.
    """

    spec: str
    num_examples: int
    num_classes: int | None  # None: unlabelled, labels are -1
    skipped: int = 0  # corrupt or unreadable files left out
    class_names: list[str] | None = None
    lookup: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    reader: _TfdsReader | None = dataclasses.field(default=None, repr=False, compare=False)
    # Known without reading images (synthetic, folders, cached sources): int64 [num_examples],
    # in index order. Downstream tools use it to pick label subsets cheaply.
    labels: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    # Folders: each example's path relative to the folder, in index order (subset files list
    # these). None elsewhere, where the index names an example.
    example_ids: list[str] | None = dataclasses.field(default=None, repr=False, compare=False)

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
        return _element(image, label, index)

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
            raise ValueError(f"Source {self.spec!r} streams from TFDS: it has no random access.")
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


def load_source(spec: str, config: ml_collections.ConfigDict) -> Source:
    """Opens the source named by `spec` (see the module docstring); never downloads.

    With `config.data.cache`, folder and TFDS sources are decoded into memory once here and
    then behave as random-access sources.
    """
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        return _synthetic(spec, rest or "train", config)
    if kind == "folder":
        source = _folder(spec, rest, config)
    elif kind == "tfds":
        source = _tfds(spec, rest, config)
    else:
        raise ValueError(f"Unknown data source {spec!r}: use {SPEC_HELP}.")
    return _cache_in_memory(source) if config.data.cache else source


# ----------------------------------------------------------------------------------------------
# In-memory images


def _table_lookup(flat: np.ndarray, shapes: np.ndarray, labels: np.ndarray) -> Callable:
    """index -> (image, label) over decoded images kept in memory.

    `flat` holds every image's pixels one after the other and `shapes` their [H, W, 3]. Same-size
    images become one [N, H, W, 3] tensor; mixed sizes stay packed and are sliced by offset.
    """
    labels_t = tf.constant(labels, tf.int64)
    if (shapes == shapes[0]).all():
        stacked = tf.constant(flat.reshape(len(shapes), *shapes[0]))
        return lambda i: (tf.gather(stacked, i), tf.gather(labels_t, i))
    offsets = tf.constant(np.concatenate([[0], np.cumsum(shapes.prod(axis=1))]), tf.int64)
    shapes_t, flat_t = tf.constant(shapes), tf.constant(flat)

    def lookup(i):
        return tf.reshape(flat_t[offsets[i] : offsets[i + 1]], shapes_t[i]), tf.gather(labels_t, i)

    return lookup


def _cache_in_memory(source: Source) -> Source:
    """Decodes every example of `source` once into memory and returns a random-access source."""
    ds = source.ordered_examples().map(
        lambda ex: (tf.reshape(ex["image"], [-1]), tf.shape(ex["image"], tf.int64), ex["label"])
    )
    # Ragged batches keep the per-element Python overhead off a 50,000-image loop.
    flat, shapes, labels = [], [], []
    for pixels, shape, label in ds.ragged_batch(1024):
        flat.append(pixels.flat_values.numpy())
        shapes.append(shape.numpy())
        labels.append(label.numpy())
    flat, shapes = np.concatenate(flat), np.concatenate(shapes)
    logging.info(
        "Cached %d decoded images of %s in memory (%.0f MB).",
        len(shapes),
        source.spec,
        flat.nbytes / 2**20,
    )
    labels = np.concatenate(labels)
    lookup = _table_lookup(flat, shapes, labels)
    return dataclasses.replace(source, lookup=lookup, reader=None, labels=labels)


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
    )


# ----------------------------------------------------------------------------------------------
# Image folders


def decode_image(contents: tf.Tensor) -> tf.Tensor:
    """JPEG/PNG/GIF/BMP bytes -> uint8 [H, W, 3]: grayscale becomes RGB, alpha is dropped."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return image


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _scan_images(directory: str) -> list[tuple[str, int]]:
    """(path, size in bytes) of every image file under `directory`, sorted by path."""
    found = []
    stack = [directory]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir() and not entry.name.startswith("."):
                    stack.append(entry.path)
                elif _is_image(entry.name) and entry.is_file():
                    found.append((entry.path, entry.stat().st_size))
    return sorted(found)


def _list_folder(path: str) -> tuple[list[tuple[str, int]], list[int], list[str] | None]:
    """Files, labels and class names: class subfolders if any holds images, else unlabelled.

    Every visible subfolder is a class, even one without images, so that a train and a test
    folder with the same subfolders agree on the class ids.
    """
    with os.scandir(path) as entries:
        entries = sorted(entries, key=lambda e: e.name)
    class_dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    root_images = [(e.path, e.stat().st_size) for e in entries if _is_image(e.name) and e.is_file()]
    per_class = [_scan_images(d.path) for d in class_dirs]
    if any(per_class):
        if root_images:
            logging.warning(
                "%s has class subfolders; the %d image(s) directly in it are not used.",
                path,
                len(root_images),
            )
        files = [f for class_files in per_class for f in class_files]
        labels = [label for label, class_files in enumerate(per_class) for _ in class_files]
        return files, labels, [d.name for d in class_dirs]
    return root_images, [-1] * len(root_images), None


def _decodable(files: list[str]) -> np.ndarray:
    """Boolean mask of the files that read and decode to a non-empty image.

    One parallel tf.data pass; a file that fails raises inside the map and `ignore_errors`
    drops it, so only the indices of good files come out.
    """

    def check(i, path):
        image = decode_image(tf.io.read_file(path))
        with tf.control_dependencies([tf.debugging.assert_positive(tf.size(image))]):
            return tf.identity(i)

    ds = tf.data.Dataset.from_tensor_slices(files).enumerate()
    ds = ds.map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ok = np.zeros(len(files), bool)
    for indices in ds.ignore_errors().batch(4096).as_numpy_iterator():
        ok[indices] = True
    return ok


def _folder(spec: str, path: str, config: ml_collections.ConfigDict) -> Source:
    if not path:
        raise ValueError(f"Data source {spec!r} names no folder: use 'folder:<path>'.")
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Image folder {path!r} (from {spec!r}) does not exist.")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"Data source {spec!r}: {path!r} is a file, not a folder.")
    listed, labels, class_names = _list_folder(path)
    if not listed:
        raise ValueError(
            f"Image folder {path!r} has no images ({', '.join(IMAGE_EXTENSIONS)}), neither "
            "directly in it nor in class subfolders."
        )
    files = np.array([f for f, _ in listed])
    # Zero-byte files (interrupted copies) cannot decode; drop them without reading.
    ok = np.array([size > 0 for _, size in listed])
    if config.data.validate_images and ok.any():
        ok[ok] = _decodable(files[ok].tolist())
    skipped = int((~ok).sum())
    if skipped:
        logging.warning(
            "Skipping %d empty, unreadable or corrupt image file(s) in %s, e.g. %s",
            skipped,
            path,
            ", ".join(files[~ok][:_MAX_NAMED_BAD_FILES]),
        )
    if not ok.any():
        raise ValueError(f"Image folder {path!r} has no readable images ({skipped} skipped).")
    files_t = tf.constant(files[ok].tolist())
    kept_labels = np.array(labels, np.int64)[ok]
    labels_t = tf.constant(kept_labels)
    return Source(
        spec,
        int(ok.sum()),
        len(class_names) if class_names else None,
        skipped=skipped,
        class_names=class_names,
        lookup=lambda i: (decode_image(tf.io.read_file(files_t[i])), labels_t[i]),
        labels=kept_labels,
        example_ids=[os.path.relpath(f, path) for f in files[ok]],
    )


# ----------------------------------------------------------------------------------------------
# TensorFlow Datasets

# `name[:version]:split`, where the split may be a slice such as `train[:10%]`.
_TFDS_SPEC = re.compile(r"^(?P<name>[^:\[]+?(?::\d[\d.*]*)?):(?P<split>.+)$")


def _to_rgb_uint8(image: tf.Tensor) -> tf.Tensor:
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


# Any non-zero constant; see _pin_graph_seed.
_DATA_GRAPH_SEED = 20200613


def _pin_graph_seed() -> None:
    """Makes tensor-seeded tf.data shuffles below depend on our seed only.

    tf.data combines an op seed with the graph-level seed, which a traced dataset function
    inherits from TF's global seed. That makes the order change with `tf.random.set_seed`, and
    with a global seed of 0 (what `config.seed=0` sets) the (0, 0) check in TF's `get_seed`
    evaluates the symbolic op seed as a Python bool and fails (tensorflow#17284). Pinning the
    graph seed of the function being traced fixes both; it touches no other graph.
    """
    if not tf.executing_eagerly():
        tf.compat.v1.get_default_graph().seed = _DATA_GRAPH_SEED


@dataclasses.dataclass
class _TfdsReader:
    builder: Any
    split: str
    shuffle_buffer: int
    label_key: str | None
    num_files: int

    def _element(self, example: dict, index: tf.Tensor) -> Element:
        label = example[self.label_key] if self.label_key else tf.constant(-1, tf.int64)
        return _element(_to_rgb_uint8(example["image"]), label, index)

    def epoch(self, epoch, seed, shard_index, num_shards, per_step, steps, skip_steps=0):
        import tensorflow_datasets as tfds

        _pin_graph_seed()
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
        # Files differ in length, so a shard may hold fewer than steps * per_step examples;
        # wrapping around keeps every pipeline at exactly `steps` steps per epoch (otherwise
        # workers would go out of step).
        ds = ds.repeat().take(steps * per_step).enumerate().skip(skip_steps * per_step)
        global_batch = per_step * num_shards

        def number(count, example):
            # Numbered as the slot this example fills in the random-access layout.
            index = (count // per_step) * global_batch + shard_index * per_step + count % per_step
            return self._element(example, index)

        return ds.map(number)

    def ordered(self) -> tf.data.Dataset:
        ds = self.builder.as_dataset(split=self.split, shuffle_files=False)
        return ds.enumerate().map(lambda i, ex: self._element(ex, i))


def _tfds(spec: str, rest: str, config: ml_collections.ConfigDict) -> Source:
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
    reader = _TfdsReader(
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
    )
