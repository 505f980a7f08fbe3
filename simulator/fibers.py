"""Fibers (filaments): worm-like-chain centre lines drawn as solid cylinders with a helical repeat.

A centre line is a 2-D worm-like chain: the tangent angle takes Gaussian steps of variance
``ds / persistence_length`` (2-D projection of a stiff polymer). The line's density (one sample
per half pixel, weight = step length, modulated by the helical crossover) is later convolved in
Fourier space with a uniform disk of the fiber's radius, which is exactly a cylinder's projection
(2 * sqrt(a^2 - r^2)).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

STEP_PX = 0.5  # centre-line sampling step (px)


@dataclass(frozen=True)
class FiberType:
    """A kind of filament: diameter and helical crossover (nm), how strongly density varies along it."""

    name: str
    diameter_nm: float
    crossover_nm: float
    modulation: float
    persistence_nm: float
    description: str


FIBER_TYPES = {
    "amyloid": FiberType("amyloid", 10.0, 80.0, 0.35, 3000.0, "twisted amyloid fibril, ~10 nm, 80 nm crossover"),
    "actin": FiberType("actin", 7.0, 36.0, 0.25, 10000.0, "F-actin-like filament, 7 nm, 36 nm crossover"),
    "microtubule": FiberType("microtubule", 25.0, 8.0, 0.10, 50000.0, "microtubule-like tube, 25 nm"),
}


def worm_like_path(rng: np.random.Generator, start: np.ndarray, angle: float, length_px: float,
                   persistence_px: float) -> np.ndarray:
    """(n, 2) centre-line points (x, y) px, one per STEP_PX, of a 2-D worm-like chain."""
    n = max(int(length_px / STEP_PX), 2)
    dtheta = rng.normal(0.0, np.sqrt(STEP_PX / persistence_px), n - 1)
    theta = angle + np.concatenate([[0.0], np.cumsum(dtheta)])
    steps = STEP_PX * np.stack([np.cos(theta), np.sin(theta)], 1)
    return start + np.concatenate([[np.zeros(2)], np.cumsum(steps[1:], 0)])


def splat_line(layer: np.ndarray, path: np.ndarray, weights: np.ndarray) -> None:
    """Add ``weights`` at the points of ``path`` (x, y px) into ``layer`` bilinearly (outside points dropped)."""
    ny, nx = layer.shape
    x0 = np.floor(path[:, 0]).astype(np.int64)
    y0 = np.floor(path[:, 1]).astype(np.int64)
    fx, fy = path[:, 0] - x0, path[:, 1] - y0
    flat = layer.reshape(-1)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < nx) & (yi >= 0) & (yi < ny)
        flat += np.bincount(yi[ok] * nx + xi[ok], weights=(weights * w)[ok], minlength=flat.size).astype(layer.dtype)


def disk_kernel_ft(shape: tuple[int, int], radius_px: float) -> np.ndarray:
    """rfft2-grid Fourier transform of a unit-height disk of ``radius_px`` (value pi r^2 at k = 0)."""
    ny, nx = shape
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    q = 2 * np.pi * np.hypot(kx, ky) * radius_px
    safe = np.where(q == 0, 1.0, q)
    jinc = np.where(q == 0, 0.5, special.j1(safe) / safe)
    return (2 * np.pi * radius_px ** 2 * jinc).astype(np.float32)


def truth_points(path: np.ndarray, spacing_px: float, shape: tuple[int, int], margin: float) -> list[np.ndarray]:
    """Ordered points every ``spacing_px`` along ``path``, split into pieces where it leaves the image."""
    ny, nx = shape
    step = max(1, int(round(spacing_px / STEP_PX)))
    pts = path[::step]
    inside = ((pts[:, 0] >= margin) & (pts[:, 0] <= nx - 1 - margin)
              & (pts[:, 1] >= margin) & (pts[:, 1] <= ny - 1 - margin))
    pieces, cur = [], []
    for p, ok in zip(pts, inside):
        if ok:
            cur.append(p)
        elif cur:
            pieces.append(np.array(cur))
            cur = []
    if cur:
        pieces.append(np.array(cur))
    return [p for p in pieces if len(p) >= 2]
