"""Exported encoders as Keras layers: loading, checks, random-initialised twins.

`SavedModelEncoder` is Keras's `TFSMLayer` over an exported encoder (`byol_tf.models.export`): its
weights are the SavedModel's own restored variables, so an optimizer updates exactly what the
traced functions read. `training=False` calls `serving_default` (BatchNorm uses its moving
statistics); `training=True` calls `representation_train`, which normalises with batch
statistics and updates the moving statistics, as a Keras model in training mode does. A
SavedModel from elsewhere that has only `serving_default` still works; it is then run in
inference mode during fine-tuning too (a warning says so).

A randomly initialised twin (the baselines) needs the architecture, which a SavedModel does
not hold (only traced functions and variable values): it is rebuilt from the `.keras` file
that `export_encoder` writes beside the SavedModel, re-initialised with a seed, and exported
to a new SavedModel, so the baseline runs through exactly the same code path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import keras
import tensorflow as tf
from absl import logging

from byol_tf.models.bn_stats import estimate_batchnorm_statistics
from byol_tf.models.export import SIGNATURE_INPUT, SIGNATURE_OUTPUT, export_encoder, export_info
from byol_tf.platform import files as io

SERVING_ENDPOINT = "serving_default"
TRAINING_ENDPOINT = "representation_train"
# The image size for an encoder that records none (a SavedModel from elsewhere, or an older
# export) when data.image_size is left at 0.
FALLBACK_IMAGE_SIZE = 32
_HELP = (
    "Pass the directory written by tools/train.py (<workdir>/export/encoder), "
    "tools/export_encoder.py or byol_tf.export_encoder."
)


def check_saved_model(path: str) -> str:
    """Returns `path` if it holds a SavedModel; otherwise an error that says what is wrong."""
    if not path:
        raise ValueError(f"No encoder given: --encoder is empty. {_HELP}")
    if not io.exists(path):
        raise FileNotFoundError(f"Encoder SavedModel {path!r} does not exist. {_HELP}")
    if not io.isdir(path) or not tf.saved_model.contains_saved_model(path):
        raise ValueError(
            f"{path!r} is not a SavedModel directory (no saved_model.pb in it). {_HELP}"
        )
    return path


def endpoints(path: str) -> set[str]:
    """Names of the functions and signatures a SavedModel offers, read without loading it."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with io.open_file(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    names = set()
    not_endpoints = {"variables", "trainable_variables", "non_trainable_variables", "signatures"}
    for meta in proto.meta_graphs:
        names.update(k for k in meta.signature_def if not k.startswith("__"))
        if meta.object_graph_def.nodes:
            names.update(c.local_name for c in meta.object_graph_def.nodes[0].children)
    return {n for n in names if not n.startswith("_") and n not in not_endpoints}


class SavedModelEncoder(keras.layers.TFSMLayer):
    """An exported encoder: float32 images [N, H, W, 3] in [0, 1] -> representation [N, D]."""

    def __init__(self, path: str, trainable: bool = False, name: str = "encoder"):
        found = endpoints(check_saved_model(path))
        if SERVING_ENDPOINT not in found:
            raise ValueError(
                f"The SavedModel {path!r} has no '{SERVING_ENDPOINT}' endpoint mapping images "
                f"to a representation (it has: {', '.join(sorted(found)) or 'nothing'}). {_HELP}"
            )
        training_endpoint = TRAINING_ENDPOINT if TRAINING_ENDPOINT in found else None
        if trainable and training_endpoint is None:
            logging.warning(
                "The SavedModel %s has no '%s' endpoint: fine-tuning runs it in inference mode "
                "(BatchNorm keeps its moving statistics). Export with byol_tf.export_encoder "
                "to get both endpoints.",
                path,
                TRAINING_ENDPOINT,
            )
        super().__init__(path, SERVING_ENDPOINT, training_endpoint, trainable=trainable, name=name)
        self.has_training_endpoint = training_endpoint is not None

    def _endpoint_input_spec(self, fn) -> tf.TensorSpec | None:
        specs = getattr(fn, "input_signature", None)
        if specs:
            return specs[0]
        kwargs = getattr(fn, "structured_input_signature", ((), {}))[1]
        return next(iter(kwargs.values()), None)

    @property
    def fixed_image_size(self) -> int | None:
        """The spatial size the SavedModel's signature fixes, or None when any size works."""
        spec = self._endpoint_input_spec(self.call_endpoint_fn)
        if spec is None or spec.shape.rank != 4:
            return None
        return spec.shape[1]

    def call(self, images, training=False):
        fn = self.call_endpoint_fn
        if training and self.call_training_endpoint:
            fn = self.call_training_endpoint_fn
        images = tf.cast(images, tf.float32)
        if getattr(fn, "input_signature", None) is not None:
            out = fn(images)
        else:  # a signature: keyword arguments only
            name = next(iter(fn.structured_input_signature[1]), SIGNATURE_INPUT)
            out = fn(**{name: images})
        if isinstance(out, dict):
            out = out.get(SIGNATURE_OUTPUT, next(iter(out.values())) if len(out) == 1 else None)
        if out is None or out.shape.rank != 2:
            raise ValueError(
                f"The SavedModel {self.filepath!r} does not return a [N, D] representation "
                f"from '{SERVING_ENDPOINT}'. {_HELP}"
            )
        return tf.cast(out, tf.float32)


