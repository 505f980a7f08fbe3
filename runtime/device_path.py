"""The GPU picking path: raw micrographs -> device preprocessing -> network on device buffers -> device
peak extraction; only the top-K peak rows come back to the host.

    file --reader thread, own dtype--> pinned buffer (PinnedPool) --copy stream, async H2D--> slot
    slot --compute stream: GpuPreprocessor (downsample, grey range, levels, equalise)--> batch[i, 0]
    batch [N, 1, H, W] float32 (device) --backend.infer_device--> heatmap/offset[/size] (device)
    --GpuPeakFinder--> NetworkPeaks per image (host, tiny) --objects.py--> Picks (original pixels)

Readers decode MRC files in their own dtype (uint16, float16, int8 travel as such) straight into
pinned buffers, so there is no float32 copy and no staging copy on the picker thread; other inputs
go through a pinned staging buffer. Uploads run on a copy stream up to two micrographs ahead of the
compute stream, ordered by events both ways (the compute stream waits for an upload; a device slot is
reused only after the kernels that read it). The preprocessing kernels, the network (the stream's
raw handle is given to ``Backend.infer_device``: torch through ``torch.cuda.ExternalStream``, TensorRT
through ``execute_async_v3``) and the peak kernels share the compute stream, and the grey range is
found and applied on the device: the host waits once per batch, for the peak rows. Device memory
crosses library borders via ``__cuda_array_interface__``. Device buffers are pooled per shape
(a few shape classes each); the torch-CUDA backend keeps one CUDA graph per input shape and replays
it for a partial last batch.

The kernels give the same bits as the host path (``epick.runtime.preprocess``, ``pad_to_multiple``
in "mean" mode, ``epick.runtime.peaks``), so both paths pick identically. numba.cuda is imported
only when a :class:`DevicePipeline` is built (the host path never imports it).

Padding geometry (shared with the host path): the network image is padded at the bottom/right to
multiples of 32 and to at least ``min_side`` per axis (the torch-GPU package needs 64), with the
mean grey of ``pad_to_multiple``; coordinates do not move.
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from .pipeline import PickPipeline, Prepared
from .preprocess import PAD_MULTIPLE, pad_network_image, padded_shape  # noqa: F401  (shared geometry)


# ---------------------------------------------------------------------------------------------
# GPU detection and items
# ---------------------------------------------------------------------------------------------
def real_gpu_available() -> bool:
    """True when numba.cuda runs on a real GPU (not the simulator). Imports numba.cuda: call only
    when a GPU backend was chosen."""
    from epick.cuda_kernels import cuda_available

    if not cuda_available():
        return False
    from numba.core import config

    return not config.ENABLE_CUDASIM


@dataclass
class RawPrepared(Prepared):
    """An item for the device path: the raw micrograph (host, dtype kept for a smaller upload)
    instead of the uint8 network image; ``transform`` and the padded shape are known from its shape."""

    raw: np.ndarray | None = None
    padded: tuple[int, int] = (0, 0)     # (H, W) of the network input: items of one shape share a batch

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the padded network input (batches group equal shapes, as on the host path)."""
        return self.padded


def new_event(timing: bool = False):
    """A CUDA event (``timing``: usable for elapsed times); the simulator's takes no arguments."""
    from numba import cuda
    from numba.core import config

    return cuda.event() if config.ENABLE_CUDASIM else cuda.event(timing=timing)


def stream_handle(stream) -> int | None:
    """The raw ``cudaStream_t`` of a numba stream as an int (None under the simulator)."""
    from numba.core import config

    if config.ENABLE_CUDASIM:
        return None
    if hasattr(stream, "__cuda_stream__"):            # numba-cuda: (version, handle)
        return int(stream.__cuda_stream__()[1])
    handle = stream.handle
    return int(handle.value if hasattr(handle, "value") else handle)   # ctypes or cuda-python binding


# ---------------------------------------------------------------------------------------------
# Upload: pinned buffers, a copy stream ordered against the compute stream by events
# ---------------------------------------------------------------------------------------------
def _event_done(event) -> bool:
    """True when the work before ``event`` has finished (the simulator runs everything at once)."""
    query = getattr(event, "query", None)
    return True if query is None else bool(query())


