"""numba.cuda kernels of the preprocessing, step for step the CPU code of ``epick.runtime.preprocess``.

Every kernel mirrors one CPU function with the same arithmetic in the same order (float32 area
sums, float64 level maps), written with the non-fused intrinsics of ``_device`` so the bits match:

| kernel                       | CPU counterpart                         |
| ---------------------------- | --------------------------------------- |
| ``k_cast_f32``               | ``np.ascontiguousarray(img, float32)``  |
| ``k_resample_rows/_cols``    | ``_resample_rows`` / ``_resample_cols`` |
| ``k_finite_min_max``         | ``_finite_min_max``                     |
| ``k_histogram``              | ``_histogram`` (shared memory + atomics)|
| ``k_to_levels``              | ``_to_levels``                          |
| ``k_histogram_256``, ``k_equalise_lut``, ``k_apply_lut`` | ``_equalise``   |
| ``k_network_input``          | ``pad_to_multiple`` + ``network_input`` |

Images are 2-D ``[y, x]``; 2-D kernels put threads' x along columns (coalesced reads).
"""
from __future__ import annotations

import math

from numba import cuda, float32, float64, int32, int64, uint8

from ._device import BLOCK_1D, add32, add64, div32, div64, dmax, dmin, mul32, mul64, sub32

SHARED_BINS = 4096  # bins of the robust-range histogram kept in shared memory (16 KiB of int32)
LEVELS = 256


@cuda.jit(device=True)
def _finite(v):
    return not (math.isnan(v) or math.isinf(v))


@cuda.jit
def k_cast_f32(image, out):
    """out[y, x] = float32(image[y, x]) for any real dtype (exact for int8, uint16, float16)."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    for y in range(y0, out.shape[0], sy):
        for x in range(x0, out.shape[1], sx):
            out[y, x] = float32(image[y, x])


@cuda.jit
def k_resample_rows(image, start, weights, out):
    """out[y, j] = sum_k weights[j, k] * image[y, start[j] + k] over finite pixels, renormalised."""
    j0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    for y in range(y0, out.shape[0], sy):
        for j in range(j0, out.shape[1], sx):
            out[y, j] = _row_sum(image, y, start[j], weights, j)


@cuda.jit(device=True)
def _row_sum(image, y, i0, weights, j):
    acc = float32(0.0)
    bad = float32(0.0)
    for k in range(weights.shape[1]):
        w = weights[j, k]
        if w != 0.0:
            v = float32(image[y, i0 + k])
            if _finite(v):
                acc = add32(acc, mul32(w, v))
            else:
                bad = add32(bad, w)
    if bad != 0.0:
        good = sub32(float32(1.0), bad)
        acc = div32(acc, good) if good > 1e-6 else float32(math.nan)
    return acc


@cuda.jit
def k_resample_cols(image, start, weights, out):
    """out[j, x] = sum_k weights[j, k] * image[start[j] + k, x] over finite pixels, renormalised."""
    x0, j0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    for j in range(j0, out.shape[0], sy):
        for x in range(x0, out.shape[1], sx):
            out[j, x] = _col_sum(image, x, start[j], weights, j)


@cuda.jit(device=True)
def _col_sum(image, x, i0, weights, j):
    acc = float32(0.0)
    bad = float32(0.0)
    for k in range(weights.shape[1]):
        w = weights[j, k]
        if w == 0.0:
            continue
        v = float32(image[i0 + k, x])
        if _finite(v):
            acc = add32(acc, mul32(w, v))
        else:
            bad = add32(bad, w)
    if bad != 0.0:
        good = sub32(float32(1.0), bad)
        acc = div32(acc, good) if good > 1e-6 else float32(math.nan)
    return acc


@cuda.jit
def k_finite_min_max(flat, min_max, count):
    """min_max[0] = min, min_max[1] = max, count[0] = number of the finite values of ``flat``.

    Caller sets min_max = (+inf, -inf) and count = 0. Block tree reduction, then one atomic each.
    """
    s_min = cuda.shared.array(BLOCK_1D, float32)
    s_max = cuda.shared.array(BLOCK_1D, float32)
    s_cnt = cuda.shared.array(BLOCK_1D, int32)
    tid = cuda.threadIdx.x
    mn = float32(math.inf)
    mx = float32(-math.inf)
    n = 0
    for i in range(cuda.grid(1), flat.size, cuda.gridsize(1)):
        v = flat[i]
        if _finite(v):
            n += 1
            mn = dmin(mn, v)
            mx = dmax(mx, v)
    s_min[tid] = mn
    s_max[tid] = mx
    s_cnt[tid] = n
    cuda.syncthreads()
    step = BLOCK_1D // 2
    while step > 0:
        if tid < step:
            s_min[tid] = dmin(s_min[tid], s_min[tid + step])
            s_max[tid] = dmax(s_max[tid], s_max[tid + step])
            s_cnt[tid] += s_cnt[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        cuda.atomic.min(min_max, 0, s_min[0])
        cuda.atomic.max(min_max, 1, s_max[0])
        cuda.atomic.add(count, 0, int64(s_cnt[0]))


@cuda.jit
def k_histogram(flat, lo, hi, scale, hist, outside):
    """Finite values of ``flat``: below ``lo`` -> outside[0], above ``hi`` -> outside[1], else bin
    int((v - lo) * scale) (float64; the last bin holds hi) of ``hist`` (int64, zeroed by caller).

    Bins < SHARED_BINS are counted in a shared-memory histogram per block and flushed with one
    global atomic per non-empty bin; higher bins (hist_bins > 4096) go straight to global atomics.
    """
    s_hist = cuda.shared.array(SHARED_BINS, int32)
    s_out = cuda.shared.array(2, int32)
    tid = cuda.threadIdx.x
    bins = hist.size
    for b in range(tid, SHARED_BINS, cuda.blockDim.x):
        s_hist[b] = 0
    if tid < 2:
        s_out[tid] = 0
    cuda.syncthreads()
    for i in range(cuda.grid(1), flat.size, cuda.gridsize(1)):
        v = flat[i]
        if not _finite(v):
            continue
        vd = float64(v)
        if vd < lo:
            cuda.atomic.add(s_out, 0, 1)
        elif vd > hi:
            cuda.atomic.add(s_out, 1, 1)
        else:
            b = int64(mul64(vd - lo, scale))
            if b >= bins:
                b = bins - 1
            if b < SHARED_BINS:
                cuda.atomic.add(s_hist, b, 1)
            else:
                cuda.atomic.add(hist, b, int64(1))
    cuda.syncthreads()
    for b in range(tid, dmin(bins, SHARED_BINS), cuda.blockDim.x):
        c = s_hist[b]
        if c != 0:
            cuda.atomic.add(hist, b, int64(c))
    if tid < 2 and s_out[tid] != 0:
        cuda.atomic.add(outside, tid, int64(s_out[tid]))


@cuda.jit
def k_to_levels(image, lo, scale, out):
    """out = clip(floor((v - lo) * scale + 0.5), 0, 255) in float64 with scale = 255 / (hi - lo);
    NaN -> 128. The clip is applied before the integer conversion, so +inf and huge hot pixels
    give 255 (not an overflowed integer)."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    for y in range(y0, out.shape[0], sy):
        for x in range(x0, out.shape[1], sx):
            out[y, x] = _level(image[y, x], lo, scale)


