"""GpuPeakFinder: network outputs on the GPU -> NetworkPeaks, identical to ``epick.runtime.peaks``.

Only the per-image peak count and the top-K rows (index, logit, x, y[, size]) come back to the host.
"""
from __future__ import annotations

import numpy as np

from epick.runtime.peaks import STRIDE, NetworkPeaks, logit_threshold, sigmoid64


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
        from ._device import BLOCK_1D, BLOCK_2D, blocks_for
        from .preprocess_kernels import k_fill

        shape = tuple(heatmap.shape)
        if len(shape) == 4 and shape[1] == 1:
            shape = (shape[0],) + shape[2:]
        if len(shape) != 3:
            raise ValueError(f"heatmap must be [N, h, w] or [N, 1, h, w], got {tuple(heatmap.shape)}")
        n_img, h, w = shape
        if h * w == 0 or n_img == 0:
            return [NetworkPeaks.empty(size is not None) for _ in range(n_img)]
        s, k, pool = self.stream, self._k, self._pool
        logits = self._device("heatmap", heatmap, (n_img, h, w))
        off = self._device("offset", offset, (n_img, 2, h, w))
        has_size = size is not None
        siz = self._device("size", size, (n_img, 2, h, w)) if has_size else off
        kk = max(self.top_k, 1)
        counter = pool.get("counter", n_img, np.int32, s)
        k_fill[1, BLOCK_1D, s](counter, 0)
        cand_index = pool.get("cand_index", (n_img, h * w), np.int32, s)
        cand_logit = pool.get("cand_logit", (n_img, h * w), np.float32, s)
        out_index = pool.get("out_index", (n_img, kk), np.int32, s)
        out_logit = pool.get("out_logit", (n_img, kk), np.float32, s)
        out_x = pool.get("out_x", (n_img, kk), np.float64, s)
        out_y = pool.get("out_y", (n_img, kk), np.float64, s)
        out_size = pool.get("out_size", (n_img, kk, 2), np.float32, s)
        bx, by = BLOCK_2D
        k.k_candidates[(blocks_for(w, bx), blocks_for(h, by), n_img), (bx, by, 1), s](
            logits, self.logit_t, counter, cand_index, cand_logit)
        k.k_rank_decode[(blocks_for(h * w), n_img), BLOCK_1D, s](
            counter, cand_index, cand_logit, off, siz, 1 if has_size else 0, self.top_k,
            out_index, out_logit, out_x, out_y, out_size)
        counts = counter.copy_to_host(stream=s)
        host = [a.copy_to_host(stream=s) for a in (out_index, out_logit, out_x, out_y)]
        sizes = out_size.copy_to_host(stream=s) if has_size else None
        s.synchronize()
        result = []
        for i in range(n_img):
            m = max(0, int(min(counts[i], self.top_k)))
            result.append(NetworkPeaks(
                x=host[2][i, :m].copy(), y=host[3][i, :m].copy(), score=sigmoid64(host[1][i, :m]),
                size=None if sizes is None else sizes[i, :m].astype(np.float64),
                index=host[0][i, :m].astype(np.int64)))
        return result

    def find(self, heatmap, offset, size=None) -> NetworkPeaks:
        """Peaks of one image: heatmap [h, w] (or [1, h, w]), offset/size [2, h, w]."""
        h, w = tuple(heatmap.shape)[-2:]
        add = lambda a, c: None if a is None else (a.reshape(1, c, h, w))  # noqa: E731
        return self.find_batch(heatmap.reshape(1, h, w), add(offset, 2), add(size, 2))[0]