class PinnedPool:
    """Pinned host buffers kept per (shape, dtype), for the readers to decode micrographs into.

    ``take`` (any thread) gives a free buffer or allocates one (pageable ``np.empty`` beyond
    ``limit_bytes`` of live pinned memory); ``give_back(array, event)`` returns it once the upload
    recorded by ``event`` has finished. A buffer never given back is freed with its last reference.
    """

    def __init__(self, limit_bytes: int = 2 << 30):
        self.limit_bytes = int(limit_bytes)
        self._lock = threading.Lock()
        self._free: dict[tuple, list[np.ndarray]] = {}
        self._pending: list[tuple[np.ndarray, object]] = []
        self._owned: dict[int, weakref.ref] = {}
        self.live_bytes = 0
        self.allocated = 0

    def take(self, shape, dtype) -> np.ndarray:
        """A C-contiguous host array of ``shape`` and ``dtype`` (pinned while within the limit)."""
        from numba import cuda

        shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        key = (shape, dtype.str)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        with self._lock:
            self._reclaim()
            free = self._free.get(key)
            if free:
                return free.pop()
            if self.live_bytes + nbytes > self.limit_bytes:
                return np.empty(shape, dtype)
            self.live_bytes += nbytes
            self.allocated += 1
        array = cuda.pinned_array(shape, dtype)
        with self._lock:
            self._owned[id(array)] = weakref.ref(array)
        weakref.finalize(array, self._forget, id(array), nbytes)
        return array

    def _forget(self, key: int, nbytes: int) -> None:
        with self._lock:
            self._owned.pop(key, None)
            self.live_bytes -= nbytes

    def is_pinned(self, array) -> bool:
        """True for a buffer of this pool (uploads copy from it without staging)."""
        ref = self._owned.get(id(array))
        return ref is not None and ref() is array

    def give_back(self, array: np.ndarray, event) -> None:
        """Reuse ``array`` once ``event`` (recorded after its upload) has completed."""
        with self._lock:
            self._pending.append((array, event))

    def _reclaim(self) -> None:
        still = []
        for array, event in self._pending:
            if _event_done(event):
                self._free.setdefault((array.shape, array.dtype.str), []).append(array)
            else:
                still.append((array, event))
        self._pending = still


class RawUploader:
    """Host micrographs -> device arrays on a copy stream, ordered against the compute stream by events.

    ``stage(raw)`` enqueues the upload on ``copy_stream`` into one of ``SLOTS`` device buffers (kept per
    shape and dtype), after the compute stream has released that slot, and makes the compute stream
    wait for it; the host does not wait. A ``raw`` from the pinned pool is copied directly; any other
    array goes through a pinned staging buffer (the host waits only for that buffer's previous upload).
    ``release(slot)`` marks a staged slot free once the compute work enqueued so far is done.
    """

    SLOTS = 3

    def __init__(self, stream, pool: PinnedPool | None = None, timer: "StageTimer | None" = None):
        from numba import cuda

        self._cuda = cuda
        self.stream = stream                  # the compute stream
        self.copy_stream = cuda.stream()
        self.pool = pool
        self.timer = timer
        self._slots: list[dict] = [{} for _ in range(self.SLOTS)]
        self._next = 0
        self._staging: dict[tuple, list[dict]] = {}

    def _slot(self, shape: tuple, dtype: np.dtype) -> dict:
        slot = self._slots[self._next]
        self._next = (self._next + 1) % self.SLOTS
        if slot.get("key") != (shape, dtype.str):
            if slot.get("released") is not None:
                slot["released"].synchronize()
            slot.clear()
            slot.update(key=(shape, dtype.str), released=None,
                        device=self._cuda.device_array(shape, dtype, stream=self.copy_stream))
        return slot

    def _staged(self, raw: np.ndarray):
        """A pinned copy of a pageable ``raw`` (two staging buffers per shape and dtype)."""
        ring = self._staging.setdefault((raw.shape, raw.dtype.str), [])
        if len(ring) < 2:
            ring.append({"host": self._cuda.pinned_array(raw.shape, raw.dtype), "done": None})
        buf = ring.pop(0)
        ring.append(buf)
        if buf["done"] is not None:
            buf["done"].synchronize()         # its previous upload has left the buffer
        np.copyto(buf["host"], raw)
        return buf

    def stage(self, raw: np.ndarray):
        """Enqueue the upload of ``raw`` (2-D, a kernel-supported dtype): (device array ready in the
        compute stream's order, upload event, slot for ``release``)."""
        slot = self._slot(tuple(raw.shape), np.dtype(raw.dtype))
        if slot["released"] is not None:
            slot["released"].wait(self.copy_stream)     # the kernels that read this slot are done
        pinned = self.pool is not None and self.pool.is_pinned(raw)
        staging = None if pinned else self._staged(raw)
        if self.timer:
            self.timer.mark("upload", self.copy_stream)
        slot["device"].copy_to_device(raw if pinned else staging["host"], stream=self.copy_stream)
        if self.timer:
            self.timer.mark("upload", self.copy_stream, end=True)
        uploaded = new_event(timing=False)
        uploaded.record(self.copy_stream)
        uploaded.wait(self.stream)
        if staging is not None:
            staging["done"] = uploaded
        return slot["device"], uploaded, slot

    def release(self, slot: dict) -> None:
        """``slot`` may be overwritten once the compute work enqueued so far is done."""
        event = new_event(timing=False)
        event.record(self.stream)
        slot["released"] = event


