"""byol_tf.augment: each op's math against NumPy or tf.image, per-image randomness, empirical
probabilities, and identical results eagerly, in tf.data and under XLA."""

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

from byol_tf import augment
from byol_tf.augment import ops as augment_ops
from byol_tf.config import view_config

VIEW1 = view_config(blur_p=1.0, solarize_p=0.0)
VIEW2 = view_config(blur_p=0.1, solarize_p=0.2)
SEED = tf.constant([3, 7], tf.int64)


def _images(shape, low=0.0, high=1.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


def _seed(i):
    return tf.constant([11, i], tf.int32)


def _assert_frequency(applied: np.ndarray, p: float):
    """Applied fraction within 4.5 standard errors of p (exact for p in {0, 1})."""
    n = applied.size
    tolerance = 4.5 * math.sqrt(p * (1 - p) / n)
    assert abs(applied.mean() - p) <= tolerance, (applied.mean(), p, tolerance)


def _changed(out, x, atol=1e-6):
    return np.abs(np.asarray(out) - np.asarray(x)).reshape(len(x), -1).max(axis=1) > atol


def _unchanged_or(out, x, transformed, atol=1e-6):
    """Per image: True where the output is the transformed image; asserts the rest are exact
    copies of the input, so a half-applied op cannot pass as "not applied"."""
    out = np.asarray(out)
    applied = ~_changed(out, transformed, atol)
    np.testing.assert_array_equal(out[~applied], np.asarray(x)[~applied])
    return applied


# --- Shapes, ranges, eager vs tf.data vs XLA -----------------------------------------------------

BATCH_OPS = {
    "crop": lambda x, s: augment.random_resized_crop(x, 12, s),
    "flip": lambda x, s: augment.random_flip(x, s, 0.5),
    "jitter": lambda x, s: augment.color_jitter(x, s, 0.4, 0.4, 0.2, 0.1, 0.8),
    "grayscale": lambda x, s: augment.to_grayscale(x, s, 0.5),
    "blur": lambda x, s: augment.gaussian_blur(x, s, 0.5),
    "solarize": lambda x, s: augment.solarize(x, s, 0.5),
    "augment_batch": lambda x, s: augment.augment_batch(x, VIEW2, s),
    "augment_view": lambda x, s: augment.augment_view(x, VIEW1, s, 12),
}


@pytest.mark.parametrize("name", sorted(BATCH_OPS))
def test_op_shape_range_and_tf_data_matches_eager(name):
    op = BATCH_OPS[name]
    x = _images((8, 16, 16, 3))
    eager = op(x, SEED).numpy()
    size = 12 if name in ("crop", "augment_view") else 16
    assert eager.shape == (8, size, size, 3) and eager.dtype == np.float32
    assert eager.min() >= 0.0 and eager.max() <= 1.0
    ds = tf.data.Dataset.from_tensors((x, SEED)).map(op)
    np.testing.assert_allclose(next(iter(ds)).numpy(), eager, atol=1e-6)


def test_augment_view_under_xla_matches_eager():
    x = _images((8, 16, 16, 3))
    fn = lambda x, s: augment.augment_view(x, VIEW2, s, 12)
    compiled = tf.function(fn, jit_compile=True)(x, SEED)
    # Same random draws; only float rounding of the HSV conversion may differ.
    np.testing.assert_allclose(compiled.numpy(), fn(x, SEED).numpy(), atol=1e-5)


def test_crop_view_per_example_in_tf_data_matches_eager():
    images = [
        tf.constant(_images((20, 30, 3), seed=1) * 255, tf.uint8),
        tf.constant(_images((17, 13, 3), seed=2) * 255, tf.uint8),
    ]
    first, second = (tf.data.Dataset.from_tensors(image) for image in images)
    ds = first.concatenate(second)  # element shape [None, None, 3]
    base = tf.constant([5, 9], tf.int64)
    # fold_in's result takes the dtype of its data: keep the index int64 both ways.
    seed_of = lambda i: tf.random.experimental.stateless_fold_in(base, tf.cast(i, tf.int64))
    ds = ds.enumerate().map(lambda i, img: augment.crop_view(img, VIEW1, 8, seed_of(i)))
    for i, got in enumerate(ds):
        want = augment.crop_view(images[i], VIEW1, 8, seed_of(i))
        assert got.shape == (8, 8, 3) and got.dtype == tf.float32
        # Graph rewrites may turn the /255 into a multiply: allow float rounding.
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


def test_crop_batch_on_stacked_draws_gives_the_per_image_crops():
    """tf.data draws each image's crop numbers alone and crops the batch: same as one by one."""
    view = view_config(1.0, 0.0)
    view.crop_p = 0.5  # the coin decides per image too
    images = (_images((12, 20, 16, 3)) * 255).astype(np.uint8)
    seeds = [tf.constant([4, i], tf.int64) for i in range(12)]
    draws = [augment.crop_draws(seed) for seed in seeds]
    stacked = {k: tf.stack([d[k] for d in draws]) for k in draws[0]}
    got = augment.crop_batch(images, view, 10, stacked).numpy()
    want = np.stack([augment.crop_view(img, view, 10, s).numpy() for img, s in zip(images, seeds)])
    np.testing.assert_array_equal(got, want)
    resized = view.copy_and_resolve_references()
    resized.crop_p = 0.0
    whole = [np.allclose(w, augment.crop_view(i, resized, 10, SEED)) for w, i in zip(want, images)]
    assert 0 < sum(whole) < 12  # some images cropped, some resized whole
    with pytest.raises(ValueError, match="batch"):
        augment.crop_batch(images[0], view, 10, stacked)


def test_crop_view_scales_uint8_to_unit_range():
    view = view_config(1.0, 0.0)
    view.crop_p = 0.0  # whole image at its own size: an exact copy
    image = (_images((8, 8, 3)) * 255).astype(np.uint8)
    got = augment.crop_view(image, view, 8, SEED)
    np.testing.assert_allclose(got.numpy(), image / 255.0, atol=1e-6)


# --- Seeds: per-image draws, determinism, nothing frozen at trace time ---------------------------


def test_identical_images_in_a_batch_get_different_views():
    x = np.repeat(_images((1, 16, 16, 3)), 8, axis=0)
    for out in (
        augment.random_resized_crop(x, 8, SEED),
        augment.color_jitter(x, SEED, 0.4, 0.4, 0.2, 0.1, p=1.0),
        augment.gaussian_blur(x, SEED, p=1.0, sigma_range=(0.5, 2.0)),  # sigma per image
        augment.augment_view(x, VIEW1, SEED, 8),
    ):
        flat = out.numpy().reshape(8, -1)
        for a, b in itertools.combinations(range(8), 2):
            assert not np.allclose(flat[a], flat[b]), (a, b)


def test_same_seed_same_output_different_seed_different():
    x = _images((8, 16, 16, 3))
    first = augment.augment_view(x, VIEW2, SEED, 12).numpy()
    np.testing.assert_array_equal(augment.augment_view(x, VIEW2, SEED, 12).numpy(), first)
    other = augment.augment_view(x, VIEW2, tf.constant([3, 8], tf.int64), 12).numpy()
    assert _changed(other, first).all()
    # int32 seeds work as well.
    assert augment.augment_view(x, VIEW2, [3, 7], 12).shape == (8, 12, 12, 3)


def test_tf_function_draws_fresh_parameters_per_seed():
    x = _images((4, 16, 16, 3))
    fn = tf.function(lambda x, s: augment.augment_view(x, VIEW1, s, 8))
    a, b = fn(x, _seed(0)).numpy(), fn(x, _seed(1)).numpy()
    assert fn.experimental_get_tracing_count() == 1
    assert _changed(a, b).all()
    # Inside Dataset.map, with the seed derived from the element index.
    ds = tf.data.Dataset.from_tensors(x).repeat(2).enumerate()
    ds = ds.map(lambda i, x: augment.augment_view(x, VIEW1, tf.stack([i, i]), 8))
    first, second = (e.numpy() for e in ds)
    assert _changed(first, second).all()


# --- Empirical probabilities (2000 images each) ---------------------------------------------------

N = 2000


@pytest.mark.parametrize("p", [VIEW1.flip_p, 0.0, 1.0])
def test_flip_frequency(p):
    x = _images((N, 4, 4, 3))
    out = augment.random_flip(x, SEED, p)
    _assert_frequency(_unchanged_or(out, x, x[:, :, ::-1]), p)


def test_jitter_frequency():
    x = _images((N, 4, 4, 3), 0.3, 0.7)
    v = VIEW1
    out = augment.color_jitter(x, SEED, v.brightness, v.contrast, v.saturation, v.hue, v.jitter_p)
    applied = _changed(out, x)
    np.testing.assert_array_equal(out.numpy()[~applied], x[~applied])
    _assert_frequency(applied, v.jitter_p)


def test_grayscale_frequency():
    x = _images((N, 4, 4, 3))
    out = augment.to_grayscale(x, SEED, VIEW1.grayscale_p).numpy()
    applied = np.ptp(out, axis=-1).max(axis=(1, 2)) < 1e-6
    np.testing.assert_array_equal(out[~applied], x[~applied])
    _assert_frequency(applied, VIEW1.grayscale_p)


@pytest.mark.parametrize("p", [VIEW1.blur_p, VIEW2.blur_p])
def test_blur_frequency(p):
    # sigma >= 0.5 so that every blurred image differs visibly (sigma 0.1 is a numerical no-op).
    x = _images((N, 8, 8, 3))
    out = augment.gaussian_blur(x, SEED, p, sigma_range=(0.5, 2.0))
    applied = _changed(out, x, atol=1e-3)
    np.testing.assert_array_equal(out.numpy()[~applied], x[~applied])
    _assert_frequency(applied, p)


@pytest.mark.parametrize("p", [VIEW1.solarize_p, VIEW2.solarize_p])
def test_solarize_frequency(p):
    x = _images((N, 4, 4, 3), 0.55, 0.95)  # every pixel above the threshold
    out = augment.solarize(x, SEED, p, VIEW2.solarize_threshold)
    _assert_frequency(_unchanged_or(out, x, 1.0 - x), p)


@pytest.mark.parametrize("p", [1.0, 0.5])
def test_crop_frequency(p):
    # Not cropped = resized whole; at the input size that is an exact copy of the input. Areas
    # up to 0.9 so that no crop can round to the whole 16x16 image (about 1% do with 1.0).
    x = _images((N, 16, 16, 3))
    out = augment.random_resized_crop(x, 16, SEED, area_range=(0.08, 0.9), p=p)
    _assert_frequency(_changed(out, x), p)


# --- Each op's math -------------------------------------------------------------------------------


def test_solarize_matches_numpy_on_unit_range():
    x = _images((8, 8, 8, 3))
    out = augment.solarize(x, SEED, p=1.0)
    np.testing.assert_allclose(out.numpy(), np.where(x < 0.5, x, 1.0 - x), atol=1e-7)


def test_grayscale_matches_numpy_weights():
    x = _images((8, 8, 8, 3))
    out = augment.to_grayscale(x, SEED, p=1.0).numpy()
    luma = x @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    np.testing.assert_allclose(out, np.repeat(luma[..., None], 3, axis=-1), atol=1e-6)


def _jitter_draws(seed, batch, *strengths):
    # color_jitter splits its seed into (coin, params); p=1 uses only the params.
    return augment_ops._jitter_params(augment_ops._split(seed, 2)[1], batch, *strengths)


def test_brightness_is_additive_per_image():
    x = _images((256, 4, 4, 3), 0.4, 0.6)
    out = augment.color_jitter(x, SEED, 0.3, 0.0, 0.0, 0.0, p=1.0).numpy()
    delta = _jitter_draws(SEED, 256, 0.3, 0.0, 0.0, 0.0)["brightness"].numpy()
    np.testing.assert_allclose(out, np.clip(x + delta[:, None, None, None], 0, 1), atol=1e-6)
    assert -0.3 <= delta.min() < -0.25 and 0.25 < delta.max() <= 0.3


def test_contrast_scales_around_per_channel_mean():
    x = _images((256, 4, 4, 3), 0.2, 0.8)
    out = augment.color_jitter(x, SEED, 0.0, 0.4, 0.0, 0.0, p=1.0).numpy()
    factor = _jitter_draws(SEED, 256, 0.0, 0.4, 0.0, 0.0)["contrast"].numpy()[:, None, None, None]
    mean = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out, np.clip((x - mean) * factor + mean, 0, 1), atol=1e-6)
    assert 0.6 <= factor.min() < 0.65 and 1.35 < factor.max() <= 1.4


