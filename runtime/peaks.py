"""Stride-4 geometry and peak extraction: network outputs -> peaks in network-image pixels.

Geometry (the one place it is written; the trainer's targets and every decoder use it):
    a centre at network-image pixel ``u`` (centre-of-pixel convention, see ARCHITECTURE.md) lies at
    heatmap coordinate ``h = (u + 0.5) / R``; its heatmap cell is ``floor(h)`` and its offset
    target is ``h - floor(h)`` in [0, 1). Decoding inverts it: ``u = (cell + offset) * R - 0.5``.

Peak rule (the CPU path below and the GPU kernels in ``epick.cuda_kernels`` follow it exactly):
    1. score = sigmoid(logit).
    2. 3x3 local maximum: a cell is a peak when no cell of its 3x3 neighbourhood is larger
       (max-pool with -inf padding, "equals the pooled max"). TIES: every cell of a plateau that
       equals the neighbourhood max is kept, as in CenterNet; nothing is broken by position.
       The comparison is made on the float32 LOGITS: sigmoid is strictly increasing, so this is
       the max-pool of the probabilities, without artificial plateaus where float32 sigmoid
       saturates at 1.0. NaN logits are never peaks and count as -inf for their neighbours.
    3. threshold: keep score >= threshold, tested as logit >= log(t / (1 - t)) (float64).
    4. top-K in a stable order: logit (= score) descending, then row-major cell index ascending.
    5. position = heatmap_to_network(cell + offset), offset channel 0 = x, channel 1 = y.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRIDE = 4  # output stride R: network-image pixels per heatmap cell


def network_to_heatmap(u):
    """Heatmap coordinate of network-image pixel coordinate ``u``: (u + 0.5) / R (R = STRIDE)."""
    return (np.asarray(u, dtype=np.float64) + 0.5) / STRIDE


def heatmap_to_network(h):
    """Network-image pixel coordinate of heatmap coordinate ``h``: h * R - 0.5 (R = STRIDE)."""
    return np.asarray(h, dtype=np.float64) * STRIDE - 0.5


@dataclass
class NetworkPeaks:
    """Peaks of one heatmap, best first: positions in network-image pixels (centre convention).

    - ``x``, ``y``: float64 [n], network-image pixels (x = column, y = row).
    - ``score``: float64 [n], sigmoid probability.
    - ``size``: float64 [n, 2] (x then y) in network pixels from the size head, or None.
    - ``index``: int64 [n], row-major heatmap cell index (row * w + col) of each peak.
    """

    x: np.ndarray
    y: np.ndarray
    score: np.ndarray
    size: np.ndarray | None = None
    index: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.size)

    @classmethod
    def empty(cls, with_size: bool = False) -> "NetworkPeaks":
        """No peaks."""
        size = np.zeros((0, 2)) if with_size else None
        return cls(np.zeros(0), np.zeros(0), np.zeros(0), size, np.zeros(0, dtype=np.int64))


def logit_threshold(threshold: float) -> float:
    """The logit whose sigmoid equals ``threshold`` (float64; -inf for 0, +inf for 1)."""
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {t}")
    if t == 0.0:
        return -np.inf
    if t == 1.0:
        return np.inf
    return float(np.log(t) - np.log1p(-t))


def sigmoid64(logits: np.ndarray) -> np.ndarray:
    """Sigmoid in float64 (scores reported to the user)."""
    z = np.asarray(logits, dtype=np.float64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


_KERNEL = None


def _candidates_kernel():
    """Compile (once, cached on disk) the numba loop that lists local maxima above the threshold."""
    global _KERNEL
    if _KERNEL is None:
        from numba import njit

        @njit(cache=True, nogil=True)
        def local_maxima(logits, logit_t):
            h, w = logits.shape
            out = np.empty(h * w, dtype=np.int64)
            n = 0
            for r in range(h):
                for c in range(w):
                    v = logits[r, c]
                    if not (v >= logit_t):  # also rejects NaN
                        continue
                    peak = True
                    for dr in range(-1, 2):
                        rr = r + dr
                        if rr < 0 or rr >= h:
                            continue
                        for dc in range(-1, 2):
                            cc = c + dc
                            if cc < 0 or cc >= w:
                                continue
                            if logits[rr, cc] > v:  # NaN neighbours compare False: count as -inf
                                peak = False
                    if peak:
                        out[n] = r * w + c
                        n += 1
            return out[:n]

        _KERNEL = local_maxima
    return _KERNEL


def order_candidates(logits_flat: np.ndarray, index: np.ndarray, top_k: int) -> np.ndarray:
    """Stable top-K of candidate cells: logit descending, then row-major index ascending."""
    index = np.asarray(index, dtype=np.int64)
    order = np.lexsort((index, -logits_flat[index].astype(np.float64)))
    return index[order[: max(int(top_k), 0)]]


def decode_cells(index: np.ndarray, width: int, offset: np.ndarray):
    """Network-image pixel positions (x, y) of cells ``index`` plus their offsets (x then y)."""
    rows, cols = np.divmod(np.asarray(index, dtype=np.int64), int(width))
    off_x = offset[0].reshape(-1)[index].astype(np.float64)
    off_y = offset[1].reshape(-1)[index].astype(np.float64)
    return heatmap_to_network(cols + off_x), heatmap_to_network(rows + off_y)


def _check_shapes(heatmap: np.ndarray, offset: np.ndarray, size: np.ndarray | None) -> None:
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be 2-D [h, w], got shape {heatmap.shape}")
    want = (2,) + heatmap.shape
    if offset.shape != want:
        raise ValueError(f"offset must have shape {want} (x then y), got {offset.shape}")
    if size is not None and size.shape != want:
        raise ValueError(f"size must have shape {want} (x then y), got {size.shape}")


def find_peaks(heatmap_logits: np.ndarray, offset: np.ndarray, size: np.ndarray | None = None, *,
               threshold: float = 0.3, top_k: int = 2000, stride: int = STRIDE) -> NetworkPeaks:
    """Peaks of one heatmap of LOGITS [h, w] with offsets [2, h, w] (x then y), best first.

    Positions are network-image pixels; see the module docstring for the exact rule (ties, NaN,
    threshold, order). ``size`` [2, h, w] (diameter in network pixels, x then y) is sampled at
    the peaks when given. Only stride 4 is supported (the geometry is fixed by STRIDE).
    """
    if stride != STRIDE:
        raise ValueError(f"only stride {STRIDE} is supported, got {stride}")
    logits = np.ascontiguousarray(heatmap_logits, dtype=np.float32)
    offset = np.asarray(offset)
    size = None if size is None else np.asarray(size)
    _check_shapes(logits, offset, size)
    if logits.size == 0:
        return NetworkPeaks.empty(size is not None)
    cand = _candidates_kernel()(logits, logit_threshold(threshold))
    flat = logits.reshape(-1)
    index = order_candidates(flat, cand, top_k)
    x, y = decode_cells(index, logits.shape[1], offset)
    sizes = None
    if size is not None:
        sizes = np.stack([size[0].reshape(-1)[index], size[1].reshape(-1)[index]], axis=1).astype(np.float64)
    return NetworkPeaks(x, y, sigmoid64(flat[index]), sizes, index)


def find_peaks_batch(heatmap_logits: np.ndarray, offset: np.ndarray, size: np.ndarray | None = None, *,
                     threshold: float = 0.3, top_k: int = 2000, stride: int = STRIDE) -> list[NetworkPeaks]:
    """find_peaks for each image of a batch: heatmap [N, h, w] or [N, 1, h, w], offset/size [N, 2, h, w]."""
    heat = np.asarray(heatmap_logits)
    if heat.ndim == 4:
        if heat.shape[1] != 1:
            raise ValueError(f"heatmap must have one channel, got shape {heat.shape}")
        heat = heat[:, 0]
    if heat.ndim != 3:
        raise ValueError(f"heatmap batch must be [N, h, w] or [N, 1, h, w], got {heat.shape}")
    offset = np.asarray(offset)
    if offset.shape[0] != heat.shape[0] or (size is not None and np.asarray(size).shape[0] != heat.shape[0]):
        raise ValueError("heatmap, offset and size batches differ in length")
    return [find_peaks(heat[i], offset[i], None if size is None else size[i],
                       threshold=threshold, top_k=top_k, stride=stride) for i in range(heat.shape[0])]
