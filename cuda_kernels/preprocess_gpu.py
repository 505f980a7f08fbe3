"""GpuPreprocessor: a micrograph on the GPU -> the equalised uint8 network image and the float32
network input, with the parameters and algorithm of ``epick.runtime.preprocess`` (same bits).

Only the robust-range histograms (hist_bins int64 values per refinement round, usually one or two
rounds) and four scalars travel to the host; the image stays on the device.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

from epick.runtime.preprocess import (LEVELS, PreprocessParams, Transform, area_weights, gaussian_weights,
                                      refine_range, robust_range)

SUPPORTED_DTYPES = (np.float32, np.float16, np.int8, np.uint8, np.uint16, np.int16)
ROBUST_ROUNDS = inspect.signature(robust_range).parameters["max_rounds"].default  # the CPU default


@dataclass
class GpuImage:
    """Result of one micrograph: device arrays (numba DeviceNDArray) and the coordinate transform.

    - ``levels``: uint8 [my, mx], the network image (= CPU ``preprocess`` output).
    - ``network_input``: float32 [1, 1, H, W], u8 / 255 padded to a multiple (or None).
    - ``bounds``: (lo, hi) grey range found by the robust quantiles, or None (constant image).
    """

    levels: object
    network_input: object | None
    transform: Transform
    bounds: tuple[float, float] | None


class GpuPreprocessor:
    """Preprocess micrographs on the GPU; device buffers are kept per shape and reused.

    ``run(image)`` takes a host array or a device array (anything with
    ``__cuda_array_interface__``) of float32, float16, int8, uint8, int16 or uint16.
    ``pad_multiple``/``pad_mode`` shape the network input like ``pad_to_multiple`` (0: no input).
    """

    def __init__(self, params: PreprocessParams | None = None, *, pad_multiple: int = 32, pad_mode: str = "mean",
                 stream=None):
        from numba import cuda

        from . import preprocess_kernels as kernels

        if pad_mode not in ("mean", "edge"):
            raise ValueError(f"pad_mode must be 'mean' or 'edge', got {pad_mode!r}")
        self.params = params or PreprocessParams()
        self.pad_multiple = int(pad_multiple)
        self.pad_mode = pad_mode
        self.stream = stream if stream is not None else cuda.stream()
        self._cuda = cuda
        self._k = kernels
        from ._device import BufferPool

        self._pool = BufferPool()
        self._weights: dict[tuple, tuple] = {}

    # ------------------------------------------------------------------ helpers
    def _axis_weights(self, n_in: int, n_out: int):
        """Device copies of ``area_weights(n_in, n_out)``, uploaded once per pair."""
        return self._device_weights(("area", n_in, n_out), area_weights)

    def _blur_weights(self, n: int, sigma: float):
        """Device copies of ``gaussian_weights(n, sigma)``, uploaded once per (length, sigma)."""
        return self._device_weights(("blur", n, sigma), gaussian_weights)

    def _device_weights(self, key: tuple, make):
        if key not in self._weights:
            start, weights = make(*key[1:])
            self._weights[key] = (self._cuda.to_device(start, stream=self.stream),
                                  self._cuda.to_device(weights, stream=self.stream))
        return self._weights[key]

    def _upload(self, image):
        from ._device import as_device, is_device_array

        if is_device_array(image):
            dev = as_device(image, self.stream)
        else:
            host = np.asarray(image)
            if host.dtype == np.float64:
                host = host.astype(np.float32)
            dev = self._pool.upload("raw", host, self.stream)
        if len(dev.shape) != 2 or dev.shape[0] == 0 or dev.shape[1] == 0:
            raise ValueError(f"preprocess needs a non-empty 2-D image, got shape {tuple(dev.shape)}")
        if not any(np.dtype(dev.dtype) == np.dtype(t) for t in SUPPORTED_DTYPES):
            raise ValueError(f"unsupported micrograph dtype {dev.dtype}; use one of "
                             f"{[np.dtype(t).name for t in SUPPORTED_DTYPES]}")
        return dev

    def downsample(self, raw, out_shape: tuple[int, int]):
        """Device float32 [my, mx]: area average of ``raw``, along y first, then along x (the
        order of ``epick.runtime.preprocess.downsample``)."""
        from ._device import grid_2d

        k, s = self._k, self.stream
        ny, nx = raw.shape
        my, mx = out_shape
        image = raw
        if my != ny:
            cols = self._pool.get("cols", (my, nx), np.float32, s)
            grid, block = grid_2d(my, nx)
            k.k_resample_cols[grid, block, s](image, *self._axis_weights(ny, my), cols)
            image = cols
        if mx != nx:
            small = self._pool.get("small", (my, mx), np.float32, s)
            grid, block = grid_2d(my, mx)
            k.k_resample_rows[grid, block, s](image, *self._axis_weights(nx, mx), small)
            image = small
        if np.dtype(image.dtype) != np.float32:
            cast = self._pool.get("cast", (ny, nx), np.float32, s)
            grid, block = grid_2d(ny, nx)
            k.k_cast_f32[grid, block, s](image, cast)
            image = cast
        return image

    def _blur(self, image, sigma: float, name: str):
        """Device float32: ``epick.runtime.preprocess.lowpass(image, sigma)`` (along y, then x, on the
        resampling kernels) into the pooled buffer ``name``."""
        from ._device import grid_2d

        k, s = self._k, self.stream
        my, mx = image.shape
        grid, block = grid_2d(my, mx)
        along_y = self._pool.get(name + "_y", (my, mx), np.float32, s)
        k.k_resample_cols[grid, block, s](image, *self._blur_weights(my, sigma), along_y)
        out = self._pool.get(name, (my, mx), np.float32, s)
        k.k_resample_rows[grid, block, s](along_y, *self._blur_weights(mx, sigma), out)
        return out

    def filter(self, small):
        """Device float32 [my, mx]: the optional filters of ``epick.runtime.preprocess.preprocess``
        (``lowpass`` with ``params.lowpass``, then ``subtract_background`` with ``params.highpass``);
        ``small`` itself when both are 0."""
        from ._device import grid_2d

        p = self.params
        if p.lowpass > 0:
            small = self._blur(small, p.lowpass, "lowpass")
        if p.highpass > 0:
            background = self._blur(small, p.highpass, "background")
            out = self._pool.get("highpass", tuple(small.shape), np.float32, self.stream)
            grid, block = grid_2d(*small.shape)
            self._k.k_subtract[grid, block, self.stream](small, background, out)
            small = out
        return small

    def robust_range(self, small) -> tuple[float, float] | None:
        """``epick.runtime.preprocess.robust_range`` on a device image: the kernels give the finite
        (min, max, count) and each round's histogram; the quantile search is the CPU's own
        ``refine_range``, so both paths make the same decisions."""
        from ._device import BLOCK_1D, reduction_blocks

        k, s, p = self._k, self.stream, self.params
        flat = small.reshape(small.size)
        blocks = reduction_blocks(small.size)
        min_max = self._pool.upload("min_max", np.array([np.inf, -np.inf], np.float32), s)
        count = self._pool.upload("count", np.zeros(1, np.int64), s)
        k.k_finite_min_max[blocks, BLOCK_1D, s](flat, min_max, count)
        mn, mx = (float(v) for v in min_max.copy_to_host(stream=s))
        n = int(count.copy_to_host(stream=s)[0])
        s.synchronize()
        bins = int(p.hist_bins)
        zeros = np.zeros(bins, np.int64)

        def histogram(lo_edge: float, hi_edge: float):
            hist = self._pool.upload("hist", zeros, s)
            outside = self._pool.upload("outside", np.zeros(2, np.int64), s)
            k.k_histogram[blocks, BLOCK_1D, s](flat, lo_edge, hi_edge, bins / (hi_edge - lo_edge), hist, outside)
            host_hist = hist.copy_to_host(stream=s)
            below = int(outside.copy_to_host(stream=s)[0])
            s.synchronize()
            return below, host_hist

        return refine_range(histogram, mn, mx, n, p.clip_low, p.clip_high, bins, ROBUST_ROUNDS)

    def grey_range(self, small):
        """``robust_range`` of a device image without leaving the device: a float64[8] device state
        (``preprocess_kernels.RS_*``: result lo/hi at RS_LO/RS_HI, RS_CONSTANT for a constant image)
        written by a fixed sequence of kernels on the stream, each refinement round a no-op once the
        search is done, so nothing waits for the host. Same decisions and bits as ``robust_range``."""
        from ._device import BLOCK_1D, reduction_blocks
        from epick.runtime.preprocess import CONSTANT_RTOL

        k, s, p, pool = self._k, self.stream, self.params, self._pool
        flat = small.reshape(small.size)
        blocks = reduction_blocks(small.size)
        min_max = pool.get("min_max", 2, np.float32, s)
        count = pool.get("count", 1, np.int64, s)
        k.k_min_max_reset[1, 1, s](min_max, count)
        k.k_finite_min_max[blocks, BLOCK_1D, s](flat, min_max, count)
        state = pool.get("range_state", 8, np.float64, s)
        istate = pool.get("range_istate", 4, np.int64, s)
        hist = pool.get("hist", int(p.hist_bins), np.int64, s)
        outside = pool.get("outside", 2, np.int64, s)
        k.k_range_start[1, BLOCK_1D, s](min_max, count, float(p.clip_low), float(p.clip_high), CONSTANT_RTOL,
                                         state, istate, hist, outside)
        for _ in range(ROBUST_ROUNDS):
            k.k_histogram_dev[blocks, BLOCK_1D, s](flat, state, hist, outside)
            k.k_range_step[1, BLOCK_1D, s](state, istate, hist, outside, ROBUST_ROUNDS, CONSTANT_RTOL)
        return state

    def levels_on_device(self, small, state):
        """``levels`` with the grey range of ``grey_range`` (device state): no host round trip."""
        from ._device import grid_2d

        my, mx = small.shape
        grid, block = grid_2d(my, mx)
        raw_levels = self._pool.get("levels8", (my, mx), np.uint8, self.stream)
        self._k.k_to_levels_dev[grid, block, self.stream](small, state, raw_levels)
        return self._equalise(raw_levels)

    def levels(self, small, bounds):
        """Device uint8 [my, mx]: 8-bit levels of ``small`` in ``bounds`` (host floats), then equalised."""
        from ._device import grid_2d

        k, s = self._k, self.stream
        my, mx = small.shape
        grid, block = grid_2d(my, mx)
        raw_levels = self._pool.get("levels8", (my, mx), np.uint8, s)
        if bounds is None or not bounds[1] > bounds[0]:
            raw_levels[:, :] = 128  # constant image: mid grey
        else:
            lo, hi = float(bounds[0]), float(bounds[1])
            k.k_to_levels[grid, block, s](small, lo, 255.0 / (hi - lo), raw_levels)
        return self._equalise(raw_levels)

    def _equalise(self, raw_levels):
        """Histogram equalisation of the device 8-bit image: (uint8 image, device pad grey [1])."""
        from ._device import BLOCK_1D, grid_2d, reduction_blocks

        k, s = self._k, self.stream
        my, mx = raw_levels.shape
        grid, block = grid_2d(my, mx)
        hist = self._pool.get("hist256", LEVELS, np.int64, s)
        k.k_fill[1, BLOCK_1D, s](hist, 0)
        k.k_histogram_256[reduction_blocks(my * mx), BLOCK_1D, s](raw_levels, hist)
        lut = self._pool.get("lut", LEVELS, np.uint8, s)
        pad_grey = self._pool.get("pad_grey", 1, np.uint8, s)
        k.k_equalise_lut[1, 1, s](hist, 1 if self.params.equalise else 0, lut, pad_grey)
        out = self._pool.get("u8", (my, mx), np.uint8, s)
        k.k_apply_lut[grid, block, s](raw_levels, lut, out)
        return out, pad_grey

    def network_input(self, u8, pad_grey):
        """Device float32 [1, 1, H, W]: u8 / 255 padded at the bottom/right to ``pad_multiple``."""
        from ._device import grid_2d

        my, mx = u8.shape
        m = max(self.pad_multiple, 1)
        big_y, big_x = my + (-my) % m, mx + (-mx) % m
        out = self._pool.get("input", (1, 1, big_y, big_x), np.float32, self.stream)
        grid, block = grid_2d(big_y, big_x)
        self._k.k_network_input[grid, block, self.stream](u8, pad_grey, 1 if self.pad_mode == "edge" else 0,
                                                          out.reshape(big_y, big_x))
        return out

    # ------------------------------------------------------------------ public
    def run(self, image) -> GpuImage:
        """Preprocess one micrograph ``image[y, x]``; results stay on the device (see GpuImage).

        The returned device arrays are reused by the next call of the same shape: copy them out or
        consume them first.
        """
        raw = self._upload(image)
        out_shape = self.params.network_shape(tuple(raw.shape))
        small = self.filter(self.downsample(raw, out_shape))
        bounds = self.robust_range(small)
        u8, pad_grey = self.levels(small, bounds)
        net = self.network_input(u8, pad_grey) if self.pad_multiple > 0 else None
        return GpuImage(u8, net, Transform.between(tuple(raw.shape), out_shape), bounds)

    def preprocess(self, image) -> tuple[np.ndarray, Transform]:
        """Same signature and result as ``epick.runtime.preprocess.preprocess`` (uint8 on the host)."""
        result = self.run(image)
        u8 = result.levels.copy_to_host(stream=self.stream)
        self.stream.synchronize()
        return u8, result.transform
