"""Helpers for the trainer tests (no tests here): small simulated micrographs written as MRC + STAR.

Until ``epick.simulator.simulate_micrograph`` is available this makes Gaussian-noise images with
two kinds of particles: "blob" (a dark disk) and "ring" (a bright annulus), both Gaussian-blurred.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from epick.runtime.picks import Picks

KINDS = {"blob": 14.0, "ring": 22.0}  # diameter in pixels


def place(n: int, shape: tuple[int, int], diameter: float, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` non-overlapping centres (x, y), at least one diameter apart and from the edges."""
    pts = []
    for _ in range(n * 50):
        p = rng.uniform([diameter, diameter], [shape[1] - diameter, shape[0] - diameter])
        if all(np.hypot(*(p - q)) >= 1.2 * diameter for q in pts):
            pts.append(p)
        if len(pts) == n:
            break
    return np.array(pts).reshape(-1, 2)


def stamp(kind: str, diameter: float) -> tuple[np.ndarray, int]:
    """The particle image (added to a zero-mean background) and its half-width."""
    r = int(np.ceil(diameter))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    d = np.hypot(xx, yy)
    if kind == "blob":
        img = -(d <= diameter / 2).astype(np.float32)
    else:
        img = ((d <= diameter / 2) & (d >= diameter / 2 - 3)).astype(np.float32)
    return gaussian_filter(img, 1.0), r


def simulate(kind: str, n: int, seed: int, shape=(256, 256), noise: float = 0.6,
             extra_kind: str | None = None, extra_n: int = 0):
    """(image float32, centres [n, 2] of ``kind``); ``extra_kind`` objects are drawn but not returned."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, dtype=np.float32)
    kinds = [(kind, n)] + ([(extra_kind, extra_n)] if extra_kind else [])
    all_pts = place(sum(k[1] for k in kinds), shape, max(KINDS[k[0]] for k in kinds), rng)
    labelled = all_pts[:n]
    start = 0
    for k, count in kinds:
        st, r = stamp(k, KINDS[k])
        for x, y in all_pts[start:start + count]:
            xi, yi = int(round(x)), int(round(y))
            y0, x0 = max(0, yi - r), max(0, xi - r)
            y1, x1 = min(shape[0], yi + r + 1), min(shape[1], xi + r + 1)
            img[y0:y1, x0:x1] += st[y0 - yi + r:y1 - yi + r, x0 - xi + r:x1 - xi + r]
        start += count
    img += rng.normal(0, noise, shape).astype(np.float32)
    return gaussian_filter(img, 0.7), labelled


def write_dataset(folder: Path, kind: str, n_mics: int, seed: int, n_particles: int = 25,
                  keep_fraction: float = 1.0, **kwargs) -> tuple[Path, Path]:
    """Write ``n_mics`` MRC micrographs and one STAR per micrograph; returns (mic dir, star dir)."""
    from epick.runtime.io.coordinates import write_picks
    from epick.runtime.io.micrograph import write_mrc

    mics, stars = folder / "mics", folder / "stars"
    mics.mkdir(parents=True, exist_ok=True)
    stars.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 10_000)
    for i in range(n_mics):
        img, pts = simulate(kind, n_particles, seed * 1000 + i, **kwargs)
        keep = rng.random(len(pts)) < keep_fraction
        name = f"{kind}_{seed}_{i:03d}"
        write_mrc(mics / f"{name}.mrc", img)
        write_picks([Picks(name, pts[keep, 0], pts[keep, 1], diameter=KINDS[kind], shape=img.shape)],
                    stars / f"{name}.star", diameter=KINDS[kind])
    return mics, stars


def truth_of(kind: str, seed: int, i: int, n_particles: int = 25, **kwargs):
    """(image, all centres) of micrograph ``i`` of a dataset written with ``write_dataset``."""
    return simulate(kind, n_particles, seed * 1000 + i, **kwargs)
