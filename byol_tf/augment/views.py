"""BYOL's views T and T': the image ops of `byol_tf.augment.ops` chained as a view's config
(`byol_tf.config.view_config`) says, with one seed per view.

`crop_view` / `crop_batch` make the random resized crop (per example in tf.data, or for a batch
of same-size images with per-image draws); `augment_batch` runs everything after the crop in
DeepMind's order; `augment_view` does both.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from byol_tf.augment.ops import (
    Seed,
    _resized_crop,
    _split,
    _to_float01,
    color_jitter,
    gaussian_blur,
    random_flip,
    random_resized_crop,
    solarize,
    to_grayscale,
)


def crop_view(image: tf.Tensor, view: Any, size: int, seed: Seed) -> tf.Tensor:
    """One image [H, W, C] (uint8 or float) -> [size, size, C] float32 in [0, 1].

    The per-example crop for tf.data, where image sizes differ; reads view.crop_p, crop_area
    and crop_aspect_ratio.
    """
    image = tf.convert_to_tensor(image)
    if image.shape.rank != 3:
        raise ValueError(f"crop_view takes one [H, W, C] image, got shape {image.shape}.")
    return _view_crop(image[None], view, size, seed)[0]


def _view_crop(images: tf.Tensor, view: Any, size: int, seed: Seed) -> tf.Tensor:
    area, ratio = tuple(view.crop_area), tuple(view.crop_aspect_ratio)
    return random_resized_crop(images, size, seed, area, ratio, p=view.crop_p)


def crop_batch(images: tf.Tensor, view: Any, size: int, draws: dict[str, tf.Tensor]) -> tf.Tensor:
    """`crop_view` for a batch of same-size images [B, H, W, C], each with its own draws.

    `draws` holds one `crop_draws(seed)` per image, stacked: the same images as calling
    `crop_view(images[i], view, size, seed_i)` for each i, with a few batched ops instead of
    dozens of small ops per image.
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ValueError(f"crop_batch takes a batch [B, H, W, C], got shape {images.shape}.")
    # Per-image draws are stacked as [B, 1, ...]; the crop wants [B, ...].
    draws = {k: tf.reshape(v, tf.concat([[-1], tf.shape(v)[2:]], 0)) for k, v in draws.items()}
    area, ratio = tuple(view.crop_area), tuple(view.crop_aspect_ratio)
    return _resized_crop(images, size, draws, area, ratio, view.crop_p)


def augment_batch(
    images: tf.Tensor, view: Any, seed: Seed, static_shapes: bool = True
) -> tf.Tensor:
    """Everything after the crop for one view on [B, S, S, 3] in [0, 1], in DeepMind's order:
    flip, colour jitter, grayscale, blur, solarize. Returns float32 in [0, 1], not normalised.

    static_shapes=False runs each op only on the images that take it, with data-dependent
    shapes (faster; tf.data only, not inside an XLA-compiled or TPU step); the images are the
    same either way, up to float rounding (tested to 1e-6).
    """
    x = _to_float01(tf.convert_to_tensor(images))
    seeds = tf.unstack(_split(seed, 5))
    x = random_flip(x, seeds[0], view.flip_p, static_shapes)
    x = color_jitter(
        x,
        seeds[1],
        view.brightness,
        view.contrast,
        view.saturation,
        view.hue,
        view.jitter_p,
        static_shapes,
    )
    x = to_grayscale(x, seeds[2], view.grayscale_p, static_shapes)
    x = gaussian_blur(
        x,
        seeds[3],
        view.blur_p,
        tuple(view.blur_sigma),
        view.blur_kernel_fraction,
        static_shapes,
    )
    x = solarize(x, seeds[4], view.solarize_p, view.solarize_threshold, static_shapes)
    return tf.clip_by_value(x, 0.0, 1.0)


def augment_view(images: tf.Tensor, view: Any, seed: Seed, size: int) -> tf.Tensor:
    """random_resized_crop (with view.crop_*) then augment_batch, for a same-size batch."""
    crop_seed, rest_seed = tf.unstack(_split(seed, 2))
    return augment_batch(_view_crop(images, view, size, crop_seed), view, rest_seed)
