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
    """

    name: str = "backend"
    thread_safe: bool = False
    max_batch: int | None = None   # largest N one call accepts; None = any (the backend splits itself)

    def __init__(self, path: str | Path, metadata: ArtifactMetadata):
        self.path = Path(path)
        self.metadata = metadata

    @abc.abstractmethod
    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the network on a float32 [N, 1, H, W] batch; return host float32 outputs by name."""

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