@dataclass
class DeviceBatch:
    """A batch in flight on the device (``DevicePipeline.submit``/``collect``)."""

    items: list
    images: list
    uploaded: list            # (raw host array, its upload event)
    pending: object           # cuda_kernels.peaks_gpu.PendingPeaks, None for an empty batch


class StageTimer:
    """Sums GPU time per stage from CUDA event pairs recorded on the stream (milliseconds).

    ``mark(stage, stream)`` / ``mark(stage, stream, end=True)`` bracket work enqueued on ``stream``;
    ``collect()`` (after the stream finished) adds the elapsed times to ``totals`` and clears the events.
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._open: dict[str, object] = {}
        self._pairs: list[tuple[str, object, object]] = []

    def mark(self, stage: str, stream, end: bool = False) -> None:
        """Record the start (or ``end``) event of one occurrence of ``stage``."""
        event = new_event(timing=True)
        event.record(stream)
        if end:
            self._pairs.append((stage, self._open.pop(stage), event))
        else:
            self._open[stage] = event

    def collect(self) -> dict[str, float]:
        """Add the finished pairs' elapsed milliseconds to ``totals``; return ``totals``."""
        for stage, start, stop in self._pairs:
            stop.synchronize()
            self.totals[stage] = self.totals.get(stage, 0.0) + float(start.elapsed_time(stop))
        self._pairs.clear()
        return self.totals


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------
class DevicePipeline(PickPipeline):
    """Raw micrographs -> NetworkPeaks with the data on the GPU (see the module docstring).

    ``backend`` must implement ``infer_device`` (``backend.device_io``); ``params`` are the model's
    PreprocessParams; ``threshold``/``top_k`` as in ``epick.runtime.peaks.find_peaks``;
    ``min_side``: smallest network input side (network pixels). ``profile=True`` times each stage
    with CUDA events (``timer.totals``, milliseconds). Implements
    :class:`~epick.runtime.pipeline.PickPipeline`: ``submit`` and ``collect`` are serialised by a
    lock (pooled buffers, one compute stream); ``run`` = ``peaks`` = ``collect(submit(items))``.
    """

    on_device = True
    in_flight = 2        # batches enqueued before the oldest is collected (GPU works while the host decodes)

    def __init__(self, backend, params, *, threshold: float, top_k: int, min_side: int = 0,
                 profile: bool = False):
        from numba import cuda

        from epick.cuda_kernels import GpuPeakFinder, GpuPreprocessor
        from epick.cuda_kernels._device import BufferPool

        self.backend = backend
        self.params = params
        self.min_side = int(min_side)
        self.stream = cuda.stream()
        self.timer = StageTimer() if profile else None
        self.preprocessor = GpuPreprocessor(params, pad_multiple=0, stream=self.stream)
        self.peak_finder = GpuPeakFinder(threshold=threshold, top_k=top_k, stream=self.stream)
        self.host_buffers = PinnedPool()
        self.uploader = RawUploader(self.stream, self.host_buffers, self.timer)
        self._pool = BufferPool()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ items
    def read(self, path):
        """The micrograph in its file dtype, decoded straight into a pinned buffer when it can be."""
        from .io.micrograph import read_micrograph

        return read_micrograph(path, keep_dtype=True, allocate=self.host_buffer)

    def prepare(self, data: np.ndarray, source, name: str, pixel_size: float | None, read_s: float) -> RawPrepared:
        """Check a raw micrograph on the host (shape, dtype) and describe it for batching; no GPU work."""
        from epick.cuda_kernels.preprocess_gpu import SUPPORTED_DTYPES

        from .preprocess import Transform

        data = np.asarray(data)
        if data.ndim != 2 or data.size == 0:
            raise ValueError(f"preprocess needs a non-empty 2-D image, got shape {data.shape}")
        if not any(data.dtype == np.dtype(t) for t in SUPPORTED_DTYPES):
            data = data.astype(np.float32)    # the host path's downsample casts to float32 the same way
        out_shape = self.params.network_shape(data.shape)
        transform = Transform.between(data.shape, out_shape)
        return RawPrepared(source, name, None, transform, pixel_size, read_s, raw=data,
                           padded=padded_shape(out_shape, self.min_side))

    # ------------------------------------------------------------------ stages
    def _network_input(self, u8, pad_grey, out2d) -> None:
        """``pad_network_image`` + ``network_input`` on the device, written into ``out2d`` [H, W]."""
        from epick.cuda_kernels import preprocess_kernels
        from epick.cuda_kernels._device import grid_2d

        grid, block = grid_2d(*out2d.shape)
        preprocess_kernels.k_network_input[grid, block, self.stream](u8, pad_grey, 0, out2d)

    def host_buffer(self, shape, dtype) -> np.ndarray:
        """A pinned host buffer for a reader to decode one micrograph into (``read_micrograph(allocate=)``)."""
        return self.host_buffers.take(shape, dtype)

    def _preprocess_into(self, items: list[RawPrepared], batch, keep_images: bool,
                         uploaded: list) -> list[np.ndarray | None]:
        """Preprocess each item into ``batch[i, 0]``; the uint8 network images back on the host when
        kept. Uploads run on the copy stream up to ``RawUploader.SLOTS`` items ahead of the kernels;
        ``uploaded`` collects (pinned raw, upload event) for the caller to give back."""
        pre, timer = self.preprocessor, self.timer
        images: list[np.ndarray | None] = []
        ahead = min(len(items), self.uploader.SLOTS - 1)
        staged = [self.uploader.stage(it.raw) for it in items[:ahead]]
        for i, item in enumerate(items):
            raw, event, slot = staged[i]
            uploaded.append((item.raw, event))
            if timer:
                timer.mark("preprocess", self.stream)
            small = pre.filter(pre.downsample(raw, item.transform.network_shape))   # may be the raw slot itself
            u8, pad_grey = pre.levels_on_device(small, pre.grey_range(small))   # no host round trip
            self._network_input(u8, pad_grey, batch[i, 0])
            self.uploader.release(slot)
            if i + ahead < len(items):
                staged.append(self.uploader.stage(items[i + ahead].raw))
            if timer:
                timer.mark("preprocess", self.stream, end=True)
            images.append(u8.copy_to_host(stream=self.stream) if keep_images else None)
        if keep_images:
            self.stream.synchronize()
        return images

    def _infer(self, batch) -> dict:
        """The backend on the device batch, enqueued on this pipeline's stream."""
        if self.timer:
            self.timer.mark("infer", self.stream)
        outputs = self.backend.infer_device(batch, stream=stream_handle(self.stream))
        if self.timer:
            self.timer.mark("infer", self.stream, end=True)
        return outputs

    def submit(self, items: list[RawPrepared], keep_images: bool = False) -> "DeviceBatch":
        """``_submit`` serialised (the pooled buffers and streams are shared by all callers)."""
        with self._lock:
            return self._submit(items, keep_images)

    def collect(self, submitted: "DeviceBatch") -> list[tuple[object, np.ndarray | None]]:
        """``_collect`` serialised."""
        with self._lock:
            return self._collect(submitted)

    def _submit(self, items: list[RawPrepared], keep_images: bool = False) -> "DeviceBatch":
        """Enqueue one batch (uploads, preprocessing, network, peaks, the copy of the peak rows) and
        return without waiting; ``collect`` gives its results. Batches submitted before collecting
        the earlier ones stay in flight together: everything is ordered on the streams, and each
        batch copies its rows into its own pinned buffers. All items must share one padded shape."""
        shape = items[0].shape if items else (0, 0)
        if any(it.shape != shape for it in items):
            raise ValueError(f"one device batch needs one padded shape, got {sorted({it.shape for it in items})}")
        if not items:
            return DeviceBatch(items, [], [], None)
        batch = self._pool.get("batch", (len(items), 1) + tuple(shape), np.float32, self.stream)
        uploaded: list = []
        images = self._preprocess_into(items, batch, keep_images, uploaded)
        outputs = self._infer(batch)
        if self.timer:
            self.timer.mark("peaks", self.stream)
        pending = self.peak_finder.enqueue_batch(outputs["heatmap"], outputs["offset"], outputs.get("size"))
        if self.timer:
            self.timer.mark("peaks", self.stream, end=True)
        return DeviceBatch(items, images, uploaded, pending)

    def _collect(self, submitted: "DeviceBatch") -> list[tuple[object, np.ndarray | None]]:
        """Wait for a submitted batch: NetworkPeaks of each item (network pixels of its padded input)
        and, when kept, its uint8 network image (unpadded, host). The pinned buffers the items were
        read into go back to the pool (only now: a failed batch is retried item by item from them)."""
        if submitted.pending is None:
            return []
        peaks = self.peak_finder.collect(submitted.pending)
        for raw, event in submitted.uploaded:
            if self.host_buffers.is_pinned(raw):
                self.host_buffers.give_back(raw, event)
                for item in submitted.items:
                    if item.raw is raw:
                        item.raw = None        # the buffer belongs to the pool again
        if self.timer:
            self.timer.collect()
        return list(zip(peaks, submitted.images))

    run = PickPipeline.peaks   # one batch, waited for (the name the benchmarks use)

    def close(self) -> None:
        """Drop the pooled device buffers (numba frees them when unreferenced)."""
        self._pool = None
        self.uploader = None
