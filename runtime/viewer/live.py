"""The live page of `epick pick --watch DIR --dashboard [PORT]`: what the picker is doing at the
microscope, refreshed every 2 s.

``LiveState`` is told about each finished micrograph by the pick loop (``record``, cheap: the network
image is kept only for the latest few, thumbnails are drawn when the page asks) and answers the page:

    GET /api/live          counts, micrographs/s, picks per micrograph over time, failures with
                           reasons, latest micrographs, and how far behind the microscope it is
    GET /api/thumb/NAME    one of the latest micrographs with its picks (JPEG, preview.draw_picks)

"Behind": the watch folder is listed at most every 2 s; ``waiting`` counts micrograph files not
finished yet, ``behind_s`` is how much acquisition time they span (the newest file's mtime minus
the mtime of the newest micrograph picked; 0 when nothing waits), ``newest_age_s`` is how long ago
the microscope wrote its latest file (large when acquisition paused).
"""
from __future__ import annotations

import io
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .server import App, Reply

DEFAULT_PORT = 8766
LATEST = 8            # micrographs shown with their picks
SERIES = 5000         # points of the picks-over-time chart
FAILURES = 100        # failures listed (the count is of all)
RATE_WINDOW_S = 60.0  # micrographs/s over this window
SCAN_EVERY_S = 2.0
THUMB_WIDTH = 512     # pixels across a thumbnail


@dataclass
class _Latest:
    name: str
    when: float
    picks: object
    image: np.ndarray | None
    transform: object | None
    jpeg: bytes | None = None