@pytest.mark.parametrize("static_shapes", [True, False])
def test_jitter_applies_all_four_ops_in_each_images_order(static_shapes):
    """Reference: tf.image's scalar ops, image by image, in the drawn order, clipping each.
    Both paths: select among all ops (static shapes) and each op on its own images."""
    strengths = (0.4, 0.4, 0.2, 0.1)
    x = _images((24, 6, 6, 3))
    out = augment.color_jitter(x, SEED, *strengths, p=1.0, static_shapes=static_shapes).numpy()
    draws = {k: v.numpy() for k, v in _jitter_draws(SEED, 24, *strengths).items()}
    for b in range(24):
        y = tf.constant(x[b])
        for op in draws["order"][b]:
            name = augment_ops._JITTER_OPS[op]
            value = draws[name][b]
            y = {
                "brightness": lambda y, v: tf.image.adjust_brightness(y, v),
                "contrast": lambda y, v: tf.image.adjust_contrast(y, v),
                "saturation": lambda y, v: tf.image.adjust_saturation(y, v),
                "hue": lambda y, v: tf.image.adjust_hue(y, v),
            }[name](y, value)
            y = tf.clip_by_value(y, 0.0, 1.0)
        np.testing.assert_allclose(out[b], y.numpy(), atol=2e-5, err_msg=f"image {b}")
    assert np.abs(draws["hue"]).max() <= 0.1 and np.abs(draws["hue"]).max() > 0.08


