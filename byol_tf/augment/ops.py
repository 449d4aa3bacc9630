"""Per-image random image ops, the parts of BYOL's view distributions T and T'.

The image ops between a decoded image and the model input: the random resized crop,
horizontal flip, colour jitter in a random order, grayscale, Gaussian blur and solarisation.
`byol_tf.augment.views` chains them into one view as configured by `byol_tf.config.view_config`.
Normalising with the dataset mean/std is the model's job.

Every op takes an explicit `seed` of shape [2] (int32 or int64) and draws with stateless random
ops, one draw per image. So a seed gives the same output eagerly, in `tf.function`, in
`tf.data` and under XLA; images in a batch get their own parameters; nothing is frozen at
trace time. Images are float32 in [0, 1], NHWC. The batched ops compile with
`tf.function(jit_compile=True)` in their default `static_shapes=True` form; tf.data uses
`static_shapes=False`, which runs each op only on the images drawn for it. Probabilities are
Python floats; 0 skips an op at trace time.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import tensorflow as tf

# ITU-R 601 luma, as in DeepMind's BYOL and torchvision.
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)
_CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop tries 10 boxes before its fallback.
# Pinned so that the same seed gives the same numbers on every backend ("auto_select" may not).
_RNG_ALG = "philox"

Seed = Any  # a [2] int32/int64 tensor, or a pair of Python ints


def _check_seed(seed: Seed) -> tf.Tensor:
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64) or not seed.shape.is_compatible_with([2]):
        raise ValueError(f"seed must be an int32/int64 tensor of shape [2], got {seed!r}.")
    return seed


def _split(seed: Seed, num: int) -> tf.Tensor:
    return tf.random.experimental.stateless_split(_check_seed(seed), num, alg=_RNG_ALG)


def _uniform(seed: Seed, shape, minval: float = 0.0, maxval: float = 1.0) -> tf.Tensor:
    """Stateless U[minval, maxval) float32 draws that are bit-identical with and without XLA.

    On this TF build `stateless_uniform` with a float dtype gives different numbers under XLA,
    while its raw uint32 bits agree, so we turn 24 of those bits into a float ourselves.
    """
    bits = tf.random.stateless_uniform(
        shape, _check_seed(seed), minval=None, maxval=None, dtype=tf.uint32, alg=_RNG_ALG
    )
    unit = tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * (1.0 / (1 << 24))
    return _scale(unit, minval, maxval)


def _scale(unit: tf.Tensor, minval: float, maxval: float) -> tf.Tensor:
    """U[0, 1) draws -> U[minval, maxval)."""
    return minval + (maxval - minval) * unit


def _static_probability(p: Any, name: str) -> float | None:
    """Returns p as a float when known at trace time (checked), None for a tensor."""
    if tf.is_tensor(p):
        return None
    if not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name}={p!r} must be a probability in [0, 1].")
    return float(p)


def _check_strength(value: float, name: str, upper: float = math.inf) -> float:
    if not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= upper:
        raise ValueError(f"{name}={value!r} must be a number in [0, {upper}].")
    return float(value)


def _check_range(value, name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not 0.0 < lo <= hi:
        raise ValueError(f"{name}={tuple(value)!r} must be (low, high) with 0 < low <= high.")
    return lo, hi


def _per_image(mask: tf.Tensor) -> tf.Tensor:
    return mask[:, None, None, None]


def _maybe_apply(
    images: tf.Tensor,
    p: Any,
    seed: Seed,
    fn: Callable[[tf.Tensor, tf.Tensor | None], tf.Tensor],
    name: str,
    static_shapes: bool = True,
) -> tf.Tensor:
    """fn for each image with probability p, drawn per image; p=0/1 decided statically.

    fn(x, rows) changes the images x, which are the batch's `rows` (None: the whole batch, in
    order), so that fn can pick their per-image parameters with `_rows`. static_shapes=True
    runs fn on every image and selects; False runs it only on the images drawn (data-dependent
    shapes, for tf.data, not XLA or TPUs). The results agree up to float rounding (the blur's
    sums can differ in the last bit with the batch size).
    """
    static_p = _static_probability(p, name)
    if static_p == 0.0:
        return images
    if static_p == 1.0:
        return fn(images, None)
    apply = _uniform(seed, tf.shape(images)[:1]) < p
    if static_shapes:
        return tf.where(_per_image(apply), fn(images, None), images)
    part = tf.cast(apply, tf.int32)
    rows = tf.dynamic_partition(tf.range(tf.shape(images)[0]), part, 2)
    kept, changed = tf.dynamic_partition(images, part, 2)
    # Some ops cannot take an empty batch (REFLECT padding refuses a size-0 dimension).
    some = tf.size(rows[1]) > 0
    changed = tf.cond(some, lambda: fn(changed, rows[1]), lambda: changed)
    out = tf.dynamic_stitch(rows, [kept, changed])
    out.set_shape(images.shape)
    return out


def _rows(values: Any, rows: tf.Tensor | None) -> Any:
    """Per-image parameters (a tensor or a dict of them) for the batch rows fn was given."""
    return values if rows is None else tf.nest.map_structure(lambda t: tf.gather(t, rows), values)


def _to_float01(images: tf.Tensor) -> tf.Tensor:
    if images.dtype.is_integer:
        return tf.cast(images, tf.float32) / float(images.dtype.max)
    return tf.cast(images, tf.float32)


# ----------------------------------------------------------------------------------------------
# Random resized crop


def crop_draws(seed: Seed, batch=1) -> dict[str, tf.Tensor]:
    """The random numbers of `random_resized_crop` for `batch` images, all U[0, 1).

    One stateless draw for everything: in tf.data each image draws its own (from its own
    seed), and a random op call costs far more there than the numbers it makes. Kept apart
    from the crop so that tf.data can draw per example and crop a whole batch at once:
    `crop_batch` on the stacked draws gives exactly the images `crop_view` gives one by one.
    """
    n = _CROP_ATTEMPTS
    unit = _uniform(seed, tf.stack([batch, 2 * n + 3]))
    return dict(
        area=unit[:, :n],
        ratio=unit[:, n : 2 * n],
        offset=unit[:, 2 * n : 2 * n + 2],
        coin=unit[:, -1],
    )


def _crop_boxes(
    draws: dict[str, tf.Tensor],
    height,
    width,
    area_range: tuple[float, float],
    aspect_ratio_range: tuple[float, float],
) -> tf.Tensor:
    """[batch, 4] boxes (top, left, height, width) in whole pixels, as float32.

    torchvision's RandomResizedCrop rule: area fraction ~ U(area_range), aspect ratio
    log-uniform; the first of `_CROP_ATTEMPTS` draws that fits wins. If none fits, the largest
    centred box with its aspect ratio clamped into range (the whole image for most images).
    """
    area_lo, area_hi = area_range
    ratio_lo, ratio_hi = aspect_ratio_range
    img_h, img_w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    area = _scale(draws["area"], area_lo, area_hi) * img_h * img_w
    ratio = tf.exp(_scale(draws["ratio"], math.log(ratio_lo), math.log(ratio_hi)))
    box_w = tf.round(tf.sqrt(area * ratio))
    box_h = tf.round(tf.sqrt(area / ratio))
    fits = (box_w >= 1) & (box_w <= img_w) & (box_h >= 1) & (box_h <= img_h)
    # Index of the first fitting attempt (argmax does not promise the first of ties).
    attempt = tf.range(_CROP_ATTEMPTS)
    first = tf.reduce_min(tf.where(fits, attempt, _CROP_ATTEMPTS), axis=1)
    chosen = tf.one_hot(tf.minimum(first, _CROP_ATTEMPTS - 1), _CROP_ATTEMPTS)
    box_h = tf.reduce_sum(box_h * chosen, axis=1)
    box_w = tf.reduce_sum(box_w * chosen, axis=1)
    found = first < _CROP_ATTEMPTS

    image_ratio = img_w / img_h
    fallback_w = tf.where(image_ratio > ratio_hi, tf.round(img_h * ratio_hi), img_w)
    fallback_h = tf.where(image_ratio < ratio_lo, tf.round(img_w / ratio_lo), img_h)
    box_h = tf.where(found, box_h, fallback_h)
    box_w = tf.where(found, box_w, fallback_w)

    # Offsets uniform over the whole-pixel positions where the box fits; centred on fallback.
    u = draws["offset"]
    top = tf.minimum(tf.floor(u[:, 0] * (img_h - box_h + 1)), img_h - box_h)
    left = tf.minimum(tf.floor(u[:, 1] * (img_w - box_w + 1)), img_w - box_w)
    top = tf.where(found, top, tf.floor((img_h - box_h) / 2))
    left = tf.where(found, left, tf.floor((img_w - box_w) / 2))
    return tf.stack([top, left, box_h, box_w], axis=1)


def _sample_positions(start: tf.Tensor, length: tf.Tensor, extent, size: int):
    """Source rows (or columns) and weights for resizing a [start, start+length) span to size.

    Pixel centres of the span's first and last pixel map to the output's first and last pixel,
    which is tf.image.crop_and_resize's convention: a full box at the input size is a copy.
    """
    extent = tf.cast(extent, tf.float32)
    if size > 1:
        # Multiply before dividing so that a box as long as the output lands exactly on pixels.
        steps = tf.range(size, dtype=tf.float32)
        pos = start[:, None] + steps[None, :] * (length - 1)[:, None] / (size - 1)
    else:
        pos = (start + (length - 1) / 2)[:, None]
    pos = tf.clip_by_value(pos, 0.0, extent - 1)
    low = tf.floor(pos)
    high = tf.minimum(low + 1, extent - 1)
    return tf.cast(low, tf.int32), tf.cast(high, tf.int32), pos - low


def _crop_and_resize(images: tf.Tensor, boxes: tf.Tensor, size: int) -> tf.Tensor:
    """Bilinear crop of pixel boxes (top, left, h, w) to [B, size, size, C] float32 in [0, 1].

    Written with two gathers instead of tf.image.crop_and_resize, which has no XLA kernel. It
    gathers rows before casting, so a large uint8 image is only converted where it is read.
    """
    shape = tf.shape(images)
    top, left, box_h, box_w = tf.unstack(boxes, axis=1)
    y0, y1, wy = _sample_positions(top, box_h, shape[1], size)
    x0, x1, wx = _sample_positions(left, box_w, shape[2], size)
    upper = _to_float01(tf.gather(images, y0, axis=1, batch_dims=1))
    lower = _to_float01(tf.gather(images, y1, axis=1, batch_dims=1))
    rows = upper + (lower - upper) * wy[:, :, None, None]
    left_px = tf.gather(rows, x0, axis=2, batch_dims=1)
    right_px = tf.gather(rows, x1, axis=2, batch_dims=1)
    out = left_px + (right_px - left_px) * wx[:, None, :, None]
    return tf.clip_by_value(out, 0.0, 1.0)


def random_resized_crop(
    images: tf.Tensor,
    size: int,
    seed: Seed,
    area_range: tuple[float, float] = (0.08, 1.0),
    aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
    p: float = 1.0,
) -> tf.Tensor:
    """Crops each image of [B, H, W, C] to its own random box, resized to [B, size, size, C].

    With probability 1 - p an image is resized whole instead. Bilinear interpolation (the
    reference resizes bicubically; bilinear is what a gather-based, XLA-friendly crop gives).
    """
    images = tf.convert_to_tensor(images)
    draws = crop_draws(seed, tf.shape(images)[0])
    return _resized_crop(images, size, draws, area_range, aspect_ratio_range, p)


def _resized_crop(
    images: tf.Tensor,
    size: int,
    draws: dict[str, tf.Tensor],
    area_range: tuple[float, float],
    aspect_ratio_range: tuple[float, float],
    p: float,
) -> tf.Tensor:
    area_range = _check_range(area_range, "area_range")
    aspect_ratio_range = _check_range(aspect_ratio_range, "aspect_ratio_range")
    static_p = _static_probability(p, "crop p")
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    zeros = tf.zeros([batch], tf.float32)
    img_h, img_w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    whole = tf.stack([zeros, zeros, zeros + img_h, zeros + img_w], axis=1)
    if static_p == 0.0:
        boxes = whole
    else:
        boxes = _crop_boxes(draws, height, width, area_range, aspect_ratio_range)
        if static_p != 1.0:
            crop = draws["coin"] < p
            boxes = tf.where(crop[:, None], boxes, whole)
    return _crop_and_resize(images, boxes, size)


# ----------------------------------------------------------------------------------------------
# Post-crop ops (each per image, with probability p)


def random_flip(
    images: tf.Tensor, seed: Seed, p: float = 0.5, static_shapes: bool = True
) -> tf.Tensor:
    """Flips each image left-right with probability p."""
    flip = lambda x, rows: tf.reverse(x, axis=[2])
    return _maybe_apply(images, p, seed, flip, "flip p", static_shapes)


_JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def _jitter_params(
    seed: Seed, batch, brightness: float, contrast: float, saturation: float, hue: float
) -> dict[str, tf.Tensor]:
    """Per-image jitter draws: one [B] value per op, and order[b, i] = op at position i."""
    seeds = tf.unstack(_split(seed, 5))
    return dict(
        brightness=_uniform(seeds[0], [batch], -brightness, brightness),
        contrast=_uniform(seeds[1], [batch], max(0.0, 1 - contrast), 1 + contrast),
        saturation=_uniform(seeds[2], [batch], max(0.0, 1 - saturation), 1 + saturation),
        hue=_uniform(seeds[3], [batch], -hue, hue),
        # A uniformly random permutation per image: the ranks of four uniforms.
        order=tf.argsort(_uniform(seeds[4], tf.stack([batch, 4])), axis=1, stable=True),
    )


def _adjust_contrast(images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    # Around each image's per-channel mean, like tf.image.adjust_contrast and DeepMind's BYOL
    # (torchvision uses the mean of the grayscale image instead).
    mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
    return (images - mean) * _per_image(factor) + mean


def _adjust_hsv(images: tf.Tensor, saturation: tf.Tensor, hue: tf.Tensor) -> tf.Tensor:
    """Scales HSV saturation and rotates hue (in turns) per image, like tf.image.adjust_*."""
    h, s, v = tf.unstack(tf.image.rgb_to_hsv(images), axis=-1)
    h = h + hue[:, None, None]
    h = h - tf.floor(h)
    s = tf.clip_by_value(s * saturation[:, None, None], 0.0, 1.0)
    return tf.image.hsv_to_rgb(tf.stack([h, s, v], axis=-1))


def _apply_jitter(images: tf.Tensor, params: dict[str, tf.Tensor], enabled: set[str]) -> tf.Tensor:
    """Runs the enabled ops in each image's own order, clipping to [0, 1] after each op.

    At every position each image selects the result of its op there. Saturation and hue share
    one HSV round trip: an image uses only one of them at a position, the other at identity.
    """
    x = images
    clip = lambda t: tf.clip_by_value(t, 0.0, 1.0)
    for position in range(len(_JITTER_OPS)):
        op = params["order"][:, position]
        is_op = {name: tf.equal(op, i) for i, name in enumerate(_JITTER_OPS)}
        if "brightness" in enabled:
            bright = clip(x + _per_image(params["brightness"]))
            x = tf.where(_per_image(is_op["brightness"]), bright, x)
        if "contrast" in enabled:
            contrasted = clip(_adjust_contrast(x, params["contrast"]))
            x = tf.where(_per_image(is_op["contrast"]), contrasted, x)
        if enabled & {"saturation", "hue"}:
            sat = tf.where(is_op["saturation"], params["saturation"], 1.0)
            hue = tf.where(is_op["hue"], params["hue"], 0.0)
            hsv_op = is_op["saturation"] | is_op["hue"]
            x = tf.where(_per_image(hsv_op), clip(_adjust_hsv(x, sat, hue)), x)
    return x


def _apply_jitter_partitioned(
    images: tf.Tensor, params: dict[str, tf.Tensor], enabled: set[str]
) -> tf.Tensor:
    """`_apply_jitter`'s result, with each op run only on the images that take it.

    At each position the batch is split by op (brightness, contrast, or the HSV pair), each
    part gets its op and the parts are stitched back: four op evaluations per image instead of
    twelve. The parts have data-dependent sizes, so this is for tf.data and eager code, not for
    XLA or TPUs; `static_shapes=True` keeps `_apply_jitter` there.
    """
    x = images
    clip = lambda t: tf.clip_by_value(t, 0.0, 1.0)
    index = tf.range(tf.shape(images)[0])
    for position in range(len(_JITTER_OPS)):
        op = params["order"][:, position]
        group = tf.minimum(op, 2)  # 0 brightness, 1 contrast, 2 saturation or hue (one HSV trip)
        xs = tf.dynamic_partition(x, group, 3)
        ids = tf.dynamic_partition(index, group, 3)
        part = {k: tf.dynamic_partition(params[k], group, 3) for k in _JITTER_OPS}
        bright, contrasted, hsv = xs
        if "brightness" in enabled:
            bright = clip(bright + _per_image(part["brightness"][0]))
        if "contrast" in enabled:
            contrasted = clip(_adjust_contrast(contrasted, part["contrast"][1]))
        if enabled & {"saturation", "hue"}:
            hsv_op = tf.dynamic_partition(op, group, 3)[2]
            sat = tf.where(tf.equal(hsv_op, 2), part["saturation"][2], 1.0)
            hue = tf.where(tf.equal(hsv_op, 3), part["hue"][2], 0.0)
            hsv = clip(_adjust_hsv(hsv, sat, hue))
        x = tf.dynamic_stitch(ids, [bright, contrasted, hsv])
        x.set_shape(images.shape)
    return x


def color_jitter(
    images: tf.Tensor,
    seed: Seed,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    p: float,
    static_shapes: bool = True,
) -> tf.Tensor:
    """With probability p per image, the four colour ops in a random per-image order.

    static_shapes: True computes every op for every image and selects (static shapes, for
    XLA and TPUs); False runs each op only on its images (about 3x less work, for tf.data).
    Both give the same images.

    brightness: additive delta ~ U[-b, b] (DeepMind; torchvision multiplies).
    contrast, saturation: factor ~ U[max(0, 1-s), 1+s]; saturation scales HSV saturation.
    hue: shift ~ U[-h, h] in turns of the colour wheel (torchvision's hue=0.1 convention).
    A strength of 0 turns its op off.
    """
    strengths = dict(
        brightness=_check_strength(brightness, "brightness"),
        contrast=_check_strength(contrast, "contrast"),
        saturation=_check_strength(saturation, "saturation"),
        hue=_check_strength(hue, "hue", upper=0.5),
    )
    enabled = {name for name, value in strengths.items() if value > 0}
    if not enabled:
        _static_probability(p, "jitter p")
        return images
    coin_seed, param_seed = tf.unstack(_split(seed, 2))
    params = _jitter_params(param_seed, tf.shape(images)[0], **strengths)
    apply = _apply_jitter if static_shapes else _apply_jitter_partitioned
    jitter = lambda x, rows: apply(x, _rows(params, rows), enabled)
    return _maybe_apply(images, p, coin_seed, jitter, "jitter p", static_shapes)


def _grayscale(images: tf.Tensor) -> tf.Tensor:
    luma = tf.reduce_sum(images * tf.constant(GRAY_WEIGHTS, images.dtype), axis=-1, keepdims=True)
    return tf.broadcast_to(luma, tf.shape(images))


def to_grayscale(images: tf.Tensor, seed: Seed, p: float, static_shapes: bool = True) -> tf.Tensor:
    """Replaces each image by its luma (kept as 3 channels) with probability p."""
    gray = lambda x, rows: _grayscale(x)
    return _maybe_apply(images, p, seed, gray, "grayscale p", static_shapes)


def _blur_radius(side: int, kernel_fraction: float) -> int:
    # DeepMind: kernel = side // 10, radius = kernel // 2, taps = 2 * radius + 1 (23 at 224 px).
    # At least one tap each side; reflect padding needs radius < side.
    return max(0, min(max(1, int(kernel_fraction * side) // 2), side - 1))


def _blur_axis(images: tf.Tensor, sigma: tf.Tensor, radius: int, axis: int) -> tf.Tensor:
    """1-D Gaussian along axis 1 or 2 with one sigma per image, as a sum of shifted copies."""
    if radius == 0:
        return images
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    weights = tf.exp(-tf.square(taps)[None, :] / (2.0 * tf.square(sigma)[:, None]))
    weights /= tf.reduce_sum(weights, axis=1, keepdims=True)
    paddings = [[0, 0]] * 4
    paddings[axis] = [radius, radius]
    padded = tf.pad(images, paddings, mode="REFLECT")  # torchvision's choice; keeps the mean
    length = images.shape[axis]
    out = tf.zeros_like(images)
    for i in range(2 * radius + 1):
        shifted = padded[:, i : i + length] if axis == 1 else padded[:, :, i : i + length]
        out += _per_image(weights[:, i]) * shifted
    return out


def gaussian_blur(
    images: tf.Tensor,
    seed: Seed,
    p: float,
    sigma_range: tuple[float, float] = (0.1, 2.0),
    kernel_fraction: float = 0.1,
    static_shapes: bool = True,
) -> tf.Tensor:
    """Separable Gaussian blur, sigma ~ U(sigma_range) per image, with probability p.

    The kernel has 2 * (kernel_fraction * side // 2) + 1 taps along each axis, so images need a
    static height and width.
    """
    sigma_lo, sigma_hi = _check_range(sigma_range, "sigma_range")
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        raise ValueError(
            f"gaussian_blur needs a static image height and width, got {images.shape}; "
            "crop to a fixed size first."
        )
    coin_seed, sigma_seed = tf.unstack(_split(seed, 2))
    sigma = _uniform(sigma_seed, tf.shape(images)[:1], sigma_lo, sigma_hi)

    def blur(x, rows):
        x_sigma = _rows(sigma, rows)
        x = _blur_axis(x, x_sigma, _blur_radius(height, kernel_fraction), axis=1)
        x = _blur_axis(x, x_sigma, _blur_radius(width, kernel_fraction), axis=2)
        return tf.clip_by_value(x, 0.0, 1.0)

    return _maybe_apply(images, p, coin_seed, blur, "blur p", static_shapes)


def solarize(
    images: tf.Tensor, seed: Seed, p: float, threshold: float = 0.5, static_shapes: bool = True
) -> tf.Tensor:
    """x < threshold ? x : 1 - x on [0, 1] images (threshold 0.5, not 128), with probability p."""
    flip_bright = lambda x, rows: tf.where(x < threshold, x, 1.0 - x)
    return _maybe_apply(images, p, seed, flip_bright, "solarize p", static_shapes)