class LiveState:
    """Thread-safe record of a watch run for the live page (see the module docstring)."""

    def __init__(self, watch_dir: str | Path, out_dir: str | Path, *, done=lambda name: False,
                 diameter: float | None = None, model: str = "", threshold: float | None = None):
        self.watch_dir = Path(watch_dir)
        self.out_dir = Path(out_dir)
        self.done = done                  # name -> finished (WatchState.__contains__)
        self.diameter = diameter
        self.model = model
        self.threshold = threshold
        self.started = time.time()
        self._lock = threading.Lock()
        self._series: deque = deque(maxlen=SERIES)      # (time, picks or -1 for a failure)
        self._times: deque = deque(maxlen=10_000)       # finish times, for the rate
        self._latest: deque[_Latest] = deque(maxlen=LATEST)
        self._failures: deque = deque(maxlen=FAILURES)
        self.n_picked = self.n_failed = self.n_picks = 0
        self._newest_picked_mtime: float | None = None
        self._scan: tuple[float, dict] = (0.0, {})

    # ------------------------------------------------------------------ told by the pick loop
    def record(self, result, failure: str | None = None) -> None:
        """Note one finished micrograph: a ``PickResult``, and ``failure`` when its outputs could
        not be written (then it counts as failed with that reason)."""
        now = time.time()
        try:
            mtime = Path(result.source).stat().st_mtime
        except (OSError, TypeError):
            mtime = None
        with self._lock:
            self._times.append(now)
            if result.ok and failure is None:
                self.n_picked += 1
                self.n_picks += len(result.picks)
                self._series.append((now, len(result.picks)))
                self._latest.append(_Latest(result.name, now, result.picks, result.image, result.transform))
                if mtime is not None:
                    self._newest_picked_mtime = max(mtime, self._newest_picked_mtime or mtime)
            else:
                self.n_failed += 1
                self._series.append((now, -1))
                self._failures.append({"name": result.name, "reason": failure or result.error or "unknown error",
                                       "time": now})

    # ------------------------------------------------------------------ asked by the page
    def _folder(self) -> dict:
        """Micrograph files waiting in the watch folder and the newest mtime (listed every 2 s at most)."""
        from ..io.micrograph import MICROGRAPH_SUFFIXES

        now = time.monotonic()
        with self._lock:
            if now - self._scan[0] < SCAN_EVERY_S:
                return self._scan[1]
        newest, waiting, oldest_waiting = None, 0, None
        try:
            for entry in self.watch_dir.iterdir():
                if entry.suffix.lower() not in MICROGRAPH_SUFFIXES or entry.name.startswith("."):
                    continue
                try:
                    mtime = entry.stat().st_mtime
                except OSError:
                    continue
                newest = mtime if newest is None else max(newest, mtime)
                if not self.done(entry.name):
                    waiting += 1
                    oldest_waiting = mtime if oldest_waiting is None else min(oldest_waiting, mtime)
        except OSError:
            pass
        info = {"newest_mtime": newest, "waiting": waiting, "oldest_waiting_mtime": oldest_waiting}
        with self._lock:
            self._scan = (now, info)
        return info

    def snapshot(self) -> dict:
        """Everything the live page shows, as JSON-ready values (times in seconds since the epoch)."""
        folder = self._folder()
        now = time.time()
        with self._lock:
            recent = [t for t in self._times if now - t <= RATE_WINDOW_S]
            span = min(RATE_WINDOW_S, now - self.started)
            counts = [n for _, n in self._series if n >= 0]
            behind = 0.0
            if folder["waiting"] and folder["newest_mtime"] is not None:
                since = self._newest_picked_mtime or folder["oldest_waiting_mtime"] or folder["newest_mtime"]
                behind = max(0.0, folder["newest_mtime"] - since)
            return {
                "now": now, "started": self.started, "watch_dir": str(self.watch_dir), "out_dir": str(self.out_dir),
                "model": self.model, "threshold": self.threshold,
                "picked": self.n_picked, "failed": self.n_failed, "picks": self.n_picks,
                "picks_mean_recent": float(np.mean(counts[-20:])) if counts else None,
                "rate_recent": len(recent) / span if span > 0 else 0.0,
                "rate_overall": len(self._times) / max(now - self.started, 1e-9),
                "waiting": folder["waiting"], "behind_s": behind,
                "newest_age_s": None if folder["newest_mtime"] is None else max(0.0, now - folder["newest_mtime"]),
                "series": [[round(t - self.started, 2), n] for t, n in self._series],
                "latest": [{"name": x.name, "picks": len(x.picks), "time": x.when, "thumb": x.image is not None}
                           for x in reversed(self._latest)],
                "failures": list(reversed(self._failures)),
            }

    def thumbnail(self, name: str) -> bytes:
        """JPEG of one of the latest micrographs with its picks drawn (THUMB_WIDTH px across)."""
        from PIL import Image

        from ..preview import draw_picks
        from .api import NotFound

        with self._lock:
            item = next((x for x in self._latest if x.name == name), None)
        if item is None or item.image is None:
            raise NotFound(f"{name} is not among the latest micrographs")
        if item.jpeg is None:       # drawn at thumbnail size, so circles stay one pixel wide
            from ..preprocess import Transform, network_shape

            ny, nx = network_shape(item.image.shape, THUMB_WIDTH)
            small = np.asarray(Image.fromarray(item.image).resize((nx, ny), Image.Resampling.BOX))
            img = draw_picks(small, item.picks, Transform.between(item.transform.original_shape, (ny, nx)),
                             diameter=self.diameter)
            buffer = io.BytesIO()
            img.save(buffer, format="JPEG", quality=82)
            item.jpeg = buffer.getvalue()
        return item.jpeg

    def app(self) -> App:
        """The live page and its API."""
        return App(get={
            "/api/live": lambda _, q: Reply.json(self.snapshot()),
            "/api/thumb/": lambda name, q: Reply(self.thumbnail(name), "image/jpeg", cache=True),
        }, pages={"/": "live.html"})


def start_dashboard(args, watch_state, picker):
    """For `epick pick --watch --dashboard [PORT]`: a LiveState served on ``args.dashboard_host``
    and the server (to ``stop()``), or (None, None) without ``--dashboard``."""
    import sys

    from .server import Server

    if getattr(args, "dashboard", None) is None:
        return None, None
    live = LiveState(args.watch, args.out, done=watch_state.__contains__, diameter=picker.diameter,
                     model=Path(str(args.model)).name, threshold=picker.threshold)
    server = Server(live.app(), args.dashboard_host, args.dashboard).start()
    print(f"epick pick: live page on {server.url}", file=sys.stderr, flush=True)
    return live, server
