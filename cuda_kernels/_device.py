"""numba.cuda plumbing shared by the kernels: IEEE round-to-nearest arithmetic, launch sizes, uploads.

Importing this module imports ``numba.cuda``: with ``NUMBA_ENABLE_CUDASIM=1`` in the environment
(before numba is first imported) that is the CPU simulator, otherwise the real CUDA target.

Exactness: the GPU must give the same bits as the CPU numba code in ``epick.runtime``. The CUDA
compiler fuses ``a * b + c`` into one FMA (one rounding instead of two), so every float
multiply/add/divide whose result feeds a comparison or a rounding is written with the
round-to-nearest intrinsics below, which are never fused. Under the simulator they are plain
NumPy float32 / Python float64 operations, which round the same way.
"""
from __future__ import annotations

import numpy as np
from numba import cuda, float32, float64
from numba.core import config

SIMULATED = bool(config.ENABLE_CUDASIM)  # True: kernels run in the numba CPU simulator

# Every kernel loops grid-stride, so any grid covers any size. On a GPU the grid covers the data
# (one item per thread); the simulator runs each CUDA thread as a Python thread, so there blocks
# are small and at most SIM_MAX_BLOCKS per grid axis (still more than one, to test the striding).
BLOCK_1D = 32 if SIMULATED else 256  # threads per 1-D block (= shared tile of the rank kernel)
BLOCK_2D = (8, 4) if SIMULATED else (32, 8)  # (x = columns, y = rows) threads per 2-D block
SIM_MAX_BLOCKS = 2

if SIMULATED:
    @cuda.jit(device=True)
    def mul32(a, b):
        """float32 a * b, rounded once."""
        return float32(float32(a) * float32(b))

    @cuda.jit(device=True)
    def add32(a, b):
        """float32 a + b, rounded once."""
        return float32(float32(a) + float32(b))

    @cuda.jit(device=True)
    def sub32(a, b):
        """float32 a - b, rounded once."""
        return float32(float32(a) - float32(b))

    @cuda.jit(device=True)
    def div32(a, b):
        """float32 a / b, rounded once."""
        return float32(float32(a) / float32(b))

    @cuda.jit(device=True)
    def mul64(a, b):
        """float64 a * b, rounded once."""
        return float64(a) * float64(b)

    @cuda.jit(device=True)
    def add64(a, b):
        """float64 a + b, rounded once."""
        return float64(a) + float64(b)

    @cuda.jit(device=True)
    def div64(a, b):
        """float64 a / b, rounded once."""
        return float64(a) / float64(b)
else:  # pragma: no cover - needs a GPU
    from numba.cuda import libdevice

    mul32 = libdevice.fmul_rn
    add32 = libdevice.fadd_rn
    sub32 = libdevice.fsub_rn
    div32 = libdevice.fdiv_rn
    mul64 = libdevice.dmul_rn
    add64 = libdevice.dadd_rn
    div64 = libdevice.ddiv_rn


@cuda.jit(device=True)
def dmin(a, b):
    """The smaller of two numbers (the builtin ``min`` does not type in numba's bundled numba.cuda
    0.68: its vararg overload fails to compile for the CUDA target; found by the PTX check)."""
    return b if b < a else a


@cuda.jit(device=True)
def dmax(a, b):
    """The larger of two numbers (see ``dmin``)."""
    return b if b > a else a


def new_event():
    """A CUDA event for ordering and waiting (no timing: cheaper); the simulator's takes no arguments."""
    return cuda.event() if SIMULATED else cuda.event(timing=False)


def blocks_for(n: int, block: int = BLOCK_1D) -> int:
    """Number of blocks of ``block`` threads that cover ``n`` items (at least 1; capped under the
    simulator, where the kernels' grid-stride loops do the rest)."""
    cover = max(1, (int(n) + block - 1) // block)
    return min(cover, SIM_MAX_BLOCKS) if SIMULATED else cover


def grid_2d(ny: int, nx: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(grid, block) covering an ny x nx image with BLOCK_2D, x along columns."""
    bx, by = BLOCK_2D
    return (blocks_for(nx, bx), blocks_for(ny, by)), BLOCK_2D


def reduction_blocks(n: int) -> int:
    """Blocks for grid-stride reductions and histograms over ``n`` items: enough to fill the GPU
    (a few per multiprocessor), never more than the items need."""
    get_device = getattr(cuda, "get_current_device", None)  # absent in the simulator
    sms = get_device().MULTIPROCESSOR_COUNT if get_device is not None else 1
    return max(1, min(blocks_for(n), 4 * int(sms)))


def is_device_array(array) -> bool:
    """True for arrays that already live on the GPU (numba, CuPy, torch CUDA tensors...)."""
    return cuda.devicearray.is_cuda_ndarray(array) or hasattr(array, "__cuda_array_interface__")


def as_device(array, stream=0, dtype=None):
    """A numba device array viewing ``array`` when it is on the GPU, else a fresh upload.

    ``dtype``: required dtype; host arrays are converted, device arrays of another dtype raise
    ValueError (converting them would need a host round trip).
    """
    if is_device_array(array):
        dev = array if cuda.devicearray.is_cuda_ndarray(array) else cuda.as_cuda_array(array)
        if dtype is not None and np.dtype(dev.dtype) != np.dtype(dtype):
            raise ValueError(f"device array has dtype {dev.dtype}, the kernel needs {np.dtype(dtype)}")
        return dev
    host = np.ascontiguousarray(array, dtype=dtype)
    return cuda.to_device(host, stream=stream)


class BufferPool:
    """Device buffers kept per (name, shape, dtype) and reused across calls of the same shape.

    Up to ``shapes_per_name`` shapes per name stay allocated (least recently used dropped first), so
    a session alternating between a few micrograph shape classes does not reallocate each time.
    """

    def __init__(self, shapes_per_name: int = 3) -> None:
        self.shapes_per_name = max(1, int(shapes_per_name))
        self._buffers: dict[tuple, object] = {}
        self.allocations = 0

    def get(self, name: str, shape, dtype, stream=0):
        """The buffer ``name`` of this shape and dtype, allocated on first use (contents undefined)."""
        shape = tuple(int(s) for s in np.atleast_1d(shape))
        key = (name, shape, np.dtype(dtype).str)
        buf = self._buffers.pop(key, None)
        if buf is None:
            same = [k for k in self._buffers if k[0] == name]
            for old in same[: max(0, len(same) - self.shapes_per_name + 1)]:
                del self._buffers[old]    # least recently used first (dicts keep insertion order)
            buf = cuda.device_array(shape, dtype=dtype, stream=stream)
            self.allocations += 1
        self._buffers[key] = buf          # most recently used last
        return buf

    def upload(self, name: str, host: np.ndarray, stream=0):
        """Copy a host array into the pooled buffer ``name`` (same shape and dtype)."""
        host = np.ascontiguousarray(host)
        buf = self.get(name, host.shape, host.dtype, stream)
        buf.copy_to_device(host, stream=stream)
        return buf
