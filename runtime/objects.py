"""Objects from peaks: particles, vesicles (with radius) and fibers (points linked by line tracing).

Input peaks are in network-image pixels (``epick.runtime.peaks.NetworkPeaks``); every output is a
``Picks`` in ORIGINAL micrograph pixels (x = column, y = row, centre of the top-left pixel = 0),
mapped with ``transform.to_original(x_net, y_net)`` from ``epick.runtime.preprocess``.

Lengths given "at the 1024 scale" (edge margin, fiber tracing radius) are network pixels of a
1024-wide network image, as in the paper; they are converted to original pixels by
``original width / 1024`` (the same as scaling them to the network width actually used and then
mapping to original pixels).
"""
from __future__ import annotations

import numpy as np

from .peaks import NetworkPeaks
from .picks import Picks

REFERENCE_WIDTH = 1024.0  # network width at which the paper's lengths (edge margin, r) are given
DEFAULT_FIBER_RADIUS = 100.0  # line tracing radius r, network pixels at the 1024 scale
DEFAULT_FIBER_ANGLE_DEG = 30.0  # bending threshold `ang` (largest accepted turn per segment)
DEFAULT_SMOOTH_RAD = 0.1  # smoothing: drop vertices whose two segments differ by less than this


# ---------------------------------------------------------------- shared helpers
def original_shape(transform, shape: tuple[int, int] | None) -> tuple[int, int]:
    """(ny, nx) of the original micrograph: ``shape`` when given, else read from the transform."""
    if shape is not None:
        return int(shape[0]), int(shape[1])
    for name in ("original_shape", "shape_original", "input_shape", "shape"):
        value = getattr(transform, name, None)
        if value is not None and len(value) == 2:
            return int(value[0]), int(value[1])
    raise ValueError("the original micrograph shape is unknown: pass shape=(ny, nx)")


def pixel_scale(transform) -> tuple[float, float]:
    """Original pixels per network pixel along x and y (the transform is affine per axis)."""
    x0, y0 = transform.to_original(np.array([0.0]), np.array([0.0]))
    x1, y1 = transform.to_original(np.array([1.0]), np.array([1.0]))
    return float(np.asarray(x1 - x0).reshape(-1)[0]), float(np.asarray(y1 - y0).reshape(-1)[0])


def to_original(peaks: NetworkPeaks, transform) -> tuple[np.ndarray, np.ndarray]:
    """Peak centres in original pixels (float64)."""
    x, y = transform.to_original(np.asarray(peaks.x, dtype=np.float64), np.asarray(peaks.y, dtype=np.float64))
    return np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)


def inside_margin(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], edge_margin: float) -> np.ndarray:
    """Mask of centres at least ``edge_margin`` (1024-scale px) from the image border.

    The border is the outer pixel EDGE (-0.5 and n - 0.5 in centre coordinates); the margin in
    original pixels is ``edge_margin * nx / 1024`` on both axes (square pixels).
    """
    ny, nx = shape
    m = float(edge_margin) * nx / REFERENCE_WIDTH
    return (x >= m - 0.5) & (x <= nx - 0.5 - m) & (y >= m - 0.5) & (y <= ny - 0.5 - m)


def enforce_min_distance(x: np.ndarray, y: np.ndarray, score: np.ndarray, min_distance: float) -> np.ndarray:
    """Greedy by score (desc, then index): keep a point unless it lies closer than
    ``min_distance`` (same units as x, y) to a point already kept. Returns kept indices, sorted."""
    n = x.size
    if n == 0 or not min_distance or min_distance <= 0:
        return np.arange(n)
    from scipy.spatial import cKDTree

    tree = cKDTree(np.column_stack([x, y]))
    order = np.lexsort((np.arange(n), -score))
    removed = np.zeros(n, dtype=bool)
    keep = []
    for i in order:
        if removed[i]:
            continue
        keep.append(i)
        for j in tree.query_ball_point((x[i], y[i]), r=float(min_distance)):
            if j != i and np.hypot(x[j] - x[i], y[j] - y[i]) < min_distance:
                removed[j] = True
    return np.sort(np.asarray(keep, dtype=np.int64))


def _filtered(peaks: NetworkPeaks, transform, shape, edge_margin: float):
    x, y = to_original(peaks, transform)
    keep = inside_margin(x, y, shape, edge_margin) if edge_margin else np.ones(x.size, dtype=bool)
    return x, y, keep


