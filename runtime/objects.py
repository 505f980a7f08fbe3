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
DEFAULT_BRIDGE_FACTOR = 2.0  # gap bridging: join tube ends up to this many tracing radii apart (0: off)


# ---------------------------------------------------------------- shared helpers
def original_shape(transform, shape: tuple[int, int] | None) -> tuple[int, int]:
    """(ny, nx) of the original micrograph: ``shape`` when given, else the transform's ``original_shape``."""
    shape = shape if shape is not None else getattr(transform, "original_shape", None)
    if shape is None:
        raise ValueError("the original micrograph shape is unknown: pass shape=(ny, nx)")
    return int(shape[0]), int(shape[1])


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
    order = np.lexsort((np.arange(n), -np.asarray(score, dtype=np.float64)))
    keep = _kernels()["suppress"](np.asarray(x, np.float64), np.asarray(y, np.float64), order, float(min_distance))
    return np.flatnonzero(keep)


_KERNELS: dict = {}


def _kernels() -> dict:
    """Compile (once, cached on disk) the numba loops of this module; numba is imported lazily."""
    if _KERNELS:
        return _KERNELS
    import math

    from numba import njit

    @njit(cache=True, nogil=True)
    def suppress(x, y, order, dist):  # pragma: no cover - compiled
        n = x.size
        removed = np.zeros(n, dtype=np.bool_)
        keep = np.zeros(n, dtype=np.bool_)
        d2 = dist * dist
        for i in order:
            if removed[i]:
                continue
            keep[i] = True
            for j in range(n):
                ex = x[j] - x[i]
                ey = y[j] - y[i]
                if ex * ex + ey * ey < d2 and j != i:
                    removed[j] = True
        return keep

    @njit(cache=True, nogil=True)
    def angle(ax, ay, bx, by):  # pragma: no cover - compiled
        na = math.hypot(ax, ay)
        nb = math.hypot(bx, by)
        if na == 0.0 or nb == 0.0:
            return 0.0
        c = (ax * bx + ay * by) / (na * nb)
        return math.acos(min(1.0, max(-1.0, c)))

    @njit(cache=True, nogil=True)
    def extend(start, has_dir, dx, dy, x, y, used, radius, max_angle, path, cand, dist):  # pragma: no cover
        n = x.size
        m = 0
        cur = start
        while True:
            k = 0
            r2 = radius * radius
            for j in range(n):
                if not used[j]:
                    ex = x[j] - x[cur]
                    ey = y[j] - y[cur]
                    d2 = ex * ex + ey * ey
                    if d2 <= r2:
                        cand[k] = j
                        dist[k] = d2  # squared distance: same order as the distance
                        k += 1
            if k == 0:
                return m
            chosen = -1
            for t in np.argsort(dist[:k], kind="mergesort"):  # nearest first; ties: lower index
                j = cand[t]
                if not has_dir or angle(dx, dy, x[j] - x[cur], y[j] - y[cur]) <= max_angle:
                    chosen = j
                    break
            if chosen < 0:
                return m
            used[chosen] = True
            path[m] = chosen
            m += 1
            sx = x[chosen] - x[cur]
            sy = y[chosen] - y[cur]
            if sx != 0.0 or sy != 0.0:
                dx, dy, has_dir = sx, sy, True
            cur = chosen

    @njit(cache=True, nogil=True)
    def trace(x, y, order, radius, max_angle):  # pragma: no cover - compiled
        n = x.size
        used = np.zeros(n, dtype=np.bool_)
        lines = np.empty(n, dtype=np.int64)
        bounds = np.zeros(n + 1, dtype=np.int64)
        fwd = np.empty(n, dtype=np.int64)
        back = np.empty(n, dtype=np.int64)
        cand = np.empty(n, dtype=np.int64)
        dist = np.empty(n, dtype=np.float64)
        n_lines = 0
        pos = 0
        for s in order:
            if used[s]:
                continue
            used[s] = True
            nf = extend(s, False, 0.0, 0.0, x, y, used, radius, max_angle, fwd, cand, dist)
            nb = 0
            if nf > 0:
                bx = x[s] - x[fwd[0]]
                by = y[s] - y[fwd[0]]
                nb = extend(s, bx != 0.0 or by != 0.0, bx, by, x, y, used, radius, max_angle, back, cand, dist)
            for t in range(nb - 1, -1, -1):
                lines[pos] = back[t]
                pos += 1
            lines[pos] = s
            pos += 1
            for t in range(nf):
                lines[pos] = fwd[t]
                pos += 1
            n_lines += 1
            bounds[n_lines] = pos
        return lines, bounds[: n_lines + 1]

    _KERNELS.update(suppress=suppress, trace=trace)
    return _KERNELS


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
                 min_points: int = 2, bridge_factor: float = DEFAULT_BRIDGE_FACTOR) -> list[np.ndarray]:
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
    - Fibers with fewer than ``min_points`` traced points are dropped.
    - Gap bridging (not in the paper): fibers whose ends lie within ``bridge_factor * radius`` and
      join smoothly (every turn <= ``max_angle_deg``) are merged, see ``bridge_fibers``; the 3x3 peak
      step leaves sparse maxima along a ridge, sometimes further apart than ``radius``, and
      crossings cut fibers. ``bridge_factor=0`` turns it off.
    - Each fiber is then smoothed with ``smooth_polyline(smooth_rad)``.
    """
    px = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    py = np.ascontiguousarray(y, dtype=np.float64).reshape(-1)
    n = px.size
    if n == 0:
        return []
    s = np.zeros(n) if score is None else np.asarray(score, dtype=np.float64).reshape(-1)
    order = np.lexsort((np.arange(n), -s))
    lines, bounds = _kernels()["trace"](px, py, order, float(radius), float(np.deg2rad(max_angle_deg)))
    pts = np.column_stack([px, py])
    traced = [lines[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= max(int(min_points), 1)]
    if bridge_factor and bridge_factor > 0:
        traced = bridge_fibers(traced, pts, max_gap=float(bridge_factor) * float(radius), reach=float(radius),
                               max_angle_deg=max_angle_deg)
    return [line[smooth_polyline(pts[line], smooth_rad)] for line in traced]


def _end_direction(pts: np.ndarray, line: np.ndarray, at_start: bool, reach: float) -> np.ndarray:
    """Outward direction at one end of a traced line: from the first vertex at least ``reach`` away
    from the end (walking inwards; the far end if none is) to the end vertex."""
    seq = line if at_start else line[::-1]
    end = pts[seq[0]]
    far = np.hypot(*(pts[seq[1:]] - end).T) >= reach
    inner = pts[seq[1:][np.argmax(far)]] if far.any() else pts[seq[-1]]
    return end - inner


def bridge_fibers(lines: list[np.ndarray], pts: np.ndarray, *, max_gap: float, reach: float,
                  max_angle_deg: float = DEFAULT_FIBER_ANGLE_DEG) -> list[np.ndarray]:
    """Join traced lines across gaps: returns the merged lines (index arrays into ``pts`` [n, 2]).

    Two lines are joined end to end when their ends are at most ``max_gap`` apart (units of
    ``pts``) and the join is smooth: the outward direction of the first end (``_end_direction``
    over ``reach``), the connecting segment and the inward direction of the second end each turn
    by at most ``max_angle_deg`` from one another. Greedy, cheapest join first, with cost
    ``gap / max_gap + largest turn / max_angle`` (closest and straightest); an end joins at most
    once and a join that would close a line onto itself is refused. Order of the result: merged
    lines take the place of their first member; unmerged lines keep their place.
    """
    n = len(lines)
    if n < 2 or max_gap <= 0:
        return list(lines)
    from scipy.spatial import cKDTree

    max_angle = float(np.deg2rad(max_angle_deg))
    # end e = 2 * line + (0: start, 1: finish)
    end_pts = np.array([pts[line[k]] for line in lines for k in (0, -1)], dtype=np.float64)
    end_dir = [_end_direction(pts, line, at_start, reach) for line in lines for at_start in (True, False)]
    candidates = []
    for a, b in sorted(cKDTree(end_pts).query_pairs(max_gap)):
        if a // 2 == b // 2:
            continue  # never a line with itself
        gap = end_pts[b] - end_pts[a]
        turns = [turn_angle(end_dir[a], -end_dir[b])]
        if np.any(gap):
            turns += [turn_angle(end_dir[a], gap), turn_angle(gap, -end_dir[b])]
        worst = max(turns)
        if worst <= max_angle:
            cost = float(np.hypot(*gap)) / max_gap + (worst / max_angle if max_angle > 0 else 0.0)
            candidates.append((cost, a, b))
    root = list(range(n))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    partner = np.full(2 * n, -1, dtype=np.int64)
    for _, a, b in sorted(candidates):
        if partner[a] >= 0 or partner[b] >= 0:
            continue
        ra, rb = find(a // 2), find(b // 2)
        if ra == rb:
            continue  # would close a loop
        root[max(ra, rb)] = min(ra, rb)
        partner[a], partner[b] = b, a
    merged: list[np.ndarray] = []
    done = np.zeros(n, dtype=bool)
    for i in range(n):
        if done[i]:
            continue
        # walk to one free end of this chain, then collect the chain from there
        line, enter = i, 0
        while partner[2 * line + enter] >= 0:
            nxt = partner[2 * line + enter]
            line, enter = nxt // 2, 1 - nxt % 2
        parts = []
        while True:
            done[line] = True
            parts.append(lines[line] if enter == 0 else lines[line][::-1])
            out = partner[2 * line + 1 - enter]
            if out < 0:
                break
            line, enter = out // 2, out % 2
        merged.append(np.concatenate(parts))
    return merged


def fibers_from_peaks(peaks: NetworkPeaks, transform, *, micrograph: str, radius: float = DEFAULT_FIBER_RADIUS,
                      max_angle_deg: float = DEFAULT_FIBER_ANGLE_DEG, smooth_rad: float = DEFAULT_SMOOTH_RAD,
                      edge_margin: float = 25.0, min_points: int = 2, shape: tuple[int, int] | None = None,
                      pixel_size: float | None = None, bridge_factor: float = DEFAULT_BRIDGE_FACTOR) -> Picks:
    """Fibers as ordered points in original pixels with 1-based ``tube_id`` (one ID per polyline).

    ``radius`` is the tracing radius r in network pixels at the 1024 scale (converted to original
    pixels by nx / 1024); tracing runs on the original-pixel centres that pass the edge margin.
    ``bridge_factor``: ends up to ``bridge_factor * radius`` apart are joined when smooth (see
    ``trace_fibers``); 0 turns bridging off.
    """
    shape = original_shape(transform, shape)
    x, y, keep = _filtered(peaks, transform, shape, edge_margin)
    idx = np.flatnonzero(keep)
    score = np.asarray(peaks.score, dtype=np.float64)[idx]
    x, y = x[idx], y[idx]
    r_orig = float(radius) * shape[1] / REFERENCE_WIDTH
    lines = trace_fibers(x, y, score, radius=r_orig, max_angle_deg=max_angle_deg, smooth_rad=smooth_rad,
                         min_points=min_points, bridge_factor=bridge_factor)
    if not lines:
        return Picks(micrograph, np.zeros(0), np.zeros(0), score=np.zeros(0), tube_id=np.zeros(0, dtype=np.int64),
                     shape=shape, pixel_size=pixel_size)
    order = np.concatenate(lines)
    tube = np.concatenate([np.full(len(line), k + 1, dtype=np.int64) for k, line in enumerate(lines)])
    return Picks(micrograph, x[order], y[order], score=score[order], tube_id=tube, shape=shape,
                 pixel_size=pixel_size)
