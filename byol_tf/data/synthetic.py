"""The embedded default dataset: procedurally drawn shapes, made in NumPy, no download.

The class of an image is a shape (disc, square, triangle, ring, cross, bars, diamond, ...).
An image holds one to nine instances of its shape, each in its own cell of a 3 x 3 layout,
with its own random size, offset and colour, on a smooth background whose colour varies
across the image. Colour therefore carries no class information and is not even constant
within an image: two crops of one image see different colours but the same shape. A randomly
initialised encoder mostly responds to colour, so its kNN accuracy on shape is low; BYOL's
crops, colour jitter and grayscale make shape the thing two views share. Each instance differs
from the background under it in luminance, so shapes survive grayscale.
Deterministic for a seed; vectorised: 5,000 images of 32 px take a few seconds on one core.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("disc", "square", "triangle", "ring", "cross", "hbar", "vbar", "diamond", "x", "corner")
_MIN_LUMA_GAP = 0.25  # Foreground/background luminance gap that keeps the shape visible in gray.
_LUMA = np.array([0.2989, 0.5870, 0.1140], np.float32)
_GRID = 3  # instances sit in a _GRID x _GRID layout of cells
_INSTANCE_P = 0.6  # each cell holds an instance with this probability
_BG_CELLS = 3  # resolution of the smooth background colour field


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


def _colours_against(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    """Random RGB [m, 3] foregrounds at least _MIN_LUMA_GAP in luminance from `bg` [m, 3]."""
    fg = rng.random(bg.shape, dtype=np.float32)
    for _ in range(16):  # redraw the foregrounds that are too close; a few rounds leave ~none
        close = np.abs((fg - bg) @ _LUMA) < _MIN_LUMA_GAP
        if not close.any():
            break
        fg[close] = rng.random((int(close.sum()), 3), dtype=np.float32)
    # Any left over: shift the foreground brightness away from the background's.
    gap = (fg - bg) @ _LUMA
    push = np.where(gap >= 0, 1.0, -1.0) * np.maximum(_MIN_LUMA_GAP - np.abs(gap), 0.0)
    return np.clip(fg + push[:, None], 0.0, 1.0)


def _background(rng: np.random.Generator, n: int, s: int, cells: int) -> np.ndarray:
    """[n, s, s, 3] smooth colour fields: a random cells x cells colour grid, bilinearly upsampled."""
    coarse = rng.random((n, cells, cells, 3), dtype=np.float32)
    pos = np.clip((np.arange(s, dtype=np.float32) + 0.5) / s * cells - 0.5, 0, cells - 1)
    lo = np.minimum(pos.astype(np.int64), cells - 2)
    frac = pos - lo
    weights = np.zeros((s, cells), np.float32)
    weights[np.arange(s), lo] = 1 - frac
    weights[np.arange(s), lo + 1] = frac
    return np.einsum("yi,nijc,xj->nyxc", weights, coarse, weights)


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
    images = _background(rng, n, s, _BG_CELLS)

    grid = (np.arange(s, dtype=np.float32) + 0.5) / s * 2 - 1
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    half_cell = 1.0 / _GRID
    present = rng.random((n, _GRID * _GRID)) < _INSTANCE_P
    present[np.arange(n), rng.integers(0, _GRID * _GRID, n)] = True  # at least one instance
    for cell in range(_GRID * _GRID):
        # Each instance lives in a square box inside its grid cell, of random size and offset.
        row, col = divmod(cell, _GRID)
        half = half_cell * rng.uniform(0.7, 1.0, (n, 1, 1)).astype(np.float32)
        slack = half_cell - half
        cy = -1 + (2 * row + 1) * half_cell + rng.uniform(-1, 1, (n, 1, 1)) * slack
        cx = -1 + (2 * col + 1) * half_cell + rng.uniform(-1, 1, (n, 1, 1)) * slack
        u, v = (xx[None] - cx) / half, (yy[None] - cy) / half
        inside = (np.abs(u) <= 1) & (np.abs(v) <= 1) & present[:, cell, None, None]
        mask = np.zeros((n, s, s), bool)
        for k in range(num_classes):
            sel = labels == k
            mask[sel] = _mask(SHAPES[k], u[sel], v[sel]) & inside[sel]
        # The colour is drawn per instance, against the background under the instance's centre.
        py = np.clip(((cy[:, 0, 0] + 1) / 2 * s).astype(np.int64), 0, s - 1)
        px = np.clip(((cx[:, 0, 0] + 1) / 2 * s).astype(np.int64), 0, s - 1)
        fg = _colours_against(rng, images[np.arange(n), py, px])
        images = np.where(mask[..., None], fg[:, None, None, :], images)
    images += 0.02 * rng.standard_normal((n, s, s, 1), dtype=np.float32)  # a little pixel noise
    np.clip(images, 0.0, 1.0, out=images)
    images *= 255.0
    images += 0.5
    return images.astype(np.uint8), labels
