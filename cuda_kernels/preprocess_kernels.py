"""numba.cuda kernels of the preprocessing, step for step the CPU code of ``epick.runtime.preprocess``.

Every kernel mirrors one CPU function with the same arithmetic in the same order (float32 area
sums, float64 level maps), written with the non-fused intrinsics of ``_device`` so the bits match:

| kernel                       | CPU counterpart                         |
| ---------------------------- | --------------------------------------- |
| ``k_fill``, ``k_min_max_reset`` | resets on the device (no upload)      |
| ``k_cast_f32``               | ``np.ascontiguousarray(img, float32)``  |
| ``k_resample_rows/_cols``    | ``_resample_rows`` / ``_resample_cols`` (also ``lowpass``) |
| ``k_subtract``               | ``subtract_background``'s ``image - bg`` |
| ``k_finite_min_max``         | ``_finite_min_max``                     |
| ``k_histogram``              | ``_histogram`` (shared memory + atomics)|
| ``k_range_start``, ``k_histogram_dev``, ``k_range_step`` | ``refine_range`` (no host round trip) |
| ``k_to_levels_dev``          | ``to_levels`` with the device range     |
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
def k_subtract(a, b, out):
    """out[y, x] = a[y, x] - b[y, x] in float32 (``subtract_background``)."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    for y in range(y0, out.shape[0], sy):
        for x in range(x0, out.shape[1], sx):
            out[y, x] = sub32(a[y, x], b[y, x])


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
def k_fill(array, value):
    """array[:] = value (1-D, any dtype): device-side resets, so no pageable upload stalls the stream."""
    for i in range(cuda.grid(1), array.size, cuda.gridsize(1)):
        array[i] = value


@cuda.jit
def k_min_max_reset(min_max, count):
    """min_max = (+inf, -inf), count = 0: the start of ``k_finite_min_max`` (one thread)."""
    if cuda.grid(1) == 0:
        min_max[0] = float32(math.inf)
        min_max[1] = float32(-math.inf)
        count[0] = 0


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
    _histogram_block(flat, lo, hi, scale, hist, outside, s_hist, s_out)


@cuda.jit(device=True)
def _histogram_block(flat, lo, hi, scale, hist, outside, s_hist, s_out):
    """The body of ``k_histogram`` (shared arrays allocated by the calling kernel)."""
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


# ---------------------------------------------------------------------------------------------
# The robust grey range on the device (``refine_range`` without host round trips)
#
# state (float64[8]): 0 lo_edge, 1 hi_edge, 2 min, 3 max, 4 lo, 5 hi (the result), 6 done, 7 constant
# istate (int64[4]):  0 finite count, 1 rank_lo, 2 rank_hi, 3 rounds done
# k_range_start, then max_rounds x (k_histogram_dev, k_range_step): a round after "done" is a no-op,
# so the launch sequence is fixed and nothing waits for the host. The arithmetic is refine_range's,
# operation for operation in float64 with the non-fused intrinsics.
# ---------------------------------------------------------------------------------------------
RS_LO_EDGE, RS_HI_EDGE, RS_MIN, RS_MAX, RS_LO, RS_HI, RS_DONE, RS_CONSTANT = range(8)


@cuda.jit(device=True)
def _is_constant(mn, mx, n, rtol):
    """``epick.runtime.preprocess.is_constant`` in float64."""
    if n == 0:
        return True
    return not (mx - mn > mul64(rtol, dmax(abs(mn), abs(mx))))


@cuda.jit
def k_range_start(min_max, count, clip_low, clip_high, rtol, state, istate, hist, outside):
    """After ``k_finite_min_max``: the constant test, the two ranks and the first edges; zeroes
    ``hist`` and ``outside`` for the first round (one block)."""
    for b in range(cuda.threadIdx.x, hist.size, cuda.blockDim.x):
        hist[b] = 0
    if cuda.threadIdx.x == 0:
        outside[0] = 0
        outside[1] = 0
        mn = float64(min_max[0])
        mx = float64(min_max[1])
        n = count[0]
        state[RS_MIN] = mn
        state[RS_MAX] = mx
        state[RS_LO_EDGE] = mn
        state[RS_HI_EDGE] = mx
        state[RS_LO] = mn
        state[RS_HI] = mx
        istate[0] = n
        istate[3] = 0
        if _is_constant(mn, mx, n, rtol):
            state[RS_DONE] = 1.0
            state[RS_CONSTANT] = 1.0
        else:
            state[RS_DONE] = 0.0
            state[RS_CONSTANT] = 0.0
            istate[1] = int64(math.floor(mul64(clip_low, float64(n - 1))))
            istate[2] = int64(math.ceil(mul64(clip_high, float64(n - 1))))


