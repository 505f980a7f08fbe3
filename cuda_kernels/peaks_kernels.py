"""numba.cuda kernels of peak extraction, the exact rule of ``epick.runtime.peaks`` (read it first).

Batched over images: logits [N, h, w], offset/size [N, 2, h, w].

1. ``k_candidates``: one thread per cell; a cell is a candidate when its logit >= the threshold
   logit (NaN fails) and no 3x3 neighbour (inside the image) is larger. Candidates are compacted
   with an atomic counter per image, so their order in the list is NONDETERMINISTIC.
2. ``k_rank_decode``: one thread per candidate counts the candidates that come before it in the
   CPU order (logit descending, then row-major index ascending); keys are unique, so the count is
   the candidate's final position, independent of the compaction order. Positions < top_k write
   index, logit, decoded x/y (float64, ``(cell + offset) * 4 - 0.5``) and size. The counting runs
   over shared-memory tiles of BLOCK_1D candidates (O(n^2 / threads); n is small after NMS).
Scores (sigmoid) are computed on the host from the returned float32 logits by the same function as
the CPU path, so they are bit-identical.
"""
from __future__ import annotations

from numba import cuda, float32, float64, int32

from ._device import BLOCK_1D, add64, dmin, mul64

STRIDE = 4.0  # must equal epick.runtime.peaks.STRIDE (checked by the host wrapper)


@cuda.jit(device=True)
def _is_peak(logits, img, r, c, logit_t):
    """Logit >= logit_t (NaN fails) and no larger 3x3 neighbour inside the image."""
    v = logits[img, r, c]
    if not (v >= logit_t):
        return False
    h = logits.shape[1]
    w = logits.shape[2]
    for dr in range(-1, 2):
        rr = r + dr
        if rr < 0 or rr >= h:
            continue
        for dc in range(-1, 2):
            cc = c + dc
            if cc < 0 or cc >= w:
                continue
            if logits[img, rr, cc] > v:  # NaN neighbours compare False: count as -inf
                return False
    return True


@cuda.jit
def k_candidates(logits, logit_t, counter, cand_index, cand_logit):
    """Compact the local maxima >= ``logit_t`` of image ``blockIdx.z`` into cand_*[img, :]."""
    c0, r0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    img = cuda.blockIdx.z
    w = logits.shape[2]
    for r in range(r0, logits.shape[1], sy):
        for c in range(c0, w, sx):
            if _is_peak(logits, img, r, c, logit_t):
                slot = cuda.atomic.add(counter, img, 1)
                cand_index[img, slot] = r * w + c
                cand_logit[img, slot] = logits[img, r, c]


@cuda.jit
def k_rank_decode(counter, cand_index, cand_logit, offset, size, has_size, top_k,
                  out_index, out_logit, out_x, out_y, out_size):
    """Sort by counting and decode: candidate i goes to position #{j before i} when < top_k.

    Image = blockIdx.y. Blocks stride over the candidates; the loop bounds depend on the block
    only, so every thread of a block reaches every barrier.
    """
    s_logit = cuda.shared.array(BLOCK_1D, float32)
    s_index = cuda.shared.array(BLOCK_1D, int32)
    img = cuda.blockIdx.y
    n = counter[img]
    tid = cuda.threadIdx.x
    for base in range(cuda.blockIdx.x * BLOCK_1D, n, cuda.gridDim.x * BLOCK_1D):
        i = base + tid
        mine = i < n
        my_logit = cand_logit[img, i] if mine else float32(0.0)
        my_index = cand_index[img, i] if mine else int32(0)
        rank = 0
        for tile in range(0, n, BLOCK_1D):
            j = tile + tid
            if j < n:
                s_logit[tid] = cand_logit[img, j]
                s_index[tid] = cand_index[img, j]
            cuda.syncthreads()
            if mine:
                for t in range(dmin(BLOCK_1D, n - tile)):
                    other = s_logit[t]
                    if other > my_logit or (other == my_logit and s_index[t] < my_index):
                        rank += 1
            cuda.syncthreads()
        if mine and rank < top_k:
            _write_peak(img, rank, my_index, my_logit, offset, size, has_size,
                        out_index, out_logit, out_x, out_y, out_size)


@cuda.jit(device=True)
def _write_peak(img, rank, index, logit, offset, size, has_size, out_index, out_logit, out_x, out_y, out_size):
    """Row ``rank`` of the outputs: cell index, logit, x/y = (cell + offset) * 4 - 0.5, size."""
    w = offset.shape[3]
    row = index // w
    col = index - row * w
    out_index[img, rank] = index
    out_logit[img, rank] = logit
    out_x[img, rank] = add64(mul64(float64(col) + float64(offset[img, 0, row, col]), STRIDE), -0.5)
    out_y[img, rank] = add64(mul64(float64(row) + float64(offset[img, 1, row, col]), STRIDE), -0.5)
    if has_size != 0:
        out_size[img, rank, 0] = size[img, 0, row, col]
        out_size[img, rank, 1] = size[img, 1, row, col]
