"""Where things go on a micrograph: random positions with a minimum spacing, pasting boxes, and
smooth random fields. Positions are (x = column, y = row) in pixels, centres of pixels at integers.
"""
from __future__ import annotations

import numpy as np


def sample_positions(rng: np.random.Generator, n: int, shape: tuple[int, int], margin: float,
                     min_dist: float, allowed: np.ndarray | None = None,
                     occupied: np.ndarray | None = None, occupied_dist: float = 0.0,
                     max_tries: int = 30) -> np.ndarray:
    """Up to ``n`` integer positions (k, 2) as (x, y), ``margin`` px from the edges, at least
    ``min_dist`` px apart and ``occupied_dist`` px from each of ``occupied`` (m, 2); where
    ``allowed`` (bool image) is given, only on its True pixels. Fewer come back when space runs out.
    """
    ny, nx = shape
    lo_x, hi_x = margin, nx - 1 - margin
    lo_y, hi_y = margin, ny - 1 - margin
    if n <= 0 or hi_x < lo_x or hi_y < lo_y:
        return np.zeros((0, 2), dtype=np.int64)
    cell = max(min_dist, occupied_dist, 1.0)
    grid: dict[tuple[int, int], list[tuple[float, float, float]]] = {}

    def add(px: float, py: float, r: float) -> None:
        grid.setdefault((int(px // cell), int(py // cell)), []).append((px, py, r))

    if occupied is not None:
        for px, py in np.asarray(occupied, float).reshape(-1, 2):
            add(px, py, occupied_dist)
    out: list[tuple[int, int]] = []
    budget = n * max_tries
    batch = max(64, 4 * n)
    while len(out) < n and budget > 0:
        cand = np.stack([rng.integers(int(np.ceil(lo_x)), int(hi_x) + 1, batch),
                         rng.integers(int(np.ceil(lo_y)), int(hi_y) + 1, batch)], 1)
        for cx, cy in cand:
            budget -= 1
            if budget <= 0 or len(out) >= n:
                break
            if allowed is not None and not allowed[cy, cx]:
                continue
            gx, gy = int(cx // cell), int(cy // cell)
            ok = True
            for ix in (gx - 1, gx, gx + 1):
                for iy in (gy - 1, gy, gy + 1):
                    for px, py, r in grid.get((ix, iy), ()):
                        if (px - cx) ** 2 + (py - cy) ** 2 < max(r, min_dist) ** 2:
                            ok = False
                            break
                    if not ok:
                        break
                if not ok:
                    break
            if ok:
                out.append((int(cx), int(cy)))
                add(cx, cy, 0.0)
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def paste(dst: np.ndarray, src: np.ndarray, cx: int, cy: int, scale: float = 1.0) -> None:
    """Add ``scale * src`` into ``dst`` with src's centre pixel (h // 2, w // 2) on (x=cx, y=cy), clipped."""
    h, w = src.shape
    y0, x0 = cy - h // 2, cx - w // 2
    ys, xs = max(0, -y0), max(0, -x0)
    ye, xe = min(h, dst.shape[0] - y0), min(w, dst.shape[1] - x0)
    if ye <= ys or xe <= xs:
        return
    region = dst[y0 + ys:y0 + ye, x0 + xs:x0 + xe]
    if scale == 1.0:
        region += src[ys:ye, xs:xe]
    else:
        region += scale * src[ys:ye, xs:xe]


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int = 6) -> np.ndarray:
    """A smooth random field of ``shape`` (zero mean, unit std): a ``cells`` x ``cells`` grid of
    Gaussian values interpolated with Gaussian weights (two small matrix products, fast at 4096^2)."""
    ny, nx = shape
    g = rng.normal(size=(cells + 2, cells + 2))

    def weights(n: int) -> np.ndarray:
        nodes = np.linspace(-1, cells, cells + 2) / (cells - 1) * (n - 1)
        pos = np.arange(n)[:, None]
        w = np.exp(-0.5 * ((pos - nodes[None, :]) / (n / (cells - 1) * 0.7)) ** 2)
        return (w / w.sum(1, keepdims=True)).astype(np.float32)

    f = weights(ny) @ g.astype(np.float32) @ weights(nx).T
    f -= f.mean()
    return f / max(float(f.std()), 1e-12)