def test_both_jitter_paths_give_the_same_images_in_tf_data_and_with_ops_off():
    x = _images((32, 8, 8, 3))
    view = view_config(blur_p=0.5, solarize_p=0.2)
    for strengths in [(0.4, 0.4, 0.2, 0.1), (0.0, 0.4, 0.0, 0.1), (0.4, 0.0, 0.2, 0.0)]:
        view.update(dict(zip(("brightness", "contrast", "saturation", "hue"), strengths)))
        want = augment.augment_batch(x, view, SEED).numpy()
        ds = tf.data.Dataset.from_tensors(x).map(
            lambda b, v=view: augment.augment_batch(b, v, SEED, static_shapes=False)
        )
        got = next(iter(ds)).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_host_path_op_drawn_for_no_image_or_every_image():
    """Each op runs only on its drawn images; a draw may pick none (REFLECT padding refuses an
    empty batch) or all of them."""
    x = _images((8, 12, 12, 3))
    for p in (1e-6, 1 - 1e-6):
        for static_shapes in (True, False):
            got = augment.gaussian_blur(x, SEED, p=p, static_shapes=static_shapes).numpy()
            want = x if p < 0.5 else augment.gaussian_blur(x, SEED, p=1.0).numpy()
            np.testing.assert_allclose(got, want, atol=1e-6)


