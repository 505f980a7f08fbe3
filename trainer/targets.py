"""Training targets: Gaussian centre heatmaps, offset and size maps at output stride 4.

Positions come in network-image pixels (centre-of-pixel convention, see ARCHITECTURE.md) and go
through ``epick.runtime.peaks.network_to_heatmap``, the one implementation of the stride-4
geometry: a centre at pixel ``u`` lies in heatmap cell ``floor((u + 0.5) / 4)`` and its offset
target is the fractional part. Targets are dense maps so that batches stack without padding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from epick.runtime.peaks import STRIDE, network_to_heatmap

MIN_OVERLAP = 0.7  # IoU a box shifted by the Gaussian radius keeps with the true box (CenterNet)
MIN_RADIUS = 1  # heatmap cells: even tiny particles get a 3x3 splat, so neighbours are not hard negatives


@dataclass
class Targets:
    """Dense targets for one image of heatmap size (h, w) = (H/4, W/4).

    - ``heatmap``: float32 [1, h, w], 1 at each centre cell, Gaussian splats around it.
    - ``offset``: float32 [2, h, w], sub-cell offset (x then y) at centre cells, 0 elsewhere.
    - ``size``: float32 [2, h, w], object diameter in network pixels (x then y) at centre cells.
    - ``mask``: float32 [1, h, w], 1 at centre cells (where offset and size are supervised).
    """

    heatmap: np.ndarray
    offset: np.ndarray
    size: np.ndarray
    mask: np.ndarray


def gaussian_radius(diameter_cells: float, min_overlap: float = MIN_OVERLAP) -> int:
    """Splat radius in heatmap cells by CenterNet's ``gaussian_radius`` rule (Zhou et al. 2019,
    ``utils/image.py``) for a square box of side ``diameter_cells``, at least MIN_RADIUS.

    CenterNet solves three quadratics for the corner shift r that keeps IoU >= ``min_overlap``
    (both corners moved inwards, both outwards, one in and one out) and takes the smallest root;
    for a square box of side d and min_overlap 0.7 that is r = 0.273 d (a 100-px particle at
    stride 4: 25 cells, radius 6), three times the exact shifted-box bound d (1 - sqrt(2m / (1 + m)))
    = 0.093 d this project used before. The wider splat gives more positive-ish cells per particle
    (smaller penalty on near misses); measured before/after with benchmarks/bench_method.py.
    """
    h = w = float(diameter_cells)
    m = float(min_overlap)
    b1, c1 = h + w, w * h * (1 - m) / (1 + m)
    r1 = (b1 + np.sqrt(b1 * b1 - 4 * c1)) / 2
    b2, c2 = 2 * (h + w), (1 - m) * w * h
    r2 = (b2 + np.sqrt(b2 * b2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * m, -2 * m * (h + w), (m - 1) * w * h
    r3 = (b3 + np.sqrt(b3 * b3 - 4 * a3 * c3)) / 2
    return max(MIN_RADIUS, int(min(r1, r2, r3)))


def shifted_box_radius(diameter_cells: float, min_overlap: float = MIN_OVERLAP) -> int:
    """Splat radius in heatmap cells for objects with a size head (vesicles): the largest diagonal
    shift r of a square box of side ``diameter_cells`` that keeps IoU >= ``min_overlap``,
    r = d (1 - sqrt(2m / (1 + m))) = 0.093 d, at least MIN_RADIUS.

    Vesicles span 10-50 px at the network scale; CenterNet's 0.273 d splat blurred their centres
    (benchmarks/bench_objects.py recipe, one run each, same seed: AP 0.80, AR 0.80, median radius
    error 12.9 % with CenterNet's rule against 0.90, 0.90, 7.4 % with this one).
    """
    r = float(diameter_cells) * (1.0 - np.sqrt(2.0 * min_overlap / (1.0 + min_overlap)))
    return max(MIN_RADIUS, int(r))


def draw_gaussian(heatmap: np.ndarray, col: int, row: int, radius: int) -> None:
    """Max-merge a Gaussian of sigma (2r+1)/6, peak 1 at (row, col), into ``heatmap`` [h, w] in place."""
    sigma = (2 * radius + 1) / 6.0
    d = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * sigma * sigma)).astype(np.float32)
    h, w = heatmap.shape
    r0, r1 = max(0, row - radius), min(h, row + radius + 1)
    c0, c1 = max(0, col - radius), min(w, col + radius + 1)
    if r0 >= r1 or c0 >= c1:
        return
    patch = g[r0 - row + radius:r1 - row + radius, c0 - col + radius:c1 - col + radius]
    np.maximum(heatmap[r0:r1, c0:c1], patch, out=heatmap[r0:r1, c0:c1])


def make_targets(points: np.ndarray, image_shape: tuple[int, int], diameter: float,
                 sizes: np.ndarray | None = None) -> Targets:
    """Targets for centres ``points`` [n, 2] (x, y network pixels) on an image of ``image_shape``
    (H, W network pixels, multiples of 4); ``diameter`` (network pixels) sets the splat radius
    (``gaussian_radius``); ``sizes`` [n, 2] (network pixels, x then y) fills the size map when given
    and sets each object's splat by ``shifted_box_radius`` instead.

    Centres outside the image are skipped. Two centres in one cell: the later one's offset wins.
    """
    H, W = image_shape
    h, w = H // STRIDE, W // STRIDE
    heat = np.zeros((h, w), dtype=np.float32)
    offset = np.zeros((2, h, w), dtype=np.float32)
    size = np.zeros((2, h, w), dtype=np.float32)
    mask = np.zeros((h, w), dtype=np.float32)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    hx, hy = network_to_heatmap(pts[:, 0]), network_to_heatmap(pts[:, 1])
    cols, rows = np.floor(hx).astype(np.int64), np.floor(hy).astype(np.int64)
    for i in range(pts.shape[0]):
        c, r = cols[i], rows[i]
        if not (0 <= c < w and 0 <= r < h):
            continue
        if sizes is None:  # particles, fibers: CenterNet's splat
            radius = gaussian_radius(diameter / STRIDE)
        else:  # objects with their own size (vesicles): the tighter shifted-box splat
            radius = shifted_box_radius(float(np.mean(sizes[i])) / STRIDE)
        draw_gaussian(heat, int(c), int(r), radius)
        offset[0, r, c] = hx[i] - c
        offset[1, r, c] = hy[i] - r
        if sizes is not None:
            size[:, r, c] = sizes[i]
        mask[r, c] = 1.0
    heat[mask > 0] = 1.0  # the exact centre cell is always 1 (focal-loss positive)
    return Targets(heat[None], offset, size, mask[None])