@cuda.jit
def k_histogram_dev(flat, state, hist, outside):
    """``k_histogram`` of [state lo_edge, hi_edge]; nothing when the range search is done."""
    s_hist = cuda.shared.array(SHARED_BINS, int32)
    s_out = cuda.shared.array(2, int32)
    if state[RS_DONE] != 0.0:
        return
    lo = state[RS_LO_EDGE]
    hi = state[RS_HI_EDGE]
    _histogram_block(flat, lo, hi, div64(float64(hist.size), hi - lo), hist, outside, s_hist, s_out)


@cuda.jit(device=True)
def _value_of_rank(below, hist, rank, lo_edge, width, out):
    """``epick.runtime.preprocess._value_of_rank``: out[0] = bin (as float64), out[1] = value."""
    bins = hist.size
    cum = below
    b = 0
    while b < bins - 1:          # searchsorted(cum, rank, "right"): the first bin whose cum > rank
        cum += hist[b]
        if cum > rank:
            break
        b += 1
    if b == bins - 1 and not cum > rank:
        cum += hist[b]
    before = cum - hist[b]
    if hist[b] > 0:
        inside = div64(float64(rank - before) + 0.5, float64(hist[b]))
    else:
        inside = 0.5
    inside = dmin(dmax(inside, 0.0), 1.0)
    out[0] = float64(b)
    out[1] = add64(lo_edge, mul64(float64(b) + inside, width))


@cuda.jit
def k_range_step(state, istate, hist, outside, max_rounds, rtol):
    """One round of ``refine_range`` after ``k_histogram_dev`` (one block): the two quantiles, the
    stop test and the next edges or the result; zeroes the histogram for the next round."""
    if state[RS_DONE] != 0.0:
        return
    if cuda.threadIdx.x == 0:
        s_lo = cuda.local.array(2, float64)
        s_hi = cuda.local.array(2, float64)
        bins = hist.size
        lo_edge = state[RS_LO_EDGE]
        hi_edge = state[RS_HI_EDGE]
        width = div64(hi_edge - lo_edge, float64(bins))
        _value_of_rank(outside[0], hist, istate[1], lo_edge, width, s_lo)
        _value_of_rank(outside[0], hist, istate[2], lo_edge, width, s_hi)
        b_lo = int64(s_lo[0])
        b_hi = int64(s_hi[0])
        lo = s_lo[1]
        hi = s_hi[1]
        istate[3] += 1
        mn = state[RS_MIN]
        mx = state[RS_MAX]
        if b_hi - b_lo >= bins // 4 or width <= mul64(mx - mn, 1e-12) or istate[3] >= max_rounds:
            state[RS_DONE] = 1.0
            if _is_constant(lo, hi, 2, rtol):
                state[RS_LO] = mn
                state[RS_HI] = mx
            else:
                state[RS_LO] = lo
                state[RS_HI] = hi
        else:
            state[RS_LO_EDGE] = add64(lo_edge, mul64(float64(b_lo), width))
            state[RS_HI_EDGE] = add64(lo_edge, mul64(float64(b_hi + 1), width))
    cuda.syncthreads()
    for b in range(cuda.threadIdx.x, hist.size, cuda.blockDim.x):
        hist[b] = 0
    if cuda.threadIdx.x < 2:
        outside[cuda.threadIdx.x] = 0


@cuda.jit
def k_to_levels_dev(image, state, out):
    """``k_to_levels`` with the range from the device state: mid grey 128 for a constant image."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    lo = state[RS_LO]
    hi = state[RS_HI]
    flat = state[RS_CONSTANT] != 0.0 or not hi > lo
    scale = 0.0 if flat else div64(255.0, hi - lo)
    for y in range(y0, out.shape[0], sy):
        for x in range(x0, out.shape[1], sx):
            out[y, x] = uint8(128) if flat else _level(image[y, x], lo, scale)


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
