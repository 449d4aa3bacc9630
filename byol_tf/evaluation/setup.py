"""What every downstream tool opens first: labelled train/test sources and the encoder.

`open_run` checks the config, loads both sources (they must have labels and the same classes,
and must not share examples), and loads the exported encoder, or, for the baselines, a randomly
initialised encoder of the same architecture (`encoders.random_init_export`).
"""

from __future__ import annotations

import dataclasses
import tempfile

import ml_collections

from byol_tf.data import Source, check_same_classes, load_source, require_labels
from byol_tf.data.pipeline import eval_dataset
from byol_tf.evaluation import config as eval_config
from byol_tf.evaluation import subsets
from byol_tf.evaluation.encoders import (
    SavedModelEncoder,
    load_encoder_layer,
    random_init_export,
    resolve_image_size,
)


@dataclasses.dataclass
class Run:
    train: Source
    test: Source
    encoder: SavedModelEncoder
    image_size: int
    num_classes: int
    init: str  # "pretrained" or "random"

    def data_record(self, num_train: int | None = None, num_test: int | None = None) -> dict:
        """The report's `data` object."""
        return {
            "train": self.train.spec,
            "test": self.test.spec,
            "num_train": int(self.train.num_examples if num_train is None else num_train),
            "num_test": int(self.test.num_examples if num_test is None else num_test),
            "num_classes": int(self.num_classes),
            "image_size": int(self.image_size),
        }


def open_sources(
    train_spec: str, test_spec: str, config: ml_collections.ConfigDict
) -> tuple[Source, Source]:
    """Both sources, checked: valid config, labels present, the same classes, no example in both."""
    eval_config.validate(config)
    train = load_source(train_spec, config)
    test = load_source(test_spec, config)
    require_labels(train, "This evaluation", "train")
    require_labels(test, "This evaluation", "test")
    check_same_classes(train, test)
    subsets.check_disjoint(train, test)
    return train, test


def open_encoder(
    encoder_path: str,
    config: ml_collections.ConfigDict,
    random_init: bool = False,
    trainable: bool = False,
    bn_source: Source | None = None,
) -> tuple[SavedModelEncoder, int]:
    """The exported encoder (or its random-initialised twin) and the image size it takes.

    The twin's BatchNorm statistics are estimated on `config.eval.random_bn_batches` test-time
    batches of `bn_source` when both are given, else left at Keras's placeholders.
    """
    size = resolve_image_size(encoder_path, config.data.image_size)
    if not random_init:
        return load_encoder_layer(encoder_path, size, trainable=trainable)
    bn_batches = None
    if bn_source is not None and config.eval.get("random_bn_batches", 0) > 0:
        ds = eval_dataset(bn_source, config, config.eval.batch_size, size)
        bn_batches = (batch["image"] for batch in ds.take(config.eval.random_bn_batches))
    # Loaded variables live in memory, so the temporary export can go at once.
    with tempfile.TemporaryDirectory(prefix="byol_random_init_") as tmp:
        path = random_init_export(encoder_path, f"{tmp}/encoder", size, config.seed, bn_batches)
        return load_encoder_layer(path, size, trainable=trainable)


def open_run(
    encoder_path: str,
    train_spec: str,
    test_spec: str,
    config: ml_collections.ConfigDict,
    random_init: bool = False,
    trainable: bool = False,
) -> Run:
    """Checks and loads everything a tool needs, failing early with errors that say what to do."""
    train, test = open_sources(train_spec, test_spec, config)
    encoder, size = open_encoder(encoder_path, config, random_init, trainable, bn_source=train)
    init = "random" if random_init else "pretrained"
    return Run(train, test, encoder, size, max(train.num_classes, test.num_classes), init)
