"""Projections of particle clouds along random orientations, cached per orientation bin.

An orientation bin is one rotation drawn uniformly on SO(3) (a uniformly random unit quaternion)
from a stream fixed by the particle type, so bin ``k`` of a type is the same rotation in every
process. A projection is the particle's thickness (A of protein along the beam) on a pixel grid,
centred so that the particle's centre of mass falls on the centre pixel ``(box // 2, box // 2)``.
Micrographs draw a bin per particle and add a random multiple of 90 degrees in plane (exact on
the pixel grid), so ``n_bins`` bins give ``4 * n_bins`` distinct views.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .particles import get_particle_type, hash_name

DEFAULT_BINS = 256
_CACHE: dict[tuple[str, float, int], np.ndarray] = {}
_CACHE_LIMIT = 4096


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rotation matrices uniform on SO(3) (from uniform unit quaternions), shape (n, 3, 3)."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], 1)


def bin_rotation(name: str, index: int) -> np.ndarray:
    """Rotation matrix of orientation bin ``index`` of particle type ``name`` (process-independent)."""
    rng = np.random.default_rng([hash_name(name), index])
    return random_rotations(1, rng)[0]


def box_size(name: str, pixel_size: float) -> int:
    """Odd box edge (px) that holds every projection of ``name`` at ``pixel_size`` A/px."""
    ptype = get_particle_type(name)
    reach = np.linalg.norm(ptype.cloud[0], axis=1).max() + 3 * ptype.blob_sigma_a
    return int(2 * np.ceil(reach / pixel_size) + 3)


def project_cloud(points: np.ndarray, volumes: np.ndarray, rotation: np.ndarray, pixel_size: float,
                  box: int, blob_sigma_a: float) -> np.ndarray:
    """Projected thickness (A) of rotated pseudo-atoms on a ``box`` x ``box`` grid (float32).

    Each pseudo-atom is splatted bilinearly, then the image is blurred by a Gaussian of
    ``blob_sigma_a`` A; the origin of ``points`` lands on pixel (box // 2, box // 2).
    """
    xy = points @ rotation.T[:, :2] / pixel_size + box // 2  # columns 0/1 = x/y in px
    x0 = np.floor(xy[:, 0]).astype(np.int64)
    y0 = np.floor(xy[:, 1]).astype(np.int64)
    fx, fy = xy[:, 0] - x0, xy[:, 1] - y0
    img = np.zeros(box * box, dtype=np.float64)
    area = pixel_size * pixel_size
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                        (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < box) & (yi >= 0) & (yi < box)
        img += np.bincount(yi[ok] * box + xi[ok], weights=(volumes * wgt)[ok], minlength=box * box)
    img = img.reshape(box, box) / area
    sigma_px = blob_sigma_a / pixel_size
    if sigma_px > 0.3:
        img = ndimage.gaussian_filter(img, sigma_px, mode="constant", truncate=3.0)
    return img.astype(np.float32)


def projection(name: str, pixel_size: float, index: int) -> np.ndarray:
    """Cached projected thickness (A) of ``name`` in orientation bin ``index`` (read-only array)."""
    key = (name, round(float(pixel_size), 6), int(index))
    hit = _CACHE.get(key)
    if hit is None:
        ptype = get_particle_type(name)
        pts, vol = ptype.cloud
        hit = project_cloud(pts, vol, bin_rotation(name, index), pixel_size,
                            box_size(name, pixel_size), ptype.blob_sigma_a)
        hit.setflags(write=False)
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = hit
    return hit


def clear_cache() -> None:
    """Forget every cached projection."""
    _CACHE.clear()
