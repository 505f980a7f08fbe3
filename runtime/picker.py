"""The Picker: an exported model (or model file) + a backend -> Picks for micrographs.

    from epick.runtime import Picker
    picker = Picker("model.onnx")                 # backend="auto": TensorRT > torch-CUDA > ORT-CUDA > ORT-CPU
    picks = picker.pick("mic.mrc")                # Picks: centres in ORIGINAL pixels, scores
    for result in picker.pick_many(paths):        # streams PickResult, failures included, never raises per file
        ...

Thread safety: a Picker may be shared between threads. ``pick`` and ``pick_many`` hold no
per-call state on the Picker; calls into a backend that is not thread-safe (TensorRT, torch) are
serialised by a lock, ONNX Runtime sessions run concurrently.

Coordinates: every result is in pixels of the original micrograph, centre-of-pixel convention
(see ``epick.runtime.picks``). Vesicles carry ``radius`` (original pixels); fibers carry
``tube_id`` (1-based), points of one tube in order along it (one polyline per tube).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .backends import Backend, open_backend
from .errors import EpickError, ModelFileError
from .picks import Picks
from .pipeline import Failed, Prepared, ReaderPool, batches_by_shape

log = logging.getLogger("epick.runtime")

DEFAULT_THRESHOLD = 0.3
DEFAULT_TOP_K = 2000
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
    """Image ``i`` of a batch of network outputs -> Picks in original pixels.

    Peaks are found on the padded heatmap (padding is bottom/right only, so nothing moves) and
    peaks whose centre lies in the padding (outside the network image) are dropped.
    """
    from .objects import fibers_from_peaks, particles_from_peaks, vesicles_from_peaks
    from .peaks import NetworkPeaks, find_peaks

    size = outputs.get("size")
    peaks = find_peaks(outputs["heatmap"][i, 0], outputs["offset"][i], None if size is None else size[i],
                       threshold=threshold, top_k=top_k)
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
      written with the picks (default: the model's).
    - ``batch_size``: micrographs per inference call; ``readers``: decoding threads in ``pick_many``.
    Thread-safe (see the module docstring). Use as a context manager or call ``close()``.
    """

    def __init__(self, artifact: str | Path | Backend, backend: str = "auto", *, object_type: str | None = None,
                 threshold: float | None = None, top_k: int = DEFAULT_TOP_K,
                 edge_margin: float = DEFAULT_EDGE_MARGIN, min_distance: float | None = None,
                 diameter: float | None = None, batch_size: int = 4, readers: int = 2,
                 threads: int | None = None):
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
        self.object_type = meta.object_type
        self.threshold = float(threshold if threshold is not None else meta.threshold or DEFAULT_THRESHOLD)
        self.top_k = int(top_k)
        self.edge_margin = float(edge_margin)
        self.min_distance = min_distance
        self.diameter = diameter if diameter is not None else meta.diameter
        self.batch_size = max(1, int(batch_size))
        self.readers = max(1, int(readers))
        self._infer_lock = None if self.backend.thread_safe else threading.Lock()

    # ------------------------------------------------------------------ properties
    @property
    def backend_name(self) -> str:
        """What actually runs, e.g. ``onnxruntime-cpu`` or ``tensorrt``."""
        return self.backend.name

    @property
    def metadata(self):
        """The artifact's :class:`~epick.runtime.backends.metadata.ArtifactMetadata`."""
        return self.backend.metadata

    # ------------------------------------------------------------------ steps
    def prepare(self, source) -> Prepared:
        """Read (when a path) and preprocess one micrograph; raises MicrographError for a bad file."""
        from .io.micrograph import read_micrograph
        from .preprocess import pad_to_multiple, preprocess

        start = time.perf_counter()
        if isinstance(source, np.ndarray):
            data, pixel_size, name = source, None, "array"
        else:
            mic = read_micrograph(source)
            data, pixel_size, name = mic.data, mic.pixel_size, Path(source).name
        u8, transform = preprocess(data, self.params)
        return Prepared(source, name, pad_to_multiple(u8, 32), transform, pixel_size, time.perf_counter() - start)

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

    def run_batch(self, items: list[Prepared], keep_images: bool = False) -> list[PickResult]:
        """Infer and decode one batch of same-shape items; a failing item never fails the others."""
        from .preprocess import network_input

        start = time.perf_counter()
        try:
            outputs = self.infer(network_input(np.stack([it.u8 for it in items])[:, None]))
        except Exception as exc:
            if len(items) == 1:
                return [self._failure(items[0], exc)]
            log.warning("batch of %d failed (%s); retrying one by one", len(items), exc)
            return [r for it in items for r in self.run_batch([it], keep_images)]
        share = (time.perf_counter() - start) / len(items)
        results = []
        for i, item in enumerate(items):
            try:
                picks = self.decode(outputs, i, item)
            except Exception as exc:
                results.append(self._failure(item, exc))
                continue
            my, mx = item.transform.network_shape
            results.append(PickResult(item.source, item.name, picks,
                                      image=item.u8[:my, :mx] if keep_images else None,
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
        """
        batch_size = batch_size or self.batch_size
        readers = readers or self.readers
        pool = ReaderPool(paths, self.prepare, readers=readers, depth=batch_size * 2,
                          name_of=lambda s: Path(s).name if not isinstance(s, np.ndarray) else "array")
        kept = 0
        try:
            for group in batches_by_shape(pool, batch_size, stop=stop):
                if isinstance(group, Failed):
                    yield PickResult(group.source, group.name, error=group.reason)
                    continue
                for result in self.run_batch(group, keep_images=kept < keep_images):
                    kept += result.image is not None
                    yield result
        finally:
            pool.close()

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()

    def __enter__(self) -> "Picker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Picker {self.object_type} on {self.backend_name} ({self.backend.path.name})>"