def resolve_image_size(path: str, image_size: int) -> int:
    """`image_size` if set (> 0); else the size the encoder at `path` was trained at, as its
    export recorded it; else `FALLBACK_IMAGE_SIZE`, with a warning."""
    if image_size > 0:
        return image_size
    trained = export_info(path).get("image_size")
    if trained:
        logging.info("Using the encoder's training image size, %d px (%s).", trained, path)
        return int(trained)
    logging.warning(
        "%s does not record the image size it was trained at; using %d px. Set "
        "--config.data.image_size to the training size.",
        path,
        FALLBACK_IMAGE_SIZE,
    )
    return FALLBACK_IMAGE_SIZE


def load_encoder_layer(
    path: str, image_size: int, trainable: bool = False
) -> tuple[SavedModelEncoder, int]:
    """The encoder at `path` and the image size to feed it (its own, if its signature fixes one).

    Runs it once on a small batch, so a SavedModel that does not map images to a representation
    fails here with a clear error rather than mid-training.
    """
    encoder = SavedModelEncoder(path, trainable=trainable)
    image_size = resolve_image_size(path, image_size)
    fixed = encoder.fixed_image_size
    if fixed is not None and fixed != image_size:
        logging.warning(
            "The encoder %s takes %d px images; using %d instead of data.image_size=%d.",
            path,
            fixed,
            fixed,
            image_size,
        )
        image_size = fixed
    try:
        encoder(tf.zeros([2, image_size, image_size, 3]))
    except (tf.errors.InvalidArgumentError, TypeError) as e:
        raise ValueError(
            f"The SavedModel {path!r} could not encode a batch of {image_size} px images: {e}"
        ) from e
    return encoder, image_size


def keras_file(path: str) -> str:
    return path.rstrip("/") + ".keras"


def random_init_encoder(
    path: str, image_size: int, seed: int, bn_batches: Iterable[tf.Tensor] | None = None
) -> keras.Model:
    """A randomly initialised Keras encoder of the architecture of the SavedModel at `path`.

    The architecture comes from `<path>.keras` (written by `export_encoder`); the weights are
    drawn afresh from its initialisers, seeded by `seed`. Its BatchNorm layers keep Keras's
    placeholder moving statistics (the identity in inference mode) unless `bn_batches` are
    given: then the statistics are estimated on them, weights untouched (`models.bn_stats`).
    """
    check_saved_model(path)
    model_file = keras_file(path)
    if not os.path.isfile(model_file):
        raise FileNotFoundError(
            f"A random-initialised baseline needs the encoder's architecture, which a SavedModel "
            f"does not hold: {model_file!r} (written next to the SavedModel by "
            "byol_tf.export_encoder) is missing. Re-export the encoder with "
            "tools/export_encoder.py, or export your own model with byol_tf.export_encoder."
        )
    import byol_tf.models  # noqa: F401  (registers the classes the .keras file names)

    trained = keras.models.load_model(model_file, compile=False)
    keras.utils.set_random_seed(seed)
    fresh = keras.models.clone_model(trained)  # new variables from the initialisers
    fresh(tf.zeros([2, image_size, image_size, 3]), training=False)
    if bn_batches is not None:
        estimate_batchnorm_statistics(fresh, bn_batches)
    return fresh


def random_init_export(
    path: str,
    output: str,
    image_size: int,
    seed: int,
    bn_batches: Iterable[tf.Tensor] | None = None,
) -> str:
    """Exports `random_init_encoder(path, image_size, seed, bn_batches)` to `output`."""
    fresh = random_init_encoder(path, image_size, seed, bn_batches)
    return export_encoder(fresh, output, image_size)
