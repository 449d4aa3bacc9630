"""Writes the online encoder out for downstream use: a SavedModel plus a `.keras` file.

The SavedModel's `serving_default` signature takes `images`, float32 [N, H, W, 3] in [0, 1],
and returns `representation` [N, D]. Input normalisation is inside the encoder, so users
feed plain [0, 1] images. A second endpoint, `representation_train`, runs the encoder in
training mode (batch statistics), which fine-tuning from the SavedModel needs.
`assets.extra/byol_tf.json` (a file TensorFlow's loaders ignore) records the image size the
encoder was trained at, which the downstream tools use unless told otherwise.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from byol_tf.platform import files as io

SIGNATURE_INPUT = "images"
SIGNATURE_OUTPUT = "representation"
EXPORT_INFO = os.path.join("assets.extra", "byol_tf.json")


def export_encoder(encoder: keras.Model, directory: str, image_size: int) -> str:
    """Exports `encoder` to `directory` (SavedModel) and `directory + '.keras'`.

    The spatial size in the signature is left open when the encoder accepts it (our ResNets
    pool globally); otherwise it is fixed to `image_size`. Returns `directory`.
    """
    spatial = None if _accepts_any_size(encoder, image_size) else image_size
    spec = tf.TensorSpec([None, spatial, spatial, 3], tf.float32, name=SIGNATURE_INPUT)
    archive = keras.export.ExportArchive()
    archive.track(encoder)
    archive.add_endpoint(
        name="serving_default",
        fn=lambda images: {SIGNATURE_OUTPUT: tf.cast(encoder(images, training=False), tf.float32)},
        input_signature=[spec],
    )
    archive.add_endpoint(
        name="representation_train",
        fn=lambda images: {SIGNATURE_OUTPUT: tf.cast(encoder(images, training=True), tf.float32)},
        input_signature=[spec],
    )
    write_archive(archive, directory, info={"image_size": int(image_size)})
    try:
        encoder.save(directory.rstrip("/") + ".keras")
    except (TypeError, ValueError, NotImplementedError) as e:  # a user model that won't serialise
        print(f"Warning: could not write {directory}.keras ({e}); the SavedModel is complete.")
    return directory


def write_archive(
    archive: keras.export.ExportArchive, directory: str, info: dict | None = None
) -> str:
    """Writes `archive` as a SavedModel to `directory`, replacing what is there, with `info`
    in its `EXPORT_INFO` file.

    On a local disk it is written next to the destination and renamed, so a crash never leaves
    half an export in place. Object stores cannot rename a directory, so there it is written
    in place, `saved_model.pb` last: a SavedModel without it is not loadable, and the next
    export replaces it.
    """
    remote = io.is_remote(directory)
    tmp = directory if remote else directory.rstrip("/") + ".tmp"
    io.remove(tmp)
    archive.write_out(tmp, verbose=False)
    if info:
        io.makedirs(os.path.join(tmp, os.path.dirname(EXPORT_INFO)))
        with io.open_file(os.path.join(tmp, EXPORT_INFO), "w") as f:
            json.dump(info, f)
    if not remote:
        io.remove(directory)
        io.rename(tmp, directory)
    return directory


def load_encoder(directory: str):
    """Loads an exported SavedModel; call `.signatures['serving_default'](images=...)`."""
    if not tf.saved_model.contains_saved_model(directory):
        raise FileNotFoundError(f"No SavedModel at {directory!r}.")
    return tf.saved_model.load(directory)


def export_info(directory: str) -> dict:
    """What `export_encoder` recorded beside the SavedModel (`image_size`); {} for SavedModels
    from elsewhere or from before it was recorded."""
    return io.read_json(os.path.join(directory, EXPORT_INFO)) or {}


def _accepts_any_size(encoder: keras.Model, image_size: int) -> bool:
    try:
        probe = tf.zeros([1, image_size + 8, image_size + 8, 3])
        return encoder(probe, training=False).shape.rank == 2
    except (ValueError, tf.errors.InvalidArgumentError):
        return False
