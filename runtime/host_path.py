"""The host picking path: every step on the CPU except what the backend itself runs.

    file --read_micrograph--> float32 --preprocess--> uint8 network image, padded (reader threads)
    batch [N, 1, H, W] float32 = u8 / 255 --Backend.infer--> heatmap/offset[/size] (host arrays)
    --find_peaks (Numba)--> NetworkPeaks per image --Picker--> Picks (original pixels)

Used for host backends (ONNX Runtime) and wherever the GPU path is not chosen; it gives the same
picks as ``epick.runtime.device_path`` (tested under the CUDA simulator).
"""
from __future__ import annotations

import threading

import numpy as np

from .backends import Backend
from .backends.interface_check import check_finite
from .pipeline import PickPipeline, Prepared


class HostPipeline(PickPipeline):
    """preprocess -> ``backend.infer`` -> ``find_peaks`` (see the module docstring).

    ``params``: the model's PreprocessParams; ``threshold``/``top_k`` as in
    ``epick.runtime.peaks.find_peaks``; ``min_side``: smallest network input side (network pixels).
    ``infer`` is serialised by a lock when the backend is not thread-safe.
    """

    on_device = False

    def __init__(self, backend: Backend, params, *, threshold: float, top_k: int, min_side: int = 0):
        self.backend = backend
        self.params = params
        self.threshold = float(threshold)
        self.top_k = int(top_k)
        self.min_side = int(min_side)
        self._lock = None if backend.thread_safe else threading.Lock()

    def read(self, path):
        """The micrograph as float32 (``read_micrograph``)."""
        from .io.micrograph import read_micrograph

        return read_micrograph(path)

    def prepare(self, data: np.ndarray, source, name: str, pixel_size: float | None, read_s: float) -> Prepared:
        """Preprocess on the host: the padded uint8 network image and its Transform."""
        import time

        from .preprocess import pad_network_image, preprocess

        start = time.perf_counter()
        u8, transform = preprocess(data, self.params)
        return Prepared(source, name, pad_network_image(u8, self.min_side), transform, pixel_size,
                        read_s + time.perf_counter() - start)

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The backend on a float32 [N, 1, H, W] batch (serialised when the backend needs it)."""
        if self._lock is None:
            return self.backend.infer(images)
        with self._lock:
            return self.backend.infer(images)

    def find_peaks(self, outputs: dict[str, np.ndarray], i: int, name: str):
        """NetworkPeaks of image ``i`` of a batch's host outputs (NaN scores fail, not zero picks)."""
        from .peaks import find_peaks

        check_finite(outputs, i, name)
        size = outputs.get("size")
        return find_peaks(outputs["heatmap"][i, 0], outputs["offset"][i], None if size is None else size[i],
                          threshold=self.threshold, top_k=self.top_k)

    def submit(self, items: list[Prepared], keep_images: bool = False) -> list[tuple[object, np.ndarray | None]]:
        """The whole batch, now: ``infer`` on the stacked batch, then ``find_peaks`` per item."""
        from .preprocess import network_input

        outputs = self.infer(network_input(np.stack([it.u8 for it in items])[:, None]))
        found = []
        for i, item in enumerate(items):
            my, mx = item.transform.network_shape
            found.append((self.find_peaks(outputs, i, item.name), item.u8[:my, :mx] if keep_images else None))
        return found

    def collect(self, submitted: list[tuple[object, np.ndarray | None]]) -> list[tuple[object, np.ndarray | None]]:
        """``submit`` did the work: its result."""
        return submitted
