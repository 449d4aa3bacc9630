"""Data: named sources, the embedded synthetic shapes dataset, and the input pipelines."""

from byol_tf.data.pipeline import (
    batch_augment_seed,
    bn_free_init_batch,
    center_crop_resize,
    channel_statistics,
    crop_seed,
    eval_dataset,
    pretrain_dataset,
    steps_per_epoch,
)
from byol_tf.data.sources import Source, check_same_classes, load_source, require_labels
from byol_tf.data.synthetic import make_synthetic
from byol_tf.data.tf_dataset import from_dataset

__all__ = [
    "Source",
    "batch_augment_seed",
    "bn_free_init_batch",
    "center_crop_resize",
    "channel_statistics",
    "check_same_classes",
    "crop_seed",
    "eval_dataset",
    "from_dataset",
    "load_source",
    "make_synthetic",
    "pretrain_dataset",
    "require_labels",
    "steps_per_epoch",
]
