"""The embedded default dataset: procedurally drawn shapes, made in NumPy, no download.

The class of an image is a shape (disc, square, triangle, ring, cross, bars, diamond, ...).
Everything else is drawn per image and carries no class information: foreground and
background colours, position, scale (35-80% of the side) and a texture (stripes or blotchy
noise of random frequency and strength) on the foreground and on the background. A randomly
initialised encoder mostly sees those colours and textures, so its kNN accuracy on shape is
poor; the invariances BYOL learns from crops, colour jitter and grayscale recover the shape.
Foreground and background always differ in luminance, so the shape survives grayscale.
Deterministic for a seed; vectorised: 5,000 images of 32 px take about a second on one core.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("disc", "square", "triangle", "ring", "cross", "hbar", "vbar", "diamond", "x", "corner")
_MIN_LUMA_GAP = 0.25  # Foreground/background luminance gap that keeps the shape visible in gray.
_LUMA = np.array([0.2989, 0.5870, 0.1140], np.float32)


def _mask(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of one shape in its box's coordinates (u, v in [-1, 1], v pointing down)."""
    au, av = np.abs(u), np.abs(v)
    box = np.maximum(au, av)
    if name == "disc":
        return u**2 + v**2 < 0.9
    if name == "square":
        return box < 0.8
    if name == "triangle":
        return (v < 0.8) & (v > 2.0 * au - 1.0)
    if name == "ring":
        r2 = u**2 + v**2
        return (r2 < 0.95) & (r2 > 0.35)
    if name == "cross":
        return (au < 0.3) | (av < 0.3)
    if name == "hbar":
        return av < 0.35
    if name == "vbar":
        return au < 0.35
    if name == "diamond":
        return au + av < 1.0
    if name == "x":
        return (np.abs(u - v) < 0.4) | (np.abs(u + v) < 0.4)
    if name == "corner":  # an L: left column and bottom row of the box
        return (u < -0.3) | (v > 0.3)
    raise ValueError(f"Unknown shape {name!r}.")


def _textures(rng: np.random.Generator, n: int, s: int) -> np.ndarray:
    """[n, s, s] float32 textures in about [-1, 1]: stripes or blotchy noise, chosen per image."""
    grid = (np.arange(s, dtype=np.float32) + 0.5) / s
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    angle = rng.uniform(0, np.pi, (n, 1, 1)).astype(np.float32)
    cycles = rng.uniform(1.0, 8.0, (n, 1, 1)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    stripes = np.sin(2 * np.pi * cycles * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)

    # Blotches: a coarse Gaussian grid of random resolution, upsampled by nearest neighbour.
    cells = rng.integers(2, 9, (n, 1, 1))
    coarse = rng.normal(0, 0.6, (n, 8, 8)).astype(np.float32)
    cell_y = np.minimum((yy[None] * cells).astype(np.int64), 7)
    cell_x = np.minimum((xx[None] * cells).astype(np.int64), 7)
    blotches = np.take_along_axis(coarse.reshape(n, 64), (cell_y * 8 + cell_x).reshape(n, -1), 1)
    blotches = blotches.reshape(n, s, s)
    return np.where(rng.random((n, 1, 1)) < 0.5, stripes, blotches)


def _colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background RGB [n, 3] with at least _MIN_LUMA_GAP luminance between them."""
    fg = rng.random((n, 3), dtype=np.float32)
    bg = rng.random((n, 3), dtype=np.float32)
    for _ in range(16):  # redraw the foregrounds that are too close; a few rounds leave ~none
        close = np.abs((fg - bg) @ _LUMA) < _MIN_LUMA_GAP
        if not close.any():
            break
        fg[close] = rng.random((int(close.sum()), 3), dtype=np.float32)
    # Any left over: shift the foreground brightness away from the background's.
    gap = (fg - bg) @ _LUMA
    push = np.where(gap >= 0, 1.0, -1.0) * np.maximum(_MIN_LUMA_GAP - np.abs(gap), 0.0)
    fg = np.clip(fg + push[:, None], 0.0, 1.0)
    return fg, bg


def make_synthetic(
    num_examples: int, image_size: int, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draws the shapes dataset.

    Args:
      num_examples: number of images N.
      image_size: side S in pixels.
      num_classes: number of shapes used, in [2, 10]; classes are balanced to within one.
      seed: any int; the same arguments always give the same arrays.

    Returns:
      images uint8 [N, S, S, 3] and labels int64 [N].
    """
    if not 2 <= num_classes <= len(SHAPES):
        raise ValueError(f"data.synthetic.num_classes={num_classes} must be in [2, {len(SHAPES)}].")
    if num_examples < 1 or image_size < 4:
        raise ValueError(
            f"make_synthetic needs num_examples >= 1 and image_size >= 4, got {num_examples} "
            f"and {image_size}."
        )
    rng = np.random.default_rng(seed)
    n, s = num_examples, image_size
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)

    # Each shape lives in a square box of side `scale` (fraction of the image), placed so that
    # the box stays inside the image.
    scale = rng.uniform(0.35, 0.8, (n, 1, 1)).astype(np.float32)
    centre = rng.uniform(-1, 1, (2, n, 1, 1)).astype(np.float32) * (1 - scale)
    grid = (np.arange(s, dtype=np.float32) + 0.5) / s * 2 - 1
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    u, v = (xx[None] - centre[0]) / scale, (yy[None] - centre[1]) / scale
    inside = (np.abs(u) <= 1) & (np.abs(v) <= 1)
    mask = np.zeros((n, s, s), bool)
    for k in range(num_classes):
        sel = labels == k
        mask[sel] = _mask(SHAPES[k], u[sel], v[sel]) & inside[sel]

    fg, bg = _colours(rng, n)
    # Texture strength per image and per region; 0 for some images, up to a strong pattern.
    fg_amp = rng.uniform(0.0, 0.2, (n, 1, 1)).astype(np.float32)
    bg_amp = rng.uniform(0.0, 0.2, (n, 1, 1)).astype(np.float32)
    texture = np.where(mask, fg_amp * _textures(rng, n, s), bg_amp * _textures(rng, n, s))
    texture += 0.02 * rng.standard_normal((n, s, s), dtype=np.float32)  # a little pixel noise
    images = np.where(mask[..., None], fg[:, None, None, :], bg[:, None, None, :])
    images += texture[..., None]
    np.clip(images, 0.0, 1.0, out=images)
    images *= 255.0
    images += 0.5
    return images.astype(np.uint8), labels