@cuda.jit(device=True)
def _level(v, lo, scale):
    if v != v:
        return uint8(128)
    t = add64(mul64(float64(v) - lo, scale), 0.5)
    if t < 0.0:
        return uint8(0)
    if t >= 255.0:
        return uint8(255)
    return uint8(math.floor(t))


@cuda.jit
def k_histogram_256(levels, hist):
    """hist[v] += number of pixels of the uint8 image ``levels`` equal to v (hist zeroed by caller)."""
    s_hist = cuda.shared.array(LEVELS, int32)
    tid = cuda.threadIdx.x
    for b in range(tid, LEVELS, cuda.blockDim.x):
        s_hist[b] = 0
    cuda.syncthreads()
    ny, nx = levels.shape
    for i in range(cuda.grid(1), ny * nx, cuda.gridsize(1)):
        cuda.atomic.add(s_hist, int32(levels[i // nx, i % nx]), 1)
    cuda.syncthreads()
    for b in range(tid, LEVELS, cuda.blockDim.x):
        if s_hist[b] != 0:
            cuda.atomic.add(hist, b, int64(s_hist[b]))


@cuda.jit
def k_equalise_lut(hist, equalise, lut, pad_grey):
    """One thread: the OpenCV equalizeHist table lut[v] = round((cdf[v] - cdf_min) * 255 /
    (N - cdf_min)) (identity for a one-level image or when ``equalise`` is 0), and
    pad_grey[0] = round-half-up mean grey of the output image (for padding)."""
    if cuda.grid(1) != 0:
        return
    n = int64(0)
    for v in range(LEVELS):
        n += hist[v]
    first = 0
    while first < LEVELS and hist[first] == 0:
        first += 1
    cdf_min = hist[first] if first < LEVELS else int64(0)
    if equalise == 0 or n - cdf_min == 0:
        for v in range(LEVELS):
            lut[v] = uint8(v)
    else:
        scale = div64(255.0, float64(n - cdf_min))
        cum = int64(0)
        for v in range(LEVELS):
            cum += hist[v]
            u = math.floor(add64(mul64(float64(cum - cdf_min), scale), 0.5))
            lut[v] = uint8(dmin(dmax(u, 0.0), 255.0))
    total = int64(0)
    for v in range(LEVELS):
        total += hist[v] * int64(lut[v])
    pad_grey[0] = uint8(math.floor(add64(div64(float64(total), float64(n)), 0.5))) if n > 0 else uint8(0)


@cuda.jit
def k_apply_lut(levels, lut, out):
    """out[y, x] = lut[levels[y, x]]."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    for y in range(y0, out.shape[0], sy):
        for x in range(x0, out.shape[1], sx):
            out[y, x] = lut[levels[y, x]]


@cuda.jit
def k_network_input(u8, pad_grey, edge, out):
    """out[y, x] (float32, padded shape) = u8 / 255 inside the image; outside it the padding of
    ``pad_to_multiple``: pad_grey[0] / 255 ("mean") or the last row/column (``edge`` = 1)."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    ny, nx = u8.shape
    for y in range(y0, out.shape[0], sy):
        for x in range(x0, out.shape[1], sx):
            if y < ny and x < nx:
                g = u8[y, x]
            elif edge != 0:
                g = u8[dmin(y, ny - 1), dmin(x, nx - 1)]
            else:
                g = pad_grey[0]
            out[y, x] = div32(float32(g), float32(255.0))