def test_jitter_order_is_a_uniform_permutation():
    order = _jitter_draws(SEED, 2400, 0.4, 0.4, 0.2, 0.1)["order"].numpy()
    np.testing.assert_array_equal(np.sort(order, axis=1), np.tile(np.arange(4), (2400, 1)))
    counts = np.unique(order, axis=0, return_counts=True)[1]
    assert len(counts) == 24 and counts.min() > 60 and counts.max() < 140  # expected 100


def test_blur_with_tiny_sigma_is_identity():
    x = _images((8, 32, 32, 3))
    out = augment.gaussian_blur(x, SEED, p=1.0, sigma_range=(0.1, 0.1))
    np.testing.assert_allclose(out.numpy(), x, atol=1e-6)


def test_blur_keeps_constant_images_and_smooths_noise():
    const = np.full((8, 16, 16, 3), 0.37, np.float32)
    np.testing.assert_allclose(augment.gaussian_blur(const, SEED, p=1.0).numpy(), const, atol=1e-6)
    noise = _images((8, 16, 16, 3))
    out = augment.gaussian_blur(noise, SEED, p=1.0, sigma_range=(1.0, 2.0)).numpy()
    assert (out.var(axis=(1, 2, 3)) < 0.5 * noise.var(axis=(1, 2, 3))).all()


