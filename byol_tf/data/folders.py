"""Image-folder sources (`folder:<path>`): class subfolders give labels, a flat folder none.

Every image file under the folder is listed (JPEG, PNG, GIF, BMP) in sorted path order; a
parallel pre-scan (`data.validate_images`) finds files that do not decode, which are skipped
with a warning that names them and counted, and notes whether all images share one size (then
the pretraining pipeline crops whole batches). Grayscale and RGBA images become RGB.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from byol_tf.data.source import Source, one_shape

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
_MAX_NAMED_BAD_FILES = 5


def decode_image(contents: tf.Tensor) -> tf.Tensor:
    """JPEG/PNG/GIF/BMP bytes -> uint8 [H, W, 3]: grayscale becomes RGB, alpha is dropped."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return image


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _remote(path: str) -> bool:
    """A path on another TensorFlow file system (gs://, ram://, ...): listed through tf.io.gfile."""
    return "://" in path


def _entries(directory: str) -> list[tuple[str, str, bool]]:
    """(name, path, is a directory) of what `directory` holds, sorted by name."""
    if not _remote(directory):
        with os.scandir(directory) as entries:
            return sorted((e.name, e.path, e.is_dir()) for e in entries)
    out = []
    for name in tf.io.gfile.listdir(directory):
        name = name.rstrip("/")
        path = directory.rstrip("/") + "/" + name
        out.append((name, path, tf.io.gfile.isdir(path)))
    return sorted(out)


def _size(path: str) -> int:
    return os.stat(path).st_size if not _remote(path) else tf.io.gfile.stat(path).length


def _scan_images(directory: str) -> list[tuple[str, int]]:
    """(path, size in bytes) of every image file under `directory`, sorted by path."""
    found = []
    stack = [directory]
    while stack:
        for name, path, is_dir in _entries(stack.pop()):
            if is_dir and not name.startswith("."):
                stack.append(path)
            elif not is_dir and _is_image(name):
                found.append((path, _size(path)))
    return sorted(found)


def _list_folder(path: str) -> tuple[list[tuple[str, int]], list[int], list[str] | None]:
    """Files, labels and class names: class subfolders if any holds images, else unlabelled.

    Every visible subfolder is a class, even one without images, so that a train and a test
    folder with the same subfolders agree on the class ids.
    """
    entries = _entries(path)
    class_dirs = [(name, p) for name, p, is_dir in entries if is_dir and not name.startswith(".")]
    root_images = [(p, _size(p)) for name, p, is_dir in entries if not is_dir and _is_image(name)]
    per_class = [_scan_images(p) for _, p in class_dirs]
    if any(per_class):
        if root_images:
            logging.warning(
                "%s has class subfolders; the %d image(s) directly in it are not used.",
                path,
                len(root_images),
            )
        files = [f for class_files in per_class for f in class_files]
        labels = [label for label, class_files in enumerate(per_class) for _ in class_files]
        return files, labels, [name for name, _ in class_dirs]
    return root_images, [-1] * len(root_images), None


def _prescan(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which files read and decode to a non-empty image, and the [H, W, 3] of each one that does.

    One parallel tf.data pass; a file that fails raises inside the map and `ignore_errors`
    drops it, so only the indices (and shapes) of good files come out.
    """

    def check(i, path):
        image = decode_image(tf.io.read_file(path))
        with tf.control_dependencies([tf.debugging.assert_positive(tf.size(image))]):
            return tf.identity(i), tf.shape(image)

    ds = tf.data.Dataset.from_tensor_slices(files).enumerate()
    ds = ds.map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ok = np.zeros(len(files), bool)
    shapes = np.zeros((len(files), 3), np.int64)
    for indices, batch_shapes in ds.ignore_errors().batch(4096).as_numpy_iterator():
        ok[indices] = True
        shapes[indices] = batch_shapes
    return ok, shapes


def open_folder(spec: str, path: str, config: ml_collections.ConfigDict) -> Source:
    if not path:
        raise ValueError(f"Data source {spec!r} names no folder: use 'folder:<path>'.")
    path = path if _remote(path) else os.path.expanduser(path)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Image folder {path!r} (from {spec!r}) does not exist.")
    if not tf.io.gfile.isdir(path):
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
    image_shape = None
    if config.data.validate_images and ok.any():
        decoded, shapes = _prescan(files[ok].tolist())
        ok[ok] = decoded
        image_shape = one_shape(shapes[decoded])
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
        image_shape=image_shape,
    )
