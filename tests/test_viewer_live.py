"""The live page of `epick pick --watch --dashboard`: the state the pick loop feeds, and a real watch
run serving it (simulated micrographs, the bundled demo model)."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from epick.runtime import watch
from epick.runtime.commands import pick as pick_cmd
from epick.runtime.demo import bundled_model
from epick.runtime.errors import EpickError
from epick.runtime.picker import PickResult
from epick.runtime.picks import Picks
from epick.runtime.viewer.live import LiveState


def _result(path: Path, n: int) -> PickResult:
    picks = Picks(path.name, np.arange(n) * 10.0, np.arange(n) * 10.0, score=np.full(n, 0.5))
    return PickResult(source=path, name=path.name, picks=picks)


def test_state_counts_rate_failures_and_how_far_behind(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    done: set[str] = set()
    live = LiveState(folder, tmp_path / "out", done=done.__contains__)
    t0 = time.time() - 100
    for i, n in enumerate([12, 30]):
        path = folder / f"m{i}.mrc"
        path.write_bytes(b"x")
        os.utime(path, (t0 + 10 * i, t0 + 10 * i))
        live.record(_result(path, n))
        done.add(path.name)
    live.record(PickResult(source=folder / "bad.mrc", name="bad.mrc", error="truncated MRC"))
    live.record(_result(folder / "m9.mrc", 5), failure="disk full")          # picked, not written
    for i in (2, 3):                                                         # arrived, not picked yet
        path = folder / f"m{i}.mrc"
        path.write_bytes(b"x")
        os.utime(path, (t0 + 10 + 30 * (i - 1), t0 + 10 + 30 * (i - 1)))
    snap = live.snapshot()
    assert (snap["picked"], snap["failed"], snap["picks"]) == (2, 2, 42)
    assert snap["picks_mean_recent"] == 21.0
    assert [f["name"] for f in snap["failures"]] == ["m9.mrc", "bad.mrc"]
    assert snap["failures"][1]["reason"] == "truncated MRC" and snap["failures"][0]["reason"] == "disk full"
    assert [n for _, n in snap["series"]] == [12, 30, -1, -1]
    assert snap["rate_recent"] > 0
    # 2 files waiting; the newest was written 60 s after the newest one picked
    assert snap["waiting"] == 2 and snap["behind_s"] == pytest.approx(60.0, abs=0.01)
    assert snap["newest_age_s"] == pytest.approx(30.0, abs=5.0)
    assert [m["name"] for m in snap["latest"]] == ["m1.mrc", "m0.mrc"]
    json.dumps(snap, allow_nan=False)


def test_dashboard_needs_watch(tmp_path):
    parser = argparse.ArgumentParser()
    pick_cmd.add_arguments(parser)
    args = parser.parse_args([str(tmp_path), "--model", str(bundled_model()), "--out", str(tmp_path / "o"),
                              "--dashboard"])
    assert args.dashboard == 8766
    with pytest.raises(EpickError, match="--watch"):
        pick_cmd.run(args)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as reply:
        body = reply.read()
        return json.loads(body) if "json" in reply.headers["Content-Type"] else body


def test_watch_run_serves_the_live_page(viewer_job, tmp_path, capsys, monkeypatch):
    sim, _ = viewer_job
    folder, out = tmp_path / "incoming", tmp_path / "out"
    folder.mkdir()
    shutil.copy(sim / "mic_000.mrc", folder)
    (folder / "broken.mrc").write_bytes(b"\x07" * 3000)
    monkeypatch.setattr(watch, "CORRUPT_AFTER_S", 0.2)
    parser = argparse.ArgumentParser()
    pick_cmd.add_arguments(parser)
    args = parser.parse_args(["--watch", str(folder), "--model", str(bundled_model()), "--out", str(out),
                              "--poll", "0.1", "--quiet", "--dashboard", "0"])
    stop = threading.Event()
    codes = []
    thread = threading.Thread(target=lambda: codes.append(pick_cmd.run(args, stop=stop)))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            found = re.search(r"live page on (http://\S+)", capsys.readouterr().err)
            url = found.group(1) if found else None
            time.sleep(0.05)
        assert url and url.startswith("http://127.0.0.1:")
        shutil.copy(sim / "mic_001.mrc", folder)                    # arrives while running
        while time.monotonic() < deadline:
            snap = _get(url + "api/live")
            if snap["picked"] == 2 and snap["failed"] == 1 and snap["waiting"] == 0:   # folder listed every 2 s
                break
            time.sleep(0.1)
        assert (snap["picked"], snap["failed"]) == (2, 1)
        assert {m["name"] for m in snap["latest"]} == {"mic_000.mrc", "mic_001.mrc"}
        assert snap["failures"][0]["name"] == "broken.mrc" and snap["failures"][0]["reason"]
        assert snap["waiting"] == 0 and snap["behind_s"] == 0
        written = {m["name"]: len(_read(out / m["name"].replace(".mrc", "_autopick.star"))) for m in snap["latest"]}
        assert {m["name"]: m["picks"] for m in snap["latest"]} == written
        thumb = _get(url + "api/thumb/mic_001.mrc")
        assert thumb[:2] == b"\xff\xd8" and len(thumb) < 200_000
        assert b"live.js" in _get(url)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert codes == [0]
    with pytest.raises(OSError):                                     # the page goes with the run
        _get(url + "api/live")


def _read(path: Path) -> Picks:
    from epick.runtime.io.coordinates import read_picks

    return read_picks(path)[0]
