"""On-the-fly picking: find micrographs arriving in a folder once they are complete, remember what
was done across restarts.

- A file is *complete* when its size and mtime are unchanged across two polls and its header is
  consistent with its length (MRC: header-described data fits the file; JPEG ends with EOI; PNG
  ends with IEND; TIFF: its IFDs parse). A file whose size has not changed for ``CORRUPT_AFTER_S``
  seconds but whose header is still inconsistent is passed on anyway, so the reader reports it as
  corrupt (a stalled copy shorter than that is waited for).
- :class:`WatchState` keeps ``OUT/watch_state.json`` (written atomically) with every finished file
  (picked or failed). A restart skips them; files handed out but not finished when the run stopped
  are not in it, so they are picked after the restart: nothing twice, nothing missed.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Iterator

from .io.atomic import atomic_write

log = logging.getLogger("epick.runtime")

STATE_NAME = "watch_state.json"
STATE_VERSION = 1
CORRUPT_AFTER_S = 60.0   # seconds a stable but inconsistent file is waited for before it is reported


def header_problem(path: Path) -> str | None:
    """Why ``path`` does not look complete yet (None when its header matches its length)."""
    from .errors import MicrographError
    from .io.micrograph import read_micrograph_shape

    suffix = path.suffix.lower()
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            if size == 0:
                return "empty"
            handle.seek(max(0, size - 12))
            tail = handle.read()
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if suffix in (".jpg", ".jpeg") and not tail.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "JPEG end marker missing"
    if suffix == ".png" and b"IEND" not in tail:
        return "PNG IEND chunk missing"
    try:
        read_micrograph_shape(path)   # MRC: size from header vs length; TIFF: IFDs parse
    except MicrographError as exc:
        return exc.problem
    return None


class WatchState:
    """Names of finished files in ``OUT/watch_state.json``: ``{"version": 1, "done": {name: status}}``.

    ``mark`` records a file; ``flush`` rewrites the JSON atomically (call after outputs are written).
    Thread-safe.
    """

    def __init__(self, out_dir: str | Path):
        from .errors import FileProblem

        self.path = Path(out_dir) / STATE_NAME
        self._lock = threading.Lock()
        self.done: dict[str, str] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.done = {str(k): str(v) for k, v in data.get("done", {}).items()}
            except (OSError, ValueError, AttributeError) as exc:
                raise FileProblem(self.path, f"watch state is unreadable ({exc})",
                                  "delete it to pick the whole folder again") from exc
        self._dirty = False

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self.done

    def mark(self, name: str, status: str) -> None:
        """Record ``name`` as finished (``picked`` or ``failed``)."""
        with self._lock:
            self.done[name] = status
            self._dirty = True

    def flush(self) -> None:
        """Write the state atomically when it changed."""
        with self._lock:
            if not self._dirty:
                return
            snapshot = {"version": STATE_VERSION, "done": dict(self.done)}
            self._dirty = False
        with atomic_write(self.path) as handle:
            json.dump(snapshot, handle, indent=0, sort_keys=True)


def watch_micrographs(folder: str | Path, state: WatchState, *, stop: threading.Event,
                      poll_s: float = 2.0, idle_exit_s: float | None = None,
                      skip=lambda path: False) -> Iterator[Path]:
    """Yield each complete micrograph in ``folder`` once (not recursive), until ``stop`` is set.

    Files already in ``state`` or for which ``skip(path)`` is true are passed over. With
    ``idle_exit_s`` the generator also ends after that many seconds without a new file.
    """
    from .io.micrograph import MICROGRAPH_SUFFIXES

    folder = Path(folder)
    seen: dict[Path, tuple[int, int]] = {}
    stable_bad: dict[Path, float] = {}   # first time a stable file was found inconsistent
    handed: set[str] = set()
    last_new = time.monotonic()
    while not stop.is_set():
        try:
            entries = sorted(p for p in folder.iterdir()
                             if p.suffix.lower() in MICROGRAPH_SUFFIXES and not p.name.startswith("."))
        except OSError as exc:
            log.warning("cannot list %s (%s); retrying", folder, exc)
            entries = []
        present = set(entries)
        for gone in [p for p in seen if p not in present]:
            seen.pop(gone, None)
            stable_bad.pop(gone, None)
        for path in entries:
            if stop.is_set():
                return
            if path.name in handed or path.name in state:
                continue
            try:
                st = path.stat()
            except OSError:                       # vanished between listing and stat
                continue
            now = (st.st_size, st.st_mtime_ns)
            before = seen.get(path)
            seen[path] = now
            if before != now:
                stable_bad.pop(path, None)
                continue
            problem = header_problem(path)
            if problem is not None:
                first = stable_bad.setdefault(path, time.monotonic())
                if time.monotonic() - first < CORRUPT_AFTER_S:
                    continue
                log.warning("%s: size stable but %s; passing it on to be reported", path.name, problem)
            handed.add(path.name)
            seen.pop(path, None)
            stable_bad.pop(path, None)
            if skip(path):
                continue
            last_new = time.monotonic()
            yield path
        if idle_exit_s is not None and time.monotonic() - last_new > idle_exit_s:
            return
        stop.wait(poll_s)
