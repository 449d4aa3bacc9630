"""BYOL's view distributions T and T' as small, seeded, per-image TF ops: the image ops
(`ops`) and the views made of them (`views`)."""

from byol_tf.augment.ops import (
    GRAY_WEIGHTS,
    color_jitter,
    crop_draws,
    gaussian_blur,
    random_flip,
    random_resized_crop,
    solarize,
    to_grayscale,
)
from byol_tf.augment.views import augment_batch, augment_view, crop_batch, crop_view

__all__ = [
    "GRAY_WEIGHTS",
    "augment_batch",
    "augment_view",
    "color_jitter",
    "crop_batch",
    "crop_draws",
    "crop_view",
    "gaussian_blur",
    "random_flip",
    "random_resized_crop",
    "solarize",
    "to_grayscale",
]