def test_blur_matches_numpy_separable_reflect_conv():
    x = _images((2, 32, 32, 3))
    out = augment.gaussian_blur(x, SEED, p=1.0, sigma_range=(1.5, 1.5), kernel_fraction=0.25)
    radius = 4  # 0.25 * 32 = 8 taps -> radius 4 -> 9 taps
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-(taps**2) / (2 * 1.5**2))
    kernel /= kernel.sum()
    padded = np.pad(x, [(0, 0), (radius, radius), (radius, radius), (0, 0)], mode="reflect")
    rows = sum(k * padded[:, i : i + 32] for i, k in enumerate(kernel))
    want = sum(k * rows[:, :, i : i + 32] for i, k in enumerate(kernel))
    np.testing.assert_allclose(out.numpy(), want, atol=1e-5)


@pytest.mark.parametrize("side,taps", [(224, 23), (96, 9), (32, 3), (8, 3)])
def test_blur_kernel_is_a_tenth_of_the_image(side, taps):
    assert 2 * augment_ops._blur_radius(side, 0.1) + 1 == taps


def _numpy_crop_areas(n, side, rng):
    """torchvision's rule in NumPy: redraw (area, log-ratio) until the rounded box fits."""
    areas = []
    while len(areas) < n:
        area = rng.uniform(0.08, 1.0) * side * side
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= side and 0 < h <= side:
            areas.append(w * h / side**2)
    return np.array(areas)


def _sample_crop_boxes(seed, batch, height, width, area_range, aspect_ratio_range):
    """The boxes `random_resized_crop` draws from `seed` for `batch` images (p=1)."""
    draws = augment.crop_draws(seed, batch)
    return augment_ops._crop_boxes(draws, height, width, area_range, aspect_ratio_range)


def test_crop_boxes_follow_the_reference_distribution():
    boxes = _sample_crop_boxes(SEED, 4000, 224, 224, (0.08, 1.0), (3 / 4, 4 / 3)).numpy()
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 224).all() and (left + w <= 224).all()
    assert (w / h >= 3 / 4 - 0.02).all() and (w / h <= 4 / 3 + 0.02).all()
    area = h * w / 224**2
    assert area.min() >= 0.075
    want = _numpy_crop_areas(20000, 224, np.random.default_rng(0))
    # U(0.08, 1) has mean 0.54; rejecting boxes that do not fit pulls it slightly lower.
    assert abs(area.mean() - want.mean()) < 0.015 and 0.45 < area.mean() < 0.56
    assert abs(np.median(area) - np.median(want)) < 0.03
    # Offsets spread over the whole free range, not pinned to a corner or the centre.
    free = 224 - h
    assert 0.45 < (top[free > 0] / free[free > 0]).mean() < 0.55


