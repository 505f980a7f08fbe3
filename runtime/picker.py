"""The Picker: an exported model (or model file) + a backend -> Picks for micrographs.

    from epick.runtime import Picker
    picker = Picker("model.onnx")                 # backend="auto": TensorRT > torch-CUDA > ORT-CUDA > ORT-CPU
    picks = picker.pick("mic.mrc")                # Picks: centres in ORIGINAL pixels, scores
    for result in picker.pick_many(paths):        # streams PickResult, failures included, never raises per file
        ...

Thread safety: a Picker may be shared between threads. ``pick`` and ``pick_many`` hold no
per-call state on the Picker; calls into a backend that is not thread-safe (TensorRT, torch) are
serialised by a lock, ONNX Runtime sessions run concurrently.

GPU backends (TensorRT, torch-CUDA) with numba.cuda on a real GPU use the device path of
``epick.runtime.device_path`` (preprocessing, network and peak extraction on the GPU; only peak
rows come back), which gives the same picks as the host path.

Coordinates: every result is in pixels of the original micrograph, centre-of-pixel convention
(see ``epick.runtime.picks``). Vesicles carry ``radius`` (original pixels); fibers carry
``tube_id`` (1-based), points of one tube in order along it (one polyline per tube).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .backends import Backend, open_backend
from .backends.interface_check import check_finite, check_interface
from .errors import EpickError, ModelFileError
from .picks import Picks
from .pipeline import Failed, Prepared, ReaderPool, batches_by_shape

log = logging.getLogger("epick.runtime")

DEFAULT_THRESHOLD = 0.3
DEFAULT_TOP_K = 2000
DEVICE_BATCHES_IN_FLIGHT = 2   # GPU path: batches enqueued before the oldest is collected
DEFAULT_EDGE_MARGIN = 25.0   # network pixels at the 1024 scale (scaled by objects.inside_margin)


@dataclass
class PickResult:
    """The outcome for one micrograph: ``picks`` on success, else ``error`` (a one-line reason).

    ``image`` (uint8 network image, unpadded) and ``transform`` are kept only when asked for
    (previews); ``seconds`` is the wall time of this item's batch share (read + infer + decode).
    """

    source: object
    name: str
    picks: Picks | None = None
    error: str | None = None
    image: np.ndarray | None = None
    transform: object | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the micrograph was picked (possibly with zero objects)."""
        return self.picks is not None


def polylines(picks: Picks) -> list[np.ndarray]:
    """Fibers as a list of [n, 2] (x, y) arrays in original pixels, one per tube ID, in tube order."""
    if picks.tube_id is None:
        raise ValueError("these picks have no tube IDs (not fibers)")
    xy = np.stack([picks.x, picks.y], axis=1)
    return [xy[picks.tube_id == t] for t in np.unique(picks.tube_id)]


def decode_outputs(outputs: dict[str, np.ndarray], i: int, transform, *, object_type: str, micrograph: str,
                   threshold: float, top_k: int = DEFAULT_TOP_K, edge_margin: float = DEFAULT_EDGE_MARGIN,
                   min_distance: float | None = None, diameter: float | None = None,
                   pixel_size: float | None = None) -> Picks:
    """Image ``i`` of a batch of host network outputs -> Picks in original pixels (peaks found on
    the padded heatmap, then :func:`picks_from_peaks`)."""
    from .peaks import find_peaks

    check_finite(outputs, i, micrograph)   # NaN scores are a failure, not zero picks
    size = outputs.get("size")
    peaks = find_peaks(outputs["heatmap"][i, 0], outputs["offset"][i], None if size is None else size[i],
                       threshold=threshold, top_k=top_k)
    return picks_from_peaks(peaks, transform, object_type=object_type, micrograph=micrograph,
                            edge_margin=edge_margin, min_distance=min_distance, diameter=diameter,
                            pixel_size=pixel_size)


def picks_from_peaks(peaks, transform, *, object_type: str, micrograph: str,
                     edge_margin: float = DEFAULT_EDGE_MARGIN, min_distance: float | None = None,
                     diameter: float | None = None, pixel_size: float | None = None) -> Picks:
    """NetworkPeaks of one padded network input (host or GPU peak step) -> Picks in original pixels.

    Padding is bottom/right only, so nothing moves; peaks whose centre lies in the padding
    (outside the network image) are dropped.
    """
    from .objects import fibers_from_peaks, particles_from_peaks, vesicles_from_peaks
    from .peaks import NetworkPeaks

    my, mx = transform.network_shape
    inside = (peaks.x < mx - 0.5) & (peaks.y < my - 0.5)   # same rule as the trainer's validation
    if not inside.all():
        pick = lambda a: None if a is None else a[inside]  # noqa: E731
        peaks = NetworkPeaks(peaks.x[inside], peaks.y[inside], peaks.score[inside], pick(peaks.size),
                             pick(peaks.index))
    common = dict(micrograph=micrograph, edge_margin=edge_margin, shape=transform.original_shape,
                  pixel_size=pixel_size)
    if object_type == "vesicle":
        return vesicles_from_peaks(peaks, transform, min_distance=min_distance, **common)
    if object_type == "fiber":
        return fibers_from_peaks(peaks, transform, **common)
    return particles_from_peaks(peaks, transform, diameter=diameter, min_distance=min_distance, **common)


