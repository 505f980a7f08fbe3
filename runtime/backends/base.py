"""The interface every inference backend implements: a batch of network images in, raw heads out."""
from __future__ import annotations

import abc
from pathlib import Path

import numpy as np

from .metadata import ArtifactMetadata

OUTPUT_NAMES = ("heatmap", "offset", "size")


class Backend(abc.ABC):
    """Runs the exported network on ``image`` float32 [N, 1, H, W] (u8 / 255, H and W multiples of 32).

    ``infer`` returns ``{"heatmap": logits [N,1,H/4,W/4], "offset": [N,2,H/4,W/4][, "size": ...]}``
    as host float32 arrays. ``name`` says what actually runs (e.g. ``onnxruntime-cpu``).
    ``thread_safe`` says whether ``infer`` may be called from several threads at once.
    GPU backends also implement ``infer_device`` (``device_io`` True): device batch in, device outputs
    out, so the GPU picking path (``epick.runtime.device_path``) keeps the data on the GPU.
    """

    name: str = "backend"
    thread_safe: bool = False
    max_batch: int | None = None   # largest N one call accepts; None = any (the backend splits itself)
    device_io: bool = False        # True when infer_device runs on GPU buffers
    min_side: int = 0              # smallest network input H and W the artifact accepts (0: any)

    def __init__(self, path: str | Path, metadata: ArtifactMetadata):
        self.path = Path(path)
        self.metadata = metadata

    @abc.abstractmethod
    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the network on a float32 [N, 1, H, W] batch; return host float32 outputs by name."""

    def infer_device(self, images, stream: int | None = None) -> dict:
        """Run the network on a device float32 [N, 1, H, W] batch (C-contiguous, anything with
        ``__cuda_array_interface__``); return device float32 outputs by name (objects with
        ``__cuda_array_interface__``, valid until the next call).

        ``stream``: raw ``cudaStream_t`` handle to enqueue the work on, in order after what is already
        queued there (the outputs are ready in that stream's order, no host synchronisation); None:
        the backend's own stream, synchronised before returning.
        """
        raise NotImplementedError(f"backend {self.name} has no device-side inference (use infer)")

    def close(self) -> None:
        """Release device memory, sessions and streams (idempotent)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.path.name}>"


def check_input_batch(images: np.ndarray, source: str | Path) -> np.ndarray:
    """Validate and normalise a network batch: float32, C-contiguous, [N, 1, H, W], H and W % 32 == 0."""
    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"{source}: network input must be [N, 1, H, W], got {images.shape}")
    if images.shape[2] % 32 or images.shape[3] % 32:
        raise ValueError(f"{source}: network input H and W must be multiples of 32, got {images.shape[2:]}")
    return images


def outputs_by_name(values, names: list[str] | tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Map a backend's outputs (dict, tuple or list, in contract order) to ``heatmap/offset[/size]``."""
    if isinstance(values, dict):
        items = dict(values)
    else:
        values = list(values)
        names = list(names) if names else list(OUTPUT_NAMES[: len(values)])
        items = dict(zip(names, values))
    out = {k: np.asarray(v, dtype=np.float32) for k, v in items.items() if k in OUTPUT_NAMES and v is not None}
    if "heatmap" not in out or "offset" not in out:
        raise ValueError(f"network outputs {sorted(items)} lack 'heatmap' and 'offset'")
    return out


class DeviceArrayView:
    """A C-contiguous device buffer seen through ``__cuda_array_interface__`` (owns nothing;
    ``owner`` keeps the allocation alive). ``ptr`` is a device address, ``shape`` in elements."""

    def __init__(self, ptr: int, shape: tuple, dtype, owner=None):
        self.ptr = int(ptr)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.owner = owner

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False), "version": 2,
                "strides": None}


def device_batch_pointer(images, source: str | Path) -> tuple[int, tuple[int, ...]]:
    """(device address, shape) of a device network batch: float32, C-contiguous, [N, 1, H, W],
    H and W % 32 == 0 (the checks of ``check_input_batch``, on ``__cuda_array_interface__``)."""
    cai = getattr(images, "__cuda_array_interface__", None)
    if cai is None:
        raise ValueError(f"{source}: infer_device needs a device array (__cuda_array_interface__), "
                         f"got {type(images).__name__}")
    shape = tuple(int(s) for s in cai["shape"])
    if np.dtype(cai["typestr"]) != np.float32:
        raise ValueError(f"{source}: device network input must be float32, got {np.dtype(cai['typestr'])}")
    strides = cai.get("strides")
    c_strides = tuple(4 * int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))
    if strides is not None and any(a != b for a, b, n in zip(strides, c_strides, shape) if n > 1):
        raise ValueError(f"{source}: device network input must be C-contiguous, got strides {strides}")
    if len(shape) != 4 or shape[1] != 1:
        raise ValueError(f"{source}: network input must be [N, 1, H, W], got {shape}")
    if shape[2] % 32 or shape[3] % 32:
        raise ValueError(f"{source}: network input H and W must be multiples of 32, got {shape[2:]}")
    return int(cai["data"][0]), shape
