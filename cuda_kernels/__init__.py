"""epick.cuda_kernels: GPU kernels (numba.cuda) for preprocessing and peak extraction.

Both pipelines give the same bits as the CPU code in ``epick.runtime.preprocess`` and
``epick.runtime.peaks``. numba.cuda is imported only when a class below is first used; set
``NUMBA_ENABLE_CUDASIM=1`` before numba is imported to run the kernels in the CPU simulator.

- ``GpuPreprocessor``: micrograph (host or device; float32, float16, int8, uint8, int16, uint16)
  -> equalised uint8 network image and float32 network input on the device.
- ``GpuPeakFinder``: heatmap logits, offset[, size] (host or device) -> NetworkPeaks.
"""
from __future__ import annotations

__all__ = ["GpuPreprocessor", "GpuPeakFinder", "cuda_available"]


def cuda_available() -> bool:
    """True when numba.cuda can run kernels here (a GPU with a driver, or the simulator)."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # no driver, no toolkit: the CPU path is used
        return False


def __getattr__(name: str):
    if name == "GpuPreprocessor":
        from .preprocess_gpu import GpuPreprocessor

        return GpuPreprocessor
    if name == "GpuPeakFinder":
        from .peaks_gpu import GpuPeakFinder

        return GpuPeakFinder
    raise AttributeError(f"module 'epick.cuda_kernels' has no attribute {name!r}")