class Picker:
    """Picks particles, vesicles or fibers with an exported model; see the module docstring.

    - ``artifact``: ``.onnx``, TensorRT ``.engine``, torch-GPU ``.pt2`` or trainer ``.epick`` file.
    - ``backend``: ``auto`` or a name from ``epick.runtime.backends.BACKENDS``.
    - ``object_type``: refuse the artifact when its metadata says another object type.
    - ``threshold``: score threshold (default: the model's, else 0.3); ``top_k``: picks kept per
      micrograph before the edge margin; ``edge_margin``: network pixels at the 1024 scale;
      ``min_distance``: original pixels (None = off); ``diameter``: box size in original pixels
      written with the picks (default: the model's). A particle-size-mode model (preprocessing
      ``particle_px``) also scales each micrograph by it, and takes no default from the model:
      without it, call ``set_diameter(estimate_diameter(paths).diameter)`` before picking.
    - ``batch_size``: micrographs per inference call; ``readers``: decoding threads in ``pick_many``.
    - ``device_path``: keep the data on the GPU (``epick.runtime.device_path``: GPU preprocessing,
      network on device buffers, GPU peaks; same picks). None (default): when the backend runs on a
      GPU and numba.cuda has a real GPU; True: always (refused for a host-only backend); False: never.
    Thread-safe (see the module docstring). Use as a context manager or call ``close()``.
    """

    def __init__(self, artifact: str | Path | Backend, backend: str = "auto", *, object_type: str | None = None,
                 threshold: float | None = None, top_k: int = DEFAULT_TOP_K,
                 edge_margin: float = DEFAULT_EDGE_MARGIN, min_distance: float | None = None,
                 diameter: float | None = None, batch_size: int = 4, readers: int = 2,
                 threads: int | None = None, device_path: bool | None = None):
        from .preprocess import PreprocessParams

        self.backend = artifact if isinstance(artifact, Backend) else open_backend(artifact, backend, threads=threads)
        meta = self.backend.metadata
        meta.check_object(object_type, self.backend.path)
        if meta.stride != 4:
            raise ModelFileError(self.backend.path, f"output stride {meta.stride} is not supported",
                                 "export a stride-4 model (the EPicker/CenterNet detector)")
        try:
            self.params = PreprocessParams.from_dict(meta.preprocess)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(self.backend.path, f"bad preprocessing metadata ({exc})",
                                 "re-export the model with this epick version") from exc
        self.min_side = int(self.backend.min_side or 0)   # network pixels (torch-GPU package: 64)
        check_interface(self.backend, object_type=meta.object_type, stride=meta.stride, min_side=self.min_side)
        self.object_type = meta.object_type
        self.threshold = float(threshold if threshold is not None else meta.threshold or DEFAULT_THRESHOLD)
        if not 0.0 <= self.threshold <= 1.0:   # else every micrograph would fail on its own
            raise EpickError(f"score threshold {self.threshold:g} is outside [0, 1]; give --threshold between 0 and 1")
        self.top_k = int(top_k)
        self.edge_margin = float(edge_margin)
        self.min_distance = min_distance
        self.diameter = diameter if diameter is not None or self.params.size_mode else meta.diameter
        if self.params.size_mode and diameter is not None:
            self.params = self.params.with_diameter(diameter)
        self._device_wanted = device_path
        self.batch_size = max(1, int(batch_size))
        self.readers = max(1, int(readers))
        self._infer_lock = None if self.backend.thread_safe else threading.Lock()
        self._device = self._device_pipeline(device_path)

    def _device_pipeline(self, wanted: bool | None):
        """The GPU picking path when wanted and possible (see ``device_path``), else None."""
        if wanted is False or (wanted is None and not self.backend.device_io):
            return None
        if not self.backend.device_io:
            raise ModelFileError(self.backend.path, f"backend {self.backend.name} runs on the host, so the "
                                 "GPU picking path cannot be used", "use a GPU backend, or device_path=None")
        from .device_path import DevicePipeline, real_gpu_available

        if wanted is None and not real_gpu_available():
            return None
        if self._infer_lock is None:
            self._infer_lock = threading.Lock()   # the pipeline's pooled buffers and stream are shared
        log.info("GPU picking path: preprocessing, %s and peaks on the device", self.backend.name)
        return DevicePipeline(self.backend, self.params, threshold=self.threshold, top_k=self.top_k,
                              min_side=self.min_side)

    # ------------------------------------------------------------------ particle-size mode
    @property
    def needs_diameter(self) -> bool:
        """True for a particle-size-mode model that has no particle diameter yet."""
        return self.params.size_mode and not self.params.diameter

    def set_diameter(self, diameter: float) -> None:
        """The particle diameter (original pixels) of the micrographs to pick: in the particle-size
        mode it sets the scale of the preprocessing; it is also the box size written with picks."""
        self.params = self.params.with_diameter(diameter)
        self.diameter = float(diameter)
        if self._device is not None:   # the GPU preprocessor holds the settings: rebuild it
            self._device = self._device_pipeline(self._device_wanted)

    def estimate_diameter(self, sources, **kwargs):
        """Scale search on a few micrographs (see ``epick.runtime.scale_search``); does not set it."""
        from .scale_search import estimate_diameter

        return estimate_diameter(self, sources, **kwargs)

    def _check_diameter(self) -> None:
        if self.needs_diameter:
            raise EpickError(f"model {self.backend.path.name} picks in the particle-size "
                             "mode and needs the particle diameter: give --diameter PX or --diameter-a A "
                             "(Picker(diameter=...)), or let epick estimate it (picker.estimate_diameter)")

    # ------------------------------------------------------------------ properties
    @property
    def backend_name(self) -> str:
        """What actually runs, e.g. ``onnxruntime-cpu`` or ``tensorrt``."""
        return self.backend.name

    @property
    def on_device(self) -> bool:
        """True when picking keeps the data on the GPU (``epick.runtime.device_path``)."""
        return self._device is not None

    @property
    def metadata(self):
        """The artifact's :class:`~epick.runtime.backends.metadata.ArtifactMetadata`."""
        return self.backend.metadata

    # ------------------------------------------------------------------ steps
    def prepare(self, source) -> Prepared:
        """Read (when a path) and preprocess one micrograph; raises MicrographError for a bad file.

        On the GPU path only the reading and checks happen here (a ``RawPrepared``); the
        preprocessing runs on the device in ``run_batch``.
        """
        from .device_path import pad_network_image
        from .io.micrograph import read_micrograph
        from .preprocess import preprocess

        self._check_diameter()
        start = time.perf_counter()
        if isinstance(source, np.ndarray):
            data, pixel_size, name = source, None, "array"
        else:
            if self._device is not None:   # file dtype kept, read straight into a pinned buffer
                mic = read_micrograph(source, keep_dtype=True, allocate=self._device.host_buffer)
            else:
                mic = read_micrograph(source)
            data, pixel_size, name = mic.data, mic.pixel_size, Path(source).name
        if self._device is not None:
            return self._device.prepare(data, source, name, pixel_size, time.perf_counter() - start)
        u8, transform = preprocess(data, self.params)
        return Prepared(source, name, pad_network_image(u8, self.min_side), transform, pixel_size,
                        time.perf_counter() - start)

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the backend on a float32 [N, 1, H, W] batch (serialised when the backend needs it)."""
        if self._infer_lock is None:
            return self.backend.infer(images)
        with self._infer_lock:
            return self.backend.infer(images)

    def decode(self, outputs: dict[str, np.ndarray], i: int, item: Prepared) -> Picks:
        """Picks of image ``i`` of a batch's outputs, in original pixels."""
        return decode_outputs(outputs, i, item.transform, object_type=self.object_type, micrograph=item.name,
                              threshold=self.threshold, top_k=self.top_k, edge_margin=self.edge_margin,
                              min_distance=self.min_distance, diameter=self.diameter,
                              pixel_size=item.pixel_size)

    def _device_peaks(self, items: list[Prepared], keep_images: bool) -> list[tuple]:
        """GPU path: (NetworkPeaks, uint8 network image or None) per item, serialised."""
        with self._infer_lock:
            return self._device.run(items, keep_images=keep_images)

    def run_batch(self, items: list[Prepared], keep_images: bool = False) -> list[PickResult]:
        """Infer and decode one batch of same-shape items; a failing item never fails the others."""
        from .preprocess import network_input

        start = time.perf_counter()
        found = outputs = None
        try:
            if self._device is not None:
                found = self._device_peaks(items, keep_images)
            else:
                outputs = self.infer(network_input(np.stack([it.u8 for it in items])[:, None]))
        except Exception as exc:
            return self._retry_one_by_one(items, exc, keep_images)
        return self._results(items, found, outputs, start, keep_images)

    def _retry_one_by_one(self, items: list[Prepared], exc: BaseException, keep_images: bool) -> list[PickResult]:
        if len(items) == 1:
            return [self._failure(items[0], exc)]
        log.warning("batch of %d failed (%s); retrying one by one", len(items), exc)
        return [r for it in items for r in self.run_batch([it], keep_images)]

    def _results(self, items: list[Prepared], found, outputs, start: float, keep_images: bool) -> list[PickResult]:
        """PickResults of a batch from the device path's (peaks, image) rows or the host outputs."""
        share = (time.perf_counter() - start) / len(items)
        results = []
        for i, item in enumerate(items):
            try:
                if found is not None:
                    peaks, image = found[i]
                    picks = self.picks(peaks, item)
                else:
                    picks = self.decode(outputs, i, item)
                    my, mx = item.transform.network_shape
                    image = item.u8[:my, :mx]
            except Exception as exc:
                results.append(self._failure(item, exc))
                continue
            results.append(PickResult(item.source, item.name, picks,
                                      image=image if keep_images else None,
                                      transform=item.transform if keep_images else None,
                                      seconds=item.read_s + share))
        return results

    def _submit(self, items: list[Prepared]):
        """Device path: enqueue a batch (``DevicePipeline.submit``); (items, batch in flight, start)."""
        start = time.perf_counter()
        with self._infer_lock:
            return items, self._device.submit(items), start

    def _collect(self, items: list[Prepared], submitted, start: float) -> list[PickResult]:
        """Device path: the results of a submitted batch; a failure reruns it item by item."""
        try:
            with self._infer_lock:
                found = self._device.collect(submitted)
        except Exception as exc:
            return self._retry_one_by_one(items, exc, False)
        return self._results(items, found, None, start, False)

    def picks(self, peaks, item: Prepared) -> Picks:
        """Picks in original pixels from the NetworkPeaks of one item's padded network input."""
        return picks_from_peaks(peaks, item.transform, object_type=self.object_type, micrograph=item.name,
                                edge_margin=self.edge_margin, min_distance=self.min_distance,
                                diameter=self.diameter, pixel_size=item.pixel_size)

    @staticmethod
    def _failure(item: Prepared, exc: BaseException) -> PickResult:
        from .pipeline import _reason

        return PickResult(item.source, item.name, error=_reason(exc))

    # ------------------------------------------------------------------ public API
    def pick(self, array_or_path) -> Picks:
        """Pick one micrograph (path or 2-D array); raises MicrographError for a bad file."""
        result = self.run_batch([self.prepare(array_or_path)])[0]
        if result.picks is None:
            raise EpickError(f"{result.name}: {result.error}")
        return result.picks

    def pick_many(self, paths: Iterable, *, batch_size: int | None = None, readers: int | None = None,
                  stop: threading.Event | None = None, keep_images: int = 0) -> Iterator[PickResult]:
        """Stream one PickResult per input, in completion order (batches group equal shapes).

        ``paths`` may be any iterable, also an endless one (``--watch``); it is pulled lazily by
        reader threads, so at most a few batches are in memory. Per-file problems come back as
        results with ``error`` set, never as exceptions. When ``stop`` is set the current batch
        finishes and is yielded; items not yet inferred are dropped (not reported).
        ``keep_images``: keep the network image for the first N results (previews).
        On the GPU path (after the previews) ``DEVICE_BATCHES_IN_FLIGHT`` batches are enqueued before
        the oldest is collected, so the GPU works on one while the host decodes the other.
        """
        self._check_diameter()
        batch_size = batch_size or self.batch_size
        readers = readers or self.readers
        pool = ReaderPool(paths, self.prepare, readers=readers, depth=batch_size * 2,
                          name_of=lambda s: Path(s).name if not isinstance(s, np.ndarray) else "array")
        kept = 0
        in_flight: deque = deque()    # device path: batches submitted and not yet collected
        try:
            for group in batches_by_shape(pool, batch_size, stop=stop):
                if isinstance(group, Failed):
                    yield PickResult(group.source, group.name, error=group.reason)
                    continue
                if self._device is not None and kept >= keep_images:
                    try:
                        in_flight.append(self._submit(group))
                    except Exception as exc:
                        yield from self._retry_one_by_one(group, exc, False)
                    if len(in_flight) >= DEVICE_BATCHES_IN_FLIGHT:
                        yield from self._collect(*in_flight.popleft())
                    continue
                for result in self.run_batch(group, keep_images=kept < keep_images):
                    kept += result.image is not None
                    yield result
            while in_flight:
                yield from self._collect(*in_flight.popleft())
        finally:
            pool.close()

    def close(self) -> None:
        """Release the GPU path's buffers and the backend."""
        if self._device is not None:
            self._device.close()
        self.backend.close()

    def __enter__(self) -> "Picker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        where = ", data on the GPU" if self._device is not None else ""
        return f"<Picker {self.object_type} on {self.backend_name}{where} ({self.backend.path.name})>"
