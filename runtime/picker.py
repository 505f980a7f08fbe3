"""The Picker: an exported model (or model file) + a backend -> Picks for micrographs.

    from epick.runtime import Picker
    picker = Picker("model.onnx")                 # backend="auto": TensorRT > torch-CUDA > ORT-CUDA > ORT-CPU
    picks = picker.pick("mic.mrc")                # Picks: centres in ORIGINAL pixels, scores
    for result in picker.pick_many(paths):        # streams PickResult, failures included, never raises per file
        ...

Thread safety: a Picker may be shared between threads. ``pick`` and ``pick_many`` hold no
per-call state on the Picker; calls into a backend that is not thread-safe (TensorRT, torch) are
serialised by a lock, ONNX Runtime sessions run concurrently.

One of two pipelines with one interface (``epick.runtime.pipeline.PickPipeline``) runs each batch,
chosen once at construction: the host pipeline (``epick.runtime.host_path``: preprocess ->
Backend.infer -> find_peaks) or, for GPU backends (TensorRT, torch-CUDA) with numba.cuda on a real
GPU, the device pipeline (``epick.runtime.device_path``: upload -> GPU preprocess ->
Backend.infer_device -> GPU peaks; only peak rows come back). Both give the same picks. The Picker
keeps what is common: the objects, thresholds and options, reading, batching and the results.

Options: ``PickOptions`` (threshold, top-K, edge margin, minimum distance, diameter), given as
``options=`` or as the same keyword arguments.

Coordinates: every result is in pixels of the original micrograph, centre-of-pixel convention
(see ``epick.runtime.picks``). Vesicles carry ``radius`` (original pixels); fibers carry
``tube_id`` (1-based), points of one tube in order along it (one polyline per tube).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .backends import Backend, open_backend
from .backends.interface_check import check_interface
from .errors import EpickError, ModelFileError
from .picks import Picks
from .pipeline import Failed, PickPipeline, Prepared, ReaderPool, batches_by_shape

log = logging.getLogger("epick.runtime")

DEFAULT_THRESHOLD = 0.3
DEFAULT_TOP_K = 2000
DEFAULT_EDGE_MARGIN = 25.0   # network pixels at the 1024 scale (scaled by objects.inside_margin)


@dataclass(frozen=True)
class PickOptions:
    """How peaks become picks; None means the model's value (threshold: else 0.3).

    - ``threshold``: score threshold in [0, 1]; ``top_k``: peaks kept per micrograph (before the
      edge margin); ``edge_margin``: network pixels at the 1024 scale (``objects.inside_margin``);
    - ``min_distance``: original pixels between picks (None: off); ``diameter``: box size in
      original pixels written with the picks. A particle-size-mode model (preprocessing
      ``particle_px``) also scales each micrograph by it, and takes no default from the model:
      without it, call ``Picker.set_diameter(Picker.estimate_diameter(paths).diameter)`` first.
    """

    threshold: float | None = None
    top_k: int = DEFAULT_TOP_K
    edge_margin: float = DEFAULT_EDGE_MARGIN
    min_distance: float | None = None
    diameter: float | None = None


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

    - ``artifact``: ``.onnx``, TensorRT ``.engine``, torch-GPU ``.pt2`` or trainer ``.epick`` file,
      or an open :class:`~epick.runtime.backends.Backend`.
    - ``backend``: ``auto`` or a name from ``epick.runtime.backends.BACKENDS``; ``threads``: ONNX
      Runtime CPU threads.
    - ``options``: :class:`PickOptions`; or its fields as keywords (``threshold``, ``top_k``,
      ``edge_margin``, ``min_distance``, ``diameter``), which override ``options``.
    - ``object_type``: refuse the artifact when its metadata says another object type.
    - ``batch_size``: micrographs per inference call; ``readers``: decoding threads in ``pick_many``.
    - ``device_path``: the device pipeline (GPU preprocessing, network on device buffers, GPU peaks;
      same picks). None (default): when the backend runs on a GPU and numba.cuda has a real GPU;
      True: always (refused for a host-only backend); False: never.
    Thread-safe (see the module docstring). Use as a context manager or call ``close()``.
    """

    def __init__(self, artifact: str | Path | Backend, backend: str = "auto", *, options: PickOptions | None = None,
                 object_type: str | None = None, batch_size: int = 4, readers: int = 2,
                 threads: int | None = None, device_path: bool | None = None, **option_values):
        from .preprocess import PreprocessParams

        unknown = sorted(set(option_values) - set(PickOptions.__dataclass_fields__))
        if unknown:
            raise TypeError(f"Picker() got unexpected keyword arguments {', '.join(unknown)}")
        options = replace(options or PickOptions(), **option_values)
        self._backend = artifact if isinstance(artifact, Backend) else open_backend(artifact, backend, threads=threads)
        meta = self._backend.metadata
        meta.check_object(object_type, self._backend.path)
        if meta.stride != 4:
            raise ModelFileError(self._backend.path, f"output stride {meta.stride} is not supported",
                                 "export a stride-4 model (the EPicker/CenterNet detector)")
        try:
            params = PreprocessParams.from_dict(meta.preprocess)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(self._backend.path, f"bad preprocessing metadata ({exc})",
                                 "re-export the model with this epick version") from exc
        min_side = int(self._backend.min_side or 0)   # network pixels (torch-GPU package: 64)
        check_interface(self._backend, object_type=meta.object_type, stride=meta.stride, min_side=min_side)
        threshold = float(options.threshold if options.threshold is not None else meta.threshold or DEFAULT_THRESHOLD)
        if not 0.0 <= threshold <= 1.0:   # else every micrograph would fail on its own
            raise EpickError(f"score threshold {threshold:g} is outside [0, 1]; give --threshold between 0 and 1")
        diameter = options.diameter if options.diameter is not None or params.size_mode else meta.diameter
        if (params.size_mode or params.rescales) and options.diameter is not None:
            params = params.with_diameter(options.diameter)
        self._options = replace(options, threshold=threshold, top_k=int(options.top_k),
                                edge_margin=float(options.edge_margin), diameter=diameter)
        self._object_type = meta.object_type
        self._params = params
        self._min_side = min_side
        self._batch_size = max(1, int(batch_size))
        self._readers = max(1, int(readers))
        self._device_wanted = device_path
        self._pipeline = self._choose_pipeline(device_path)

    def _choose_pipeline(self, wanted: bool | None) -> PickPipeline:
        """The device pipeline when wanted and possible (see ``device_path``), else the host pipeline."""
        kw = dict(threshold=self.threshold, top_k=self.top_k, min_side=self._min_side)
        if wanted is not False and (wanted or self._backend.device_io):
            if not self._backend.device_io:
                raise ModelFileError(self._backend.path, f"backend {self._backend.name} runs on the host, so "
                                     "the GPU picking path cannot be used", "use a GPU backend, or device_path=None")
            from .device_path import DevicePipeline, real_gpu_available

            if wanted or real_gpu_available():
                log.info("GPU picking path: preprocessing, %s and peaks on the device", self._backend.name)
                return DevicePipeline(self._backend, self._params, **kw)
        from .host_path import HostPipeline

        return HostPipeline(self._backend, self._params, **kw)

    # ------------------------------------------------------------------ particle-size mode
    @property
    def needs_diameter(self) -> bool:
        """True for a particle-size-mode model that has no particle diameter yet."""
        return self._params.size_mode and not self._params.diameter

    def set_diameter(self, diameter: float) -> None:
        """The particle diameter (original pixels) of the micrographs to pick: in the particle-size
        mode it sets the scale of the preprocessing; it is also the box size written with picks."""
        self._params = self._params.with_diameter(diameter)
        self._options = replace(self._options, diameter=float(diameter))
        old, self._pipeline = self._pipeline, self._choose_pipeline(self._device_wanted)  # it holds the params
        old.close()

    def estimate_diameter(self, sources, **kwargs):
        """Scale search on a few micrographs (see ``epick.runtime.scale_search``); does not set it."""
        from .scale_search import estimate_diameter

        return estimate_diameter(self, sources, **kwargs)

    def _check_diameter(self) -> None:
        if self.needs_diameter:
            raise EpickError(f"model {self._backend.path.name} picks in the particle-size "
                             "mode and needs the particle diameter: give --diameter PX or --diameter-a A "
                             "(Picker(diameter=...)), or let epick estimate it (picker.estimate_diameter)")

    # ------------------------------------------------------------------ read-only properties
    @property
    def backend(self) -> Backend:
        """The backend that runs the network."""
        return self._backend

    @property
    def backend_name(self) -> str:
        """What actually runs, e.g. ``onnxruntime-cpu`` or ``tensorrt``."""
        return self._backend.name

    @property
    def on_device(self) -> bool:
        """True when picking keeps the data on the GPU (``epick.runtime.device_path``)."""
        return self._pipeline.on_device

    @property
    def metadata(self):
        """The artifact's :class:`~epick.runtime.backends.metadata.ArtifactMetadata`."""
        return self._backend.metadata

    @property
    def options(self) -> PickOptions:
        """The options in use, the model's defaults filled in."""
        return self._options

    @property
    def object_type(self) -> str:
        """``particle``, ``vesicle`` or ``fiber`` (from the model)."""
        return self._object_type

    @property
    def threshold(self) -> float:
        """Score threshold in [0, 1]."""
        return self._options.threshold

    @property
    def top_k(self) -> int:
        """Peaks kept per micrograph before the edge margin."""
        return self._options.top_k

    @property
    def diameter(self) -> float | None:
        """Box size in original pixels written with the picks (the model's unless given)."""
        return self._options.diameter

    @property
    def params(self):
        """The model's :class:`~epick.runtime.preprocess.PreprocessParams`."""
        return self._params

    @property
    def min_side(self) -> int:
        """Smallest network input side the artifact accepts (network pixels; 0: any)."""
        return self._min_side

    # ------------------------------------------------------------------ steps (private)
    def _prepare(self, source) -> Prepared:
        """Read (when a path) and prepare one micrograph for its pipeline; raises for a bad file."""
        self._check_diameter()
        start = time.perf_counter()
        if isinstance(source, np.ndarray):
            data, pixel_size, name = source, None, "array"
        else:
            mic = self._pipeline.read(source)
            data, pixel_size, name = mic.data, mic.pixel_size, Path(source).name
        return self._pipeline.prepare(data, source, name, pixel_size, time.perf_counter() - start)

    def _picks(self, peaks, item: Prepared) -> Picks:
        """Picks in original pixels from the NetworkPeaks of one item's padded network input."""
        o = self._options
        return picks_from_peaks(peaks, item.transform, object_type=self._object_type, micrograph=item.name,
                                edge_margin=o.edge_margin, min_distance=o.min_distance, diameter=o.diameter,
                                pixel_size=item.pixel_size)

    def _run_batch(self, items: list[Prepared], keep_images: bool = False) -> list[PickResult]:
        """Peaks and picks of one batch of same-shape items; a failing item never fails the others."""
        start = time.perf_counter()
        try:
            found = self._pipeline.peaks(items, keep_images)
        except Exception as exc:
            return self._retry_one_by_one(items, exc, keep_images)
        return self._results(items, found, start, keep_images)

    def _collect(self, items: list[Prepared], submitted, start: float, keep_images: bool) -> list[PickResult]:
        """The results of a batch submitted to the pipeline; a failure reruns it item by item."""
        try:
            found = self._pipeline.collect(submitted)
        except Exception as exc:
            return self._retry_one_by_one(items, exc, keep_images)
        return self._results(items, found, start, keep_images)

    def _retry_one_by_one(self, items: list[Prepared], exc: BaseException, keep_images: bool) -> list[PickResult]:
        if len(items) == 1:
            return [self._failure(items[0], exc)]
        log.warning("batch of %d failed (%s); retrying one by one", len(items), exc)
        return [r for it in items for r in self._run_batch([it], keep_images)]

    def _results(self, items: list[Prepared], found: list[tuple], start: float, keep_images: bool) -> list[PickResult]:
        """PickResults from the pipeline's (NetworkPeaks, image) per item; ``start``: the batch's start."""
        share = (time.perf_counter() - start) / len(items)
        results = []
        for item, (peaks, image) in zip(items, found):
            try:
                picks = self._picks(peaks, item)
            except Exception as exc:
                results.append(self._failure(item, exc))
                continue
            results.append(PickResult(item.source, item.name, picks,
                                      image=image if keep_images else None,
                                      transform=item.transform if keep_images else None,
                                      seconds=item.read_s + share))
        return results

    @staticmethod
    def _failure(item: Prepared, exc: BaseException) -> PickResult:
        from .pipeline import _reason

        return PickResult(item.source, item.name, error=_reason(exc))

    # ------------------------------------------------------------------ public API
    def pick(self, array_or_path) -> Picks:
        """Pick one micrograph (path or 2-D array); raises MicrographError for a bad file."""
        result = self._run_batch([self._prepare(array_or_path)])[0]
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
        Up to ``in_flight`` batches of the pipeline (device: 2) are submitted before the oldest is
        collected, so the GPU works on one while the host maps the other's peaks to objects;
        batches that keep images are collected at once.
        """
        self._check_diameter()
        batch_size = batch_size or self._batch_size
        readers = readers or self._readers
        pool = ReaderPool(paths, self._prepare, readers=readers, depth=batch_size * 2,
                          name_of=lambda s: Path(s).name if not isinstance(s, np.ndarray) else "array")
        kept = 0
        in_flight: deque = deque()    # (items, submitted batch, start, keep_images), oldest first
        try:
            for group in batches_by_shape(pool, batch_size, stop=stop):
                if isinstance(group, Failed):
                    yield PickResult(group.source, group.name, error=group.reason)
                    continue
                keep = kept < keep_images
                start = time.perf_counter()
                try:
                    in_flight.append((group, self._pipeline.submit(group, keep), start, keep))
                except Exception as exc:
                    yield from self._retry_one_by_one(group, exc, keep)
                while in_flight and (keep or len(in_flight) >= self._pipeline.in_flight):
                    for result in self._collect(*in_flight.popleft()):
                        kept += result.image is not None
                        yield result
            while in_flight:
                yield from self._collect(*in_flight.popleft())
        finally:
            pool.close()

    def close(self) -> None:
        """Release the pipeline's buffers and the backend."""
        self._pipeline.close()
        self._backend.close()

    def __enter__(self) -> "Picker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        where = ", data on the GPU" if self.on_device else ""
        return f"<Picker {self._object_type} on {self.backend_name}{where} ({self._backend.path.name})>"
