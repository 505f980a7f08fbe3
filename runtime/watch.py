"""On-the-fly picking: find micrographs arriving in a folder once they are complete, remember what
was done across restarts.

- A file is *complete* when its size and mtime are unchanged across two polls and its image data
  lies within it (``epick.runtime.io.micrograph.completeness_problem``: MRC header + data size,
  every TIFF strip/tile, PNG IEND, JPEG EOI). A file whose size has not changed for
  ``CORRUPT_AFTER_S`` seconds but which is still incomplete is passed on anyway, so the reader
  reports it (a stalled copy shorter than that is waited for). Only regular files are considered
  (a FIFO named like a micrograph would block the scan).
- :class:`WatchState` keeps ``OUT/watch_state.json`` (written atomically) with every finished file
  (picked or failed) and, for failed files, their size, mtime and inode. A restart skips finished
  files; files handed out but not finished when the run stopped are not in it, so they are picked
  after the restart: nothing twice, nothing missed. A failed file is tried again when its size,
  modification time or inode changes (a copy that resumed, a file replaced in place), also after
  a restart.
"""
from __future__ import annotations

import json
import logging
import os
import stat
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
    """Why ``path`` does not look complete yet (None when its image data lies within the file)."""
    from .io.micrograph import completeness_problem

    return completeness_problem(path)


def file_stamp(st: os.stat_result) -> tuple[int, int, int]:
    """(size, mtime in ns, inode): a failed file whose stamp changes is tried again."""
    return (int(st.st_size), int(st.st_mtime_ns), int(st.st_ino))


class WatchState:
    """Names of finished files in ``OUT/watch_state.json``:
    ``{"version": 1, "done": {name: status}, "stamps": {name: [size, mtime_ns, inode]},
    "picks": {name: count}}`` (stamps of failed files; pick counts of picked files, so the summary
    covers the whole job across restarts).

    ``mark`` records a file; ``flush`` rewrites the JSON atomically (call after outputs are written).
    Thread-safe.
    """

    def __init__(self, out_dir: str | Path):
        from .errors import FileProblem

        self.path = Path(out_dir) / STATE_NAME
        self._lock = threading.Lock()
        self.done: dict[str, str] = {}
        self.stamps: dict[str, tuple[int, ...]] = {}
        self.picks: dict[str, int] = {}
        self._handed: dict[str, tuple[int, ...]] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.done = {str(k): str(v) for k, v in data.get("done", {}).items()}
                self.stamps = {str(k): tuple(int(x) for x in v) for k, v in data.get("stamps", {}).items()}
                self.picks = {str(k): int(v) for k, v in data.get("picks", {}).items()}
            except (OSError, ValueError, AttributeError) as exc:
                raise FileProblem(self.path, f"watch state is unreadable ({exc})",
                                  "delete it to pick the whole folder again") from exc
        self._dirty = False

    def __contains__(self, name: str) -> bool:
        """True when ``name`` is finished (picked or failed)."""
        with self._lock:
            return name in self.done

    def mark(self, name: str, status: str, *, stamp: tuple[int, ...] | None = None, picks: int | None = None) -> None:
        """Record ``name`` as finished (``picked`` or ``failed``; a failed file with its ``stamp``,
        a picked one with its number of ``picks`` when known)."""
        with self._lock:
            self.done[name] = status
            self.stamps.pop(name, None)
            self.picks.pop(name, None)
            stamp = self._handed.pop(name, None) if stamp is None else stamp
            if status == "failed" and stamp is not None:
                self.stamps[name] = tuple(stamp)
            if status == "picked" and picks is not None:
                self.picks[name] = int(picks)
            self._dirty = True

    def status(self, name: str) -> str | None:
        """``picked``, ``failed`` or None (not finished)."""
        with self._lock:
            return self.done.get(name)

    def handed(self, name: str, stamp: tuple[int, ...]) -> None:
        """Remember the stamp of a file as it was handed out (kept if it fails)."""
        with self._lock:
            self._handed[name] = tuple(stamp)

    def retry(self, name: str, stamp: tuple[int, ...]) -> bool:
        """True when ``name`` failed and has changed since (its size, mtime or inode differ)."""
        with self._lock:
            return self.done.get(name) == "failed" and self.stamps.get(name) != tuple(stamp)

    def forget(self, name: str) -> None:
        """Drop ``name`` (a failed file that changed is picked again)."""
        with self._lock:
            self.done.pop(name, None)
            self.stamps.pop(name, None)
            self.picks.pop(name, None)
            self._dirty = True

    def flush(self) -> None:
        """Write the state atomically when it changed."""
        with self._lock:
            if not self._dirty:
                return
            snapshot = {"version": STATE_VERSION, "done": dict(self.done),
                        "stamps": {k: list(v) for k, v in self.stamps.items()}, "picks": dict(self.picks)}
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
            status = state.status(path.name)
            if status == "picked" or (status is None and path.name in handed):
                continue
            try:
                st = path.stat()
            except OSError:                       # vanished between listing and stat, broken link
                continue
            if not stat.S_ISREG(st.st_mode):      # FIFO, device, folder: never opened
                continue
            if status is not None:                # failed before: again only once it changed
                if not state.retry(path.name, file_stamp(st)):
                    continue
                log.warning("%s changed since it failed; trying it again", path.name)
                state.forget(path.name)
                handed.discard(path.name)
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
            state.handed(path.name, file_stamp(st))
            seen.pop(path, None)
            stable_bad.pop(path, None)
            if skip(path):
                continue
            last_new = time.monotonic()
            yield path
        if idle_exit_s is not None and time.monotonic() - last_new > idle_exit_s:
            return
        stop.wait(poll_s)
