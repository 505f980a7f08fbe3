"""Data augmentation on preprocessed 8-bit images and their object centres (network pixels).

Random crop, random horizontal / vertical flips and random 90-degree rotations; optionally
(``appearance``) random blur, noise and grey-level quantisation, re-equalised as the runtime's
preprocessing would, so the network sees micrographs of other detectors and renderings, and
(``zoom``) a random rescale of the crop, so it sees particles at other sizes in network pixels. Positions follow
the centre-of-pixel convention (ARCHITECTURE.md): a flip maps x to W - 1 - x; ``np.rot90`` by one
quarter turn maps (x, y) to (y, W - 1 - x). Sizes (x then y) swap on quarter turns.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Augmented:
    """One augmented crop: image uint8 [H, W], centres [n, 2] (x, y) and sizes [n, 2] or None."""

    image: np.ndarray
    points: np.ndarray
    sizes: np.ndarray | None
    zoom: float = 1.0  # network pixels of the crop per network pixel of the sample


def inside(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Which (x, y) centres lie on an image of ``shape`` (H, W): pixel centres at integers, edges at -0.5."""
    h, w = shape
    return (points[:, 0] >= -0.5) & (points[:, 0] < w - 0.5) & (points[:, 1] >= -0.5) & (points[:, 1] < h - 0.5)


def random_crop(image: np.ndarray, points: np.ndarray, sizes: np.ndarray | None,
                crop: tuple[int, int], rng: np.random.Generator, origin: tuple[int, int] | None = None) -> Augmented:
    """A ``crop`` (H, W) window at ``origin`` (y0, x0), or at random when None; images smaller than
    the window are zero-padded bottom/right.

    Centres outside the window are dropped; the rest shift with the window origin.
    """
    ch, cw = crop
    H, W = image.shape
    if H < ch or W < cw:
        padded = np.zeros((max(H, ch), max(W, cw)), dtype=image.dtype)
        padded[:H, :W] = image
        image, (H, W) = padded, padded.shape
    if origin is None:
        y0 = int(rng.integers(0, H - ch + 1))
        x0 = int(rng.integers(0, W - cw + 1))
    else:
        y0, x0 = min(int(origin[0]), H - ch), min(int(origin[1]), W - cw)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2) - (x0, y0)
    keep = inside(pts, crop)
    return Augmented(image[y0:y0 + ch, x0:x0 + cw].copy(), pts[keep],
                     None if sizes is None else np.asarray(sizes)[keep])


def zoomed_crop(image: np.ndarray, points: np.ndarray, sizes: np.ndarray | None, crop: tuple[int, int],
                zoom: float, rng: np.random.Generator, origin: tuple[int, int] | None = None) -> Augmented:
    """A ``crop`` (H, W) window of the image rescaled by ``zoom`` (> 1: particles grow): a window of
    crop / zoom sample pixels at ``origin`` (y0, x0) or at random, resampled linearly (Gaussian
    pre-filter when shrinking). Centres keep the centre-of-pixel convention: u' = (u + 0.5) zoom - 0.5."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    ch, cw = crop
    window = (int(np.ceil(ch / zoom)), int(np.ceil(cw / zoom)))
    a = random_crop(image, points, sizes, window, rng, origin)
    src = a.image.astype(np.float32)
    if zoom < 1:
        src = gaussian_filter(src, 0.5 * np.sqrt(1 / zoom ** 2 - 1))
    yy = (np.arange(ch, dtype=np.float32) + 0.5) / zoom - 0.5
    xx = (np.arange(cw, dtype=np.float32) + 0.5) / zoom - 0.5
    out = map_coordinates(src, np.meshgrid(yy, xx, indexing="ij"), order=1, mode="nearest")
    pts = (a.points + 0.5) * zoom - 0.5
    keep = inside(pts, crop)
    return Augmented(np.clip(out + 0.5, 0, 255).astype(np.uint8), pts[keep],
                     None if a.sizes is None else a.sizes[keep] * zoom, zoom)


def flip_rotate(aug: Augmented, hflip: bool, vflip: bool, quarter_turns: int) -> Augmented:
    """Apply a horizontal flip, a vertical flip, then ``quarter_turns`` np.rot90 turns (CCW)."""
    img, pts = aug.image, aug.points.copy()
    sizes = None if aug.sizes is None else aug.sizes.copy()
    if hflip:
        img = img[:, ::-1]
        pts[:, 0] = img.shape[1] - 1 - pts[:, 0]
    if vflip:
        img = img[::-1, :]
        pts[:, 1] = img.shape[0] - 1 - pts[:, 1]
    for _ in range(quarter_turns % 4):
        width = img.shape[1]
        img = np.rot90(img)
        pts = np.stack([pts[:, 1], width - 1 - pts[:, 0]], axis=1)
        if sizes is not None:
            sizes = sizes[:, ::-1]
    return Augmented(np.ascontiguousarray(img), pts, sizes, aug.zoom)


def appearance(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uint8 network image as another detector or rendering might give it: each with probability
    1/2, Gaussian blur (sigma 0.5-2 px), Gaussian noise (sigma 5-40 grey levels) and quantisation
    to 16-64 grey levels; then histogram-equalised like every preprocessed image."""
    from scipy.ndimage import gaussian_filter

    from epick.runtime.preprocess import equalise

    img = image.astype(np.float32)
    if rng.random() < 0.5:
        img = gaussian_filter(img, float(rng.uniform(0.5, 2.0)))
    if rng.random() < 0.5:
        img = img + rng.normal(0.0, float(rng.uniform(5.0, 40.0)), img.shape).astype(np.float32)
    if rng.random() < 0.5:
        levels = int(rng.choice([16, 24, 32, 64]))
        lo, hi = np.percentile(img, [0.5, 99.5])
        img = np.floor(np.clip((img - lo) / max(float(hi - lo), 1e-6), 0, 1) * (levels - 1) + 0.5) * (255 / (levels - 1))
    return equalise(np.clip(img + 0.5, 0, 255).astype(np.uint8))


def augment(image: np.ndarray, points: np.ndarray, sizes: np.ndarray | None, crop: tuple[int, int],
            rng: np.random.Generator, *, flips: bool = True, rotations: bool = True,
            origin: tuple[int, int] | None = None, appearance_jitter: bool = False,
            zoom: tuple[float, float] = (1.0, 1.0)) -> Augmented:
    """Crop (at ``origin`` (y0, x0), else at random; rescaled by a log-uniform factor in ``zoom``
    unless it is (1, 1)), then random flips and (square crops only) random quarter turns; with
    ``appearance_jitter`` also ``appearance``."""
    if zoom[0] == zoom[1] == 1.0:
        aug = random_crop(image, points, sizes, crop, rng, origin)
    else:
        factor = float(np.exp(rng.uniform(np.log(zoom[0]), np.log(zoom[1]))))
        aug = zoomed_crop(image, points, sizes, crop, factor, rng, origin)
    hflip = bool(flips and rng.random() < 0.5)
    vflip = bool(flips and rng.random() < 0.5)
    turns = int(rng.integers(0, 4)) if rotations and crop[0] == crop[1] else 0
    out = flip_rotate(aug, hflip, vflip, turns)
    if appearance_jitter:
        out.image = appearance(out.image, rng)
    return out
