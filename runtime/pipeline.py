"""The picking pipelines' interface, reader threads and shape-grouped batches: files are decoded and
preprocessed while the device infers.

    items --(N reader threads: prepare(item))--> bounded queue --> batches_by_shape --> device

:class:`PickPipeline` is what the Picker runs a batch through: the host pipeline
(``epick.runtime.host_path``: preprocess -> Backend.infer -> find_peaks) or the device pipeline
(``epick.runtime.device_path``: upload -> GPU preprocess -> Backend.infer_device -> GPU peaks).

Everything in flight is bounded (input is pulled lazily, the queue has ``depth`` slots and at most
``max_buffered`` prepared images wait in shape buckets), so memory stays flat however many files
stream through. A failure to prepare one item is passed on as a :class:`Failed` item, never raised.
"""
from __future__ import annotations

import abc
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np


@dataclass
class Prepared:
    """One item ready for the network: the padded uint8 network image and what maps it back."""

    source: Any                     # what was asked for (path or name)
    name: str                       # micrograph name written into the results
    u8: np.ndarray                  # uint8 [H, W] network image padded to multiples of 32
    transform: Any                  # epick.runtime.preprocess.Transform (original <-> network)
    pixel_size: float | None = None
    read_s: float = 0.0             # seconds spent reading + preprocessing

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the padded network image: items of one shape share a batch."""
        return (int(self.u8.shape[0]), int(self.u8.shape[1]))


class PickPipeline(abc.ABC):
    """Micrographs -> NetworkPeaks on one backend; the Picker chooses one at construction.

    The Picker calls ``read`` and ``prepare`` on reader threads (host work per micrograph; a bad
    file raises there), then ``submit`` once per batch of items of one ``Prepared.shape`` and
    ``collect`` for its peaks (up to ``in_flight`` batches submitted before the oldest is
    collected), then maps the peaks to objects in original pixels itself. ``submit``, ``collect``
    and ``peaks`` may be called from several threads: a pipeline serialises what must not run
    concurrently (a backend that is not thread-safe, pooled device buffers and streams).
    """

    on_device: bool = False    # True when the batch stays on the GPU from upload to peaks
    in_flight: int = 1         # batches pick_many submits before collecting the oldest

    @abc.abstractmethod
    def read(self, path) -> Any:
        """Read one micrograph file as this pipeline wants it (``epick.runtime.io.micrograph.Micrograph``)."""

    @abc.abstractmethod
    def prepare(self, data: np.ndarray, source: Any, name: str, pixel_size: float | None,
                read_s: float) -> "Prepared":
        """Host work on one raw 2-D micrograph before batching; ``Prepared.transform`` maps its
        network pixels back to original ones and ``Prepared.shape`` is its padded network shape."""

    @abc.abstractmethod
    def submit(self, items: list["Prepared"], keep_images: bool = False) -> Any:
        """Start one batch of same-shape items (the host pipeline finishes it here); a handle for
        ``collect``. Raises when the batch fails (the Picker then retries item by item)."""

    @abc.abstractmethod
    def collect(self, submitted: Any) -> list[tuple[Any, np.ndarray | None]]:
        """Per item of a submitted batch ``(NetworkPeaks, image)``: peaks in network pixels of the
        padded input (``epick.runtime.peaks`` rule, the Picker's threshold and top-K) and, when the
        batch keeps images, the unpadded uint8 network image on the host (else None). Raises when
        the batch failed."""

    def peaks(self, items: list["Prepared"], keep_images: bool = False) -> list[tuple[Any, np.ndarray | None]]:
        """``collect(submit(items))``: one batch, waited for."""
        return self.collect(self.submit(items, keep_images))

    def close(self) -> None:
        """Release buffers and streams (not the backend, which the Picker closes)."""


@dataclass
class Failed:
    """An item that could not be prepared or picked: its name and a reason a user can act on."""

    source: Any
    name: str
    reason: str


_END = object()


class ReaderPool:
    """``readers`` threads pull items lazily from ``items``, run ``prepare`` and queue the results.

    ``prepare(item)`` returns a :class:`Prepared`; any exception becomes a :class:`Failed`.
    ``name_of(item)`` names an item for failure reports. ``close()`` stops the threads promptly.
    """

    def __init__(self, items: Iterable, prepare: Callable[[Any], Prepared], *, readers: int = 2,
                 depth: int = 8, name_of: Callable[[Any], str] = str):
        self._items = iter(items)
        self._lock = threading.Lock()
        self._prepare = prepare
        self._name_of = name_of
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._threads = [threading.Thread(target=self._work, name=f"epick-reader-{i}", daemon=True)
                         for i in range(max(1, readers))]
        self._alive = len(self._threads)
        for thread in self._threads:
            thread.start()

    def _next_item(self):
        with self._lock:
            if self._stop.is_set():
                return _END
            try:
                return next(self._items)
            except StopIteration:
                return _END
            except BaseException as exc:  # the input iterator itself failed: end the stream, re-raise later
                self._error = exc
                self._stop.set()
                return _END

    def _put(self, value) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            while True:
                item = self._next_item()
                if item is _END:
                    return
                try:
                    result = self._prepare(item)
                except Exception as exc:  # one bad file never ends the run
                    result = Failed(item, self._name_of(item), _reason(exc))
                if not self._put(result):
                    return
        finally:
            self._put_end()

    def _put_end(self) -> None:
        # the end marker must arrive even after close(), so the consumer can count finished readers
        while True:
            try:
                self._queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set():
                    try:
                        self._queue.get_nowait()
                    except queue.Empty:
                        pass

    def get(self, timeout: float | None = None):
        """Next prepared/failed item, ``None`` on timeout, or raises StopIteration when all readers ended."""
        while True:
            try:
                value = self._queue.get(timeout=timeout)
            except queue.Empty:
                return None
            if value is _END:
                self._alive -= 1
                if self._alive == 0:
                    if self._error is not None:
                        raise self._error
                    raise StopIteration
                continue
            return value

    def close(self) -> None:
        """Stop pulling input, unblock the readers and wait for them."""
        self._stop.set()
        deadline = time.monotonic() + 30.0
        for thread in self._threads:
            while thread.is_alive() and time.monotonic() < deadline:
                try:
                    while True:
                        self._queue.get_nowait()
                except queue.Empty:
                    pass
                thread.join(timeout=0.05)


def batches_by_shape(pool: ReaderPool, batch_size: int, *, max_wait_s: float = 0.05,
                     max_buffered: int | None = None, stop: threading.Event | None = None
                     ) -> Iterator[list[Prepared] | Failed]:
    """Group prepared items into batches of one shape (at most ``batch_size``); pass failures through.

    A partial batch is released when nothing arrived for ``max_wait_s`` (streams such as ``--watch``
    never stall), when more than ``max_buffered`` items wait (default 2 x batch_size), and at the end.
    When ``stop`` is set, waiting items are dropped (not picked) and the generator returns.
    """
    batch_size = max(1, int(batch_size))
    max_buffered = max_buffered or 2 * batch_size
    buckets: dict[tuple[int, int], list[Prepared]] = {}
    waiting = 0
    while stop is None or not stop.is_set():
        try:
            item = pool.get(timeout=max_wait_s if waiting else 0.2)
        except StopIteration:
            for bucket in buckets.values():
                yield bucket
            return
        if item is None:
            if waiting:
                shape = max(buckets, key=lambda s: len(buckets[s]))
                waiting -= len(buckets[shape])
                yield buckets.pop(shape)
            continue
        if isinstance(item, Failed):
            yield item
            continue
        bucket = buckets.setdefault(item.shape, [])
        bucket.append(item)
        waiting += 1
        if len(bucket) >= batch_size or waiting > max_buffered:
            shape = item.shape if len(bucket) >= batch_size else max(buckets, key=lambda s: len(buckets[s]))
            waiting -= len(buckets[shape])
            yield buckets.pop(shape)


def _reason(exc: BaseException) -> str:
    """A one-line reason for a failure report (the FileProblem message already names the file)."""
    from .errors import FileProblem

    if isinstance(exc, FileProblem):
        return exc.problem + (f" ({exc.fix})" if exc.fix else "")
    return f"{type(exc).__name__}: {exc}"