# ---------------------------------------------------------------- particles and vesicles
def particles_from_peaks(peaks: NetworkPeaks, transform, *, micrograph: str, diameter: float | None = None,
                         edge_margin: float = 25.0, min_distance: float | None = None,
                         shape: tuple[int, int] | None = None, pixel_size: float | None = None) -> Picks:
    """Particle centres in original pixels, best first.

    ``edge_margin``: network pixels at the 1024 scale (see ``inside_margin``); 0 keeps all.
    ``min_distance``: original pixels; greedy by score (``enforce_min_distance``); None keeps all.
    ``shape``: (ny, nx) of the original micrograph, read from the transform when omitted.
    """
    shape = original_shape(transform, shape)
    x, y, keep = _filtered(peaks, transform, shape, edge_margin)
    idx = np.flatnonzero(keep)
    score = np.asarray(peaks.score, dtype=np.float64)
    if min_distance:
        idx = idx[enforce_min_distance(x[idx], y[idx], score[idx], min_distance)]
    return Picks(micrograph, x[idx], y[idx], score=score[idx], shape=shape, diameter=diameter,
                 pixel_size=pixel_size)


def vesicles_from_peaks(peaks: NetworkPeaks, transform, *, micrograph: str, edge_margin: float = 25.0,
                        min_distance: float | None = None, shape: tuple[int, int] | None = None,
                        pixel_size: float | None = None) -> Picks:
    """Vesicle centres and radii in original pixels, best first.

    The size head gives the diameter in network pixels (x then y); the radius is
    ``mean(size_x * sx, size_y * sy) / 2`` with (sx, sy) original pixels per network pixel.
    Overlapping vesicles stay separate unless ``min_distance`` (original pixels) is set.
    """
    if peaks.size is None:
        raise ValueError("vesicles need the size head: the model has no 'size' output")
    shape = original_shape(transform, shape)
    x, y, keep = _filtered(peaks, transform, shape, edge_margin)
    sx, sy = pixel_scale(transform)
    size = np.asarray(peaks.size, dtype=np.float64).reshape(-1, 2)
    radius = 0.5 * (size[:, 0] * abs(sx) + size[:, 1] * abs(sy)) / 2.0
    idx = np.flatnonzero(keep)
    score = np.asarray(peaks.score, dtype=np.float64)
    if min_distance:
        idx = idx[enforce_min_distance(x[idx], y[idx], score[idx], min_distance)]
    return Picks(micrograph, x[idx], y[idx], score=score[idx], radius=radius[idx], shape=shape,
                 pixel_size=pixel_size)


# ---------------------------------------------------------------- fibers: line tracing
def turn_angle(d1: np.ndarray, d2: np.ndarray) -> float:
    """Angle in radians [0, pi] between directions d1 and d2; 0 when either has zero length."""
    n1 = float(np.hypot(d1[0], d1[1]))
    n2 = float(np.hypot(d2[0], d2[1]))
    if n1 == 0.0 or n2 == 0.0:
        return 0.0
    c = (d1[0] * d2[0] + d1[1] * d2[1]) / (n1 * n2)
    return float(np.arccos(min(1.0, max(-1.0, c))))


def _extend(start: int, direction, pts: np.ndarray, used: np.ndarray, tree, radius: float,
            max_angle: float) -> list[int]:
    """Trace from ``start``: repeatedly join the nearest unused point within ``radius`` whose turn
    from the previous segment is <= ``max_angle`` (no angle test while ``direction`` is None)."""
    path: list[int] = []
    current = start
    while True:
        here = pts[current]
        cand = [j for j in tree.query_ball_point(here, r=radius) if not used[j]]
        if not cand:
            return path
        cand = np.asarray(cand, dtype=np.int64)
        dist = np.hypot(pts[cand, 0] - here[0], pts[cand, 1] - here[1])
        chosen = -1
        for j in cand[np.lexsort((cand, dist))]:  # nearest first, ties by index
            step = pts[j] - here
            if direction is None or turn_angle(direction, step) <= max_angle:
                chosen = int(j)
                break
        if chosen < 0:
            return path
        used[chosen] = True
        path.append(chosen)
        step = pts[chosen] - here
        if step[0] != 0.0 or step[1] != 0.0:
            direction = step
        current = chosen


