"""GpuPeakFinder: network outputs on the GPU -> NetworkPeaks, identical to ``epick.runtime.peaks``.

Only the per-image peak count and the top-K rows (index, logit, x, y[, size]) come back to the host.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from epick.runtime.peaks import STRIDE, NetworkPeaks, logit_threshold, sigmoid64


@dataclass
class PendingPeaks:
    """A batch whose peak rows are being copied to pinned host buffers (``GpuPeakFinder.collect``)."""

    n_img: int
    has_size: bool
    host: dict | None          # pinned arrays by name, None when there is nothing to find
    event: object              # recorded after the copies


class GpuPeakFinder:
    """Peak extraction on the GPU with device buffers reused per (N, h, w) and one stream.

    ``find_batch(heatmap, offset, size=None)`` takes host or device arrays: heatmap LOGITS
    [N, h, w] or [N, 1, h, w] float32, offset (and size) [N, 2, h, w] float32, x then y.
    """

    def __init__(self, *, threshold: float = 0.3, top_k: int = 2000, stride: int = STRIDE, stream=None):
        from numba import cuda

        from . import peaks_kernels as kernels
        from ._device import BufferPool

        if stride != STRIDE or kernels.STRIDE != STRIDE:
            raise ValueError(f"only stride {STRIDE} is supported, got {stride}")
        self.threshold = float(threshold)
        self.logit_t = logit_threshold(threshold)
        self.top_k = int(top_k)
        self.stream = stream if stream is not None else cuda.stream()
        self._k = kernels
        self._pool = BufferPool()
        self._host_ring: dict[tuple, list[dict]] = {}

    def _device(self, name: str, array, shape):
        from ._device import as_device, is_device_array

        if is_device_array(array):
            dev = as_device(array, self.stream, np.float32)
        else:
            host = np.ascontiguousarray(array, dtype=np.float32)
            if host.size != int(np.prod(shape)):
                raise ValueError(f"{name} must have shape {tuple(shape)}, got {host.shape}")
            dev = self._pool.upload(name, host.reshape(shape), self.stream)
        if tuple(dev.shape) != tuple(shape):
            dev = dev.reshape(*shape) if int(np.prod(dev.shape)) == int(np.prod(shape)) else None
        if dev is None:
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(array.shape)}")
        return dev

    def find_batch(self, heatmap, offset, size=None) -> list[NetworkPeaks]:
        """Peaks of each image, best first (see ``epick.runtime.peaks.find_peaks``)."""
        return self.collect(self.enqueue_batch(heatmap, offset, size))

    def enqueue_batch(self, heatmap, offset, size=None) -> "PendingPeaks":
        """Enqueue the peak kernels and the copy of the top-K rows into pinned host buffers on the
        stream, without waiting; ``collect`` gives the NetworkPeaks. Up to ``HOST_RING`` batches may be
        pending at once without allocating (more allocate more pinned buffers)."""
        from ._device import BLOCK_1D, BLOCK_2D, blocks_for, new_event
        from .preprocess_kernels import k_fill

        shape = tuple(heatmap.shape)
        if len(shape) == 4 and shape[1] == 1:
            shape = (shape[0],) + shape[2:]
        if len(shape) != 3:
            raise ValueError(f"heatmap must be [N, h, w] or [N, 1, h, w], got {tuple(heatmap.shape)}")
        n_img, h, w = shape
        has_size = size is not None
        if h * w == 0 or n_img == 0:
            return PendingPeaks(n_img, has_size, None, None)
        s, k, pool = self.stream, self._k, self._pool
        logits = self._device("heatmap", heatmap, (n_img, h, w))
        off = self._device("offset", offset, (n_img, 2, h, w))
        siz = self._device("size", size, (n_img, 2, h, w)) if has_size else off
        kk = max(self.top_k, 1)
        counter = pool.get("counter", n_img, np.int32, s)
        k_fill[1, BLOCK_1D, s](counter, 0)
        cand_index = pool.get("cand_index", (n_img, h * w), np.int32, s)
        cand_logit = pool.get("cand_logit", (n_img, h * w), np.float32, s)
        out = {"index": pool.get("out_index", (n_img, kk), np.int32, s),
               "logit": pool.get("out_logit", (n_img, kk), np.float32, s),
               "x": pool.get("out_x", (n_img, kk), np.float64, s),
               "y": pool.get("out_y", (n_img, kk), np.float64, s),
               "size": pool.get("out_size", (n_img, kk, 2), np.float32, s)}
        bx, by = BLOCK_2D
        k.k_candidates[(blocks_for(w, bx), blocks_for(h, by), n_img), (bx, by, 1), s](
            logits, self.logit_t, counter, cand_index, cand_logit)
        k.k_rank_decode[(blocks_for(h * w), n_img), BLOCK_1D, s](
            counter, cand_index, cand_logit, off, siz, 1 if has_size else 0, self.top_k,
            out["index"], out["logit"], out["x"], out["y"], out["size"])
        host = self._host_buffers(n_img, kk)
        counter.copy_to_host(host["counts"], stream=s)
        for name in ("index", "logit", "x", "y") + (("size",) if has_size else ()):
            out[name].copy_to_host(host[name], stream=s)
        done = new_event()
        done.record(s)
        return PendingPeaks(n_img, has_size, host, done)

    HOST_RING = 4

    def _host_buffers(self, n_img: int, kk: int) -> dict:
        """A free set of pinned host buffers for one batch's rows (a ring per (N, K))."""
        from numba import cuda

        ring = self._host_ring.setdefault((n_img, kk), [])
        for entry in ring:
            if not entry["busy"]:
                entry["busy"] = True
                return entry
        entry = {"busy": True, "counts": cuda.pinned_array(n_img, np.int32),
                 "index": cuda.pinned_array((n_img, kk), np.int32), "logit": cuda.pinned_array((n_img, kk), np.float32),
                 "x": cuda.pinned_array((n_img, kk), np.float64), "y": cuda.pinned_array((n_img, kk), np.float64),
                 "size": cuda.pinned_array((n_img, kk, 2), np.float32)}
        if len(ring) < self.HOST_RING:
            ring.append(entry)
        return entry

    def collect(self, pending: "PendingPeaks") -> list[NetworkPeaks]:
        """Wait for a batch enqueued by ``enqueue_batch``; its NetworkPeaks (copies: the pinned
        buffers go back to the ring)."""
        if pending.host is None:
            return [NetworkPeaks.empty(pending.has_size) for _ in range(pending.n_img)]
        pending.event.synchronize()
        host, result = pending.host, []
        for i in range(pending.n_img):
            m = max(0, int(min(host["counts"][i], self.top_k)))
            result.append(NetworkPeaks(
                x=host["x"][i, :m].copy(), y=host["y"][i, :m].copy(), score=sigmoid64(host["logit"][i, :m]),
                size=host["size"][i, :m].astype(np.float64) if pending.has_size else None,
                index=host["index"][i, :m].astype(np.int64)))
        host["busy"] = False
        return result

    def find(self, heatmap, offset, size=None) -> NetworkPeaks:
        """Peaks of one image: heatmap [h, w] (or [1, h, w]), offset/size [2, h, w]."""
        h, w = tuple(heatmap.shape)[-2:]
        add = lambda a, c: None if a is None else (a.reshape(1, c, h, w))  # noqa: E731
        return self.find_batch(heatmap.reshape(1, h, w), add(offset, 2), add(size, 2))[0]
