"""Things that make a micrograph look real and that a picker must NOT pick: ice contamination,
carbon film with the edge of a hole, aggregates and broken particles, ice-thickness gradient and
uneven illumination. Sizes in pixels unless the name says A or nm.
"""
from __future__ import annotations

import numpy as np

from .layout import paste, smooth_field
from .projection import projection

ICE_MEAN_FREE_PATH_A = 3500.0  # inelastic mean free path in vitreous ice at 300 kV, zero-loss filtered


def ice_transmission(rng: np.random.Generator, shape: tuple[int, int], thickness_a: float,
                     gradient_a: float, unevenness: float) -> np.ndarray:
    """Fraction of electrons kept through the ice: a linear thickness ramp of ``gradient_a`` A across the
    image in a random direction, times smooth illumination unevenness (relative std)."""
    ny, nx = shape
    ang = rng.uniform(0, 2 * np.pi)
    y = np.arange(ny, dtype=np.float32) / max(ny - 1, 1) - 0.5
    x = np.arange(nx, dtype=np.float32) / max(nx - 1, 1) - 0.5
    # exp of a linear ramp is separable: an outer product of two 1-D exponentials (fast at 4096^2)
    ey = np.exp(-(thickness_a + gradient_a * np.sin(ang) * y) / ICE_MEAN_FREE_PATH_A).astype(np.float32)
    ex = np.exp(-(gradient_a * np.cos(ang) * x) / ICE_MEAN_FREE_PATH_A).astype(np.float32)
    trans = np.multiply.outer(ey, ex)
    if unevenness > 0:
        field = smooth_field(rng, shape, cells=5)
        field *= np.float32(unevenness)
        field += np.float32(1.0)
        trans *= field
    return trans


def carbon_region(rng: np.random.Generator, shape: tuple[int, int], depth_frac: float) -> np.ndarray:
    """Bool image of carbon film outside a round hole whose edge cuts ``depth_frac`` of the image deep."""
    ny, nx = shape
    size = max(ny, nx)
    radius = rng.uniform(1.5, 3.0) * size
    ang = rng.uniform(0, 2 * np.pi)
    u = np.array([np.cos(ang), np.sin(ang)])
    half = 0.5 * (abs(u[0]) * nx + abs(u[1]) * ny)  # image half-extent along u
    cx, cy = np.array([nx / 2, ny / 2]) - u * (radius - (half - depth_frac * 2 * half))
    y = np.arange(ny, dtype=np.float32)[:, None] - np.float32(cy)
    x = np.arange(nx, dtype=np.float32)[None, :] - np.float32(cx)
    return (x * x + y * y) > np.float32(radius * radius)


def contamination_blobs(rng: np.random.Generator, shape: tuple[int, int], n: int, pixel_size: float):
    """``n`` irregular ice-contamination blobs: (thickness image in A, list of (x, y, radius px))."""
    ny, nx = shape
    thick = np.zeros(shape, dtype=np.float32)
    blobs = []
    for _ in range(n):
        r_px = rng.uniform(300, 1500) / pixel_size * rng.uniform(0.5, 1.0)
        r_px = min(r_px, 0.15 * min(shape))
        cx, cy = rng.uniform(0, nx), rng.uniform(0, ny)
        h = int(np.ceil(r_px * 1.4)) + 2
        yy, xx = np.mgrid[-h:h + 1, -h:h + 1].astype(np.float32)
        ang = np.arctan2(yy, xx)
        edge = r_px * (1 + sum(rng.uniform(-0.15, 0.15) * np.cos(k * ang + rng.uniform(0, 6.3))
                               for k in range(2, 6)))
        rho = np.hypot(xx, yy) / np.maximum(edge, 1)
        peak_a = rng.uniform(800, 3000)  # A of extra ice at the blob's centre
        stamp = peak_a * np.sqrt(np.clip(1 - rho * rho, 0, None))
        paste(thick, stamp.astype(np.float32), int(cx), int(cy))
        blobs.append((cx, cy, r_px * 1.15))
    return thick, blobs


def broken_particle(rng: np.random.Generator, name: str, pixel_size: float, n_bins: int) -> np.ndarray:
    """A fragment of a particle: one projection cut by a soft random plane (keeps 30-65 % of it)."""
    proj = projection(name, pixel_size, int(rng.integers(n_bins)))
    b = proj.shape[0]
    yy, xx = np.mgrid[:b, :b].astype(np.float32) - b // 2
    ang = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(-0.15, 0.25) * b
    s = np.cos(ang) * xx + np.sin(ang) * yy - offset
    keep = 1.0 / (1.0 + np.exp(-s / 1.5))
    return (proj * keep).astype(np.float32)


def aggregate(rng: np.random.Generator, name: str, pixel_size: float, n_bins: int, diameter_px: float):
    """A clump of 3-7 overlapping particles (junk): (image, box centre offset ignored)."""
    k = int(rng.integers(3, 8))
    span = int(np.ceil(diameter_px * 1.6))
    first = projection(name, pixel_size, 0)
    size = 2 * span + first.shape[0] + 1
    img = np.zeros((size, size), dtype=np.float32)
    for _ in range(k):
        off = rng.normal(0, 0.35 * diameter_px, 2).clip(-span, span)
        p = projection(name, pixel_size, int(rng.integers(n_bins)))
        paste(img, np.rot90(p, int(rng.integers(4))), int(size // 2 + off[0]), int(size // 2 + off[1]))
    return img