def smooth_polyline(pts: np.ndarray, smooth_rad: float = DEFAULT_SMOOTH_RAD) -> np.ndarray:
    """Indices (into ``pts`` [n, 2], in order) of the vertices kept after smoothing.

    Walking along the line, an interior vertex is dropped when the segment from the last KEPT
    vertex to it and the segment from it to the next vertex differ by less than ``smooth_rad``
    radians (collinear runs collapse to their end points); the two ends are always kept.
    """
    n = len(pts)
    if n <= 2 or smooth_rad <= 0:
        return np.arange(n)
    keep = [0]
    for i in range(1, n - 1):
        if turn_angle(pts[i] - pts[keep[-1]], pts[i + 1] - pts[i]) >= smooth_rad:
            keep.append(i)
    keep.append(n - 1)
    return np.asarray(keep, dtype=np.int64)


def trace_fibers(x, y, score=None, *, radius: float = DEFAULT_FIBER_RADIUS,
                 max_angle_deg: float = DEFAULT_FIBER_ANGLE_DEG, smooth_rad: float = DEFAULT_SMOOTH_RAD,
                 min_points: int = 2) -> list[np.ndarray]:
    """Link points into fibers with the paper's line tracing algorithm; returns ordered polylines
    as integer index arrays into (x, y), one per fiber, in the order their start points were taken.

    - Start point: the unused point with the highest score (ties: lowest index; all scores equal
      when ``score`` is None).
    - From the start, join the nearest unused point within ``radius`` (same units as x, y; the
      first step has no angle test), then repeatedly join the nearest unused point within
      ``radius`` whose turn angle from the previous segment is <= ``max_angle_deg``; candidates
      failing the angle test are skipped and the next nearest is tried.
    - When no candidate qualifies, trace the other direction from the start point (its previous
      segment is the first segment reversed); then a new fiber starts.
    - Each fiber is smoothed with ``smooth_polyline(smooth_rad)``; fibers with fewer than
      ``min_points`` traced points are dropped.
    """
    pts = np.column_stack([np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)])
    n = len(pts)
    if n == 0:
        return []
    from scipy.spatial import cKDTree

    s = np.zeros(n) if score is None else np.asarray(score, dtype=np.float64).reshape(-1)
    tree = cKDTree(pts)
    used = np.zeros(n, dtype=bool)
    max_angle = np.deg2rad(float(max_angle_deg))
    fibers: list[np.ndarray] = []
    for start in np.lexsort((np.arange(n), -s)):
        if used[start]:
            continue
        used[start] = True
        forward = _extend(int(start), None, pts, used, tree, radius, max_angle)
        backward: list[int] = []
        if forward:
            back_dir = pts[start] - pts[forward[0]]
            backward = _extend(int(start), back_dir if np.any(back_dir) else None, pts, used, tree, radius, max_angle)
        line = np.asarray(backward[::-1] + [int(start)] + forward, dtype=np.int64)
        if len(line) < max(int(min_points), 1):
            continue
        fibers.append(line[smooth_polyline(pts[line], smooth_rad)])
    return fibers


def fibers_from_peaks(peaks: NetworkPeaks, transform, *, micrograph: str, radius: float = DEFAULT_FIBER_RADIUS,
                      max_angle_deg: float = DEFAULT_FIBER_ANGLE_DEG, smooth_rad: float = DEFAULT_SMOOTH_RAD,
                      edge_margin: float = 25.0, min_points: int = 2, shape: tuple[int, int] | None = None,
                      pixel_size: float | None = None) -> Picks:
    """Fibers as ordered points in original pixels with 1-based ``tube_id`` (one ID per polyline).

    ``radius`` is the tracing radius r in network pixels at the 1024 scale (converted to original
    pixels by nx / 1024); tracing runs on the original-pixel centres that pass the edge margin.
    """
    shape = original_shape(transform, shape)
    x, y, keep = _filtered(peaks, transform, shape, edge_margin)
    idx = np.flatnonzero(keep)
    score = np.asarray(peaks.score, dtype=np.float64)[idx]
    x, y = x[idx], y[idx]
    r_orig = float(radius) * shape[1] / REFERENCE_WIDTH
    lines = trace_fibers(x, y, score, radius=r_orig, max_angle_deg=max_angle_deg, smooth_rad=smooth_rad,
                         min_points=min_points)
    if not lines:
        return Picks(micrograph, np.zeros(0), np.zeros(0), score=np.zeros(0), tube_id=np.zeros(0, dtype=np.int64),
                     shape=shape, pixel_size=pixel_size)
    order = np.concatenate(lines)
    tube = np.concatenate([np.full(len(line), k + 1, dtype=np.int64) for k, line in enumerate(lines)])
    return Picks(micrograph, x[order], y[order], score=score[order], tube_id=tube, shape=shape,
                 pixel_size=pixel_size)