def test_crop_without_a_fitting_box_falls_back_to_a_centred_crop():
    boxes = _sample_crop_boxes(SEED, 4, 10, 100, (0.9, 1.0), (1.0, 1.0)).numpy()
    np.testing.assert_array_equal(boxes, np.tile([[0, 45, 10, 10]], (4, 1)))


def _default_crop_boxes(seed, batch, height, width):
    # random_resized_crop's draws with its default ranges; p=1 uses no coin.
    return _sample_crop_boxes(seed, batch, height, width, (0.08, 1.0), (3 / 4, 4 / 3)).numpy()


@pytest.mark.parametrize("height,width", [(16, 16), (24, 40)])
def test_crop_cuts_the_sampled_box_from_a_coordinate_ramp(height, width):
    """Channels 0/1 hold each pixel's row/column, so the output's corners give its box."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    ramp = np.stack([rows / (height - 1), cols / (width - 1), np.zeros_like(rows)], -1)
    x = np.repeat(ramp[None].astype(np.float32), 64, axis=0)
    out = augment.random_resized_crop(x, 8, SEED).numpy()
    want = _default_crop_boxes(SEED, 64, height, width)
    top, bottom = out[:, 0, 0, 0] * (height - 1), out[:, -1, 0, 0] * (height - 1)
    left, right = out[:, 0, 0, 1] * (width - 1), out[:, 0, -1, 1] * (width - 1)
    got = np.stack([top, left, bottom - top + 1, right - left + 1], axis=1)
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert len(np.unique(want, axis=0)) > 50  # per-image boxes


def test_crop_matches_tf_image_crop_and_resize():
    x = _images((8, 20, 30, 3))
    out = augment.random_resized_crop(x, 12, SEED).numpy()
    top, left, h, w = _default_crop_boxes(SEED, 8, 20, 30).T
    normalized = np.stack([top / 19, left / 29, (top + h - 1) / 19, (left + w - 1) / 29], 1)
    want = tf.image.crop_and_resize(x, normalized, tf.range(8), [12, 12]).numpy()
    np.testing.assert_allclose(out, want, atol=1e-5)
    plain = tf.image.resize(x, [12, 12]).numpy()
    assert _changed(out, plain, atol=0.05).all()


# --- The "crop only" ablation and argument errors ------------------------------------------------


def test_zero_probabilities_and_strengths_make_augment_batch_the_identity():
    view = view_config(blur_p=0.0, solarize_p=0.0)
    view.update(dict(flip_p=0.0, grayscale_p=0.0, brightness=0.0, contrast=0.0))
    view.update(dict(saturation=0.0, hue=0.0))  # jitter_p stays 0.8: no strength, no change
    x = _images((8, 16, 16, 3))
    np.testing.assert_array_equal(augment.augment_batch(x, view, SEED).numpy(), x)
    view.jitter_p = 0.0
    np.testing.assert_array_equal(augment.augment_batch(x, view, SEED).numpy(), x)


def test_bad_arguments_fail_loudly():
    x = _images((2, 8, 8, 3))
    with pytest.raises(ValueError, match="1.5"):
        augment.random_flip(x, SEED, p=1.5)
    with pytest.raises(ValueError, match="hue"):
        augment.color_jitter(x, SEED, 0.4, 0.4, 0.2, 0.7, p=0.8)
    with pytest.raises(ValueError, match="seed"):
        augment.solarize(x, tf.constant([1, 2, 3]), p=0.5)
    with pytest.raises(ValueError, match="area_range"):
        augment.random_resized_crop(x, 4, SEED, area_range=(0.5, 0.1))
    dynamic = tf.function(
        lambda x: augment.gaussian_blur(x, SEED, p=1.0),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
    )
    with pytest.raises(ValueError, match="static"):
        dynamic.get_concrete_function()
