"""`epick pick --watch`: complete files only, each picked exactly once across a restart, corrupt files
listed as failures, SIGTERM stops cleanly."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from _models import blob_micrograph, make_onnx
from epick.runtime import watch
from epick.runtime.commands import pick as pick_cmd
from epick.runtime.io.micrograph import write_mrc
from epick.runtime.picker import Picker


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_onnx(tmp_path_factory.mktemp("model") / "blob.onnx", target_width=256)


def _args(model: Path, folder: Path, out: Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    pick_cmd.add_arguments(parser)
    return parser.parse_args(["--watch", str(folder), "--model", str(model), "--out", str(out), "--poll", "0.1",
                              "--quiet", "--batch", "2"])


def _wait_for(predicate, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


class _Run:
    """`epick pick --watch` in a thread, stopped through its stop event (as SIGINT would)."""

    def __init__(self, args):
        self.stop = threading.Event()
        self.rc = None
        self.thread = threading.Thread(target=self._main, args=(args,), daemon=True)   # never blocks pytest's exit
        self.thread.start()

    def _main(self, args):
        self.rc = pick_cmd.run(args, stop=self.stop)

    def finish(self) -> int:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        return self.rc


def test_watch_picks_each_file_once_across_a_restart(model, tmp_path, monkeypatch):
    folder, out = tmp_path / "incoming", tmp_path / "out"
    folder.mkdir()
    picked = Counter()
    original = Picker._results     # every picked batch's results pass through it

    def counting(self, *args, **kwargs):
        results = original(self, *args, **kwargs)
        picked.update(r.name for r in results)
        return results

    monkeypatch.setattr(Picker, "_results", counting)
    full = tmp_path / "full.mrc"
    write_mrc(full, blob_micrograph(seed=7)[0])
    for i in range(2):
        write_mrc(folder / f"m{i}.mrc", blob_micrograph(seed=i)[0])
    (folder / "m2.mrc").write_bytes(full.read_bytes()[:20000])      # a copy still in progress
    (folder / "notes.txt").write_text("not a micrograph")

    run = _Run(_args(model, folder, out))
    _wait_for(lambda: (out / "m0_autopick.star").is_file() and (out / "m1_autopick.star").is_file())
    time.sleep(1.0)                                                  # many polls: m2 stays incomplete
    assert not (out / "m2_autopick.star").exists()
    assert run.finish() == 0
    state = json.loads((out / watch.STATE_NAME).read_text())
    assert set(state["done"]) == {"m0.mrc", "m1.mrc"}

    # while stopped: the copy completes and new files arrive, one of them corrupt
    (folder / "m2.mrc").write_bytes(full.read_bytes())
    write_mrc(folder / "m3.mrc", blob_micrograph(seed=3)[0])
    (folder / "broken.mrc").write_bytes(b"\x07" * 3000)
    monkeypatch.setattr(watch, "CORRUPT_AFTER_S", 0.3)
    run = _Run(_args(model, folder, out))
    _wait_for(lambda: (out / "m3_autopick.star").is_file() and (out / "m2_autopick.star").is_file()
              and (out / "failures.txt").is_file())
    write_mrc(folder / "m4.mrc", blob_micrograph(seed=4)[0])         # arrives while running
    _wait_for(lambda: (out / "m4_autopick.star").is_file())
    assert run.finish() == 0

    assert picked == Counter({"m0.mrc": 1, "m1.mrc": 1, "m2.mrc": 1, "m3.mrc": 1, "m4.mrc": 1})
    assert (out / "failures.txt").read_text().splitlines()[0].startswith("broken.mrc\t")
    assert json.loads((out / watch.STATE_NAME).read_text())["done"]["broken.mrc"] == "failed"
    index = (out / "autopick.star").read_text()
    assert all(f"m{i}_autopick.star" in index for i in range(5))
    # a third start finds nothing new to pick
    picked.clear()
    run = _Run(_args(model, folder, out))
    time.sleep(1.0)
    assert run.finish() == 0
    assert picked == Counter()


def test_header_problem_sees_incomplete_files(tmp_path):
    full = write_mrc(tmp_path / "a.mrc", blob_micrograph(seed=1)[0])
    assert watch.header_problem(full) is None
    part = tmp_path / "b.mrc"
    part.write_bytes(full.read_bytes()[:-100])
    assert "truncated" in watch.header_problem(part)
    from PIL import Image

    Image.fromarray(blob_micrograph(seed=1)[0].clip(-2, 2).__add__(2).__mul__(60).astype("uint8")).save(tmp_path / "c.jpg")
    assert watch.header_problem(tmp_path / "c.jpg") is None
    (tmp_path / "d.jpg").write_bytes((tmp_path / "c.jpg").read_bytes()[:-500])
    assert "JPEG" in watch.header_problem(tmp_path / "d.jpg")
    (tmp_path / "e.png").write_bytes(b"")
    assert watch.header_problem(tmp_path / "e.png") == "empty"


def test_sigterm_stops_watch_cleanly(model, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    write_mrc(folder / "a.mrc", blob_micrograph(seed=1)[0])
    proc = subprocess.Popen([sys.executable, "-m", "epick.runtime.cli", "pick", "--watch", str(folder),
                             "--model", str(model), "--out", str(out), "--poll", "0.1", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (out / "a_autopick.star").is_file() or proc.poll() is not None, timeout=120)
        assert proc.poll() is None, proc.stderr.read()
        os.kill(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "SIGTERM" in stderr and "micrographs picked       1" in stdout
    assert json.loads((out / watch.STATE_NAME).read_text())["done"] == {"a.mrc": "picked"}


def test_watch_prints_the_size_note_of_the_first_micrograph_that_arrives(tmp_path, capsys):
    """The bundled general model in a watched folder: the particle size its fixed width covers is said
    once the first micrograph arrives (there is no first file when the run starts)."""
    from epick.runtime import bundled

    if not bundled.bundled_models():
        pytest.skip("no bundled models in this checkout")
    folder = tmp_path / "in"
    folder.mkdir()
    args = _args(bundled.resolve_model("general"), folder, tmp_path / "out")
    run = _Run(args)
    for i in range(2):
        write_mrc(folder / f"m{i}.mrc", blob_micrograph((512, 512), n=6, seed=i)[0], pixel_size=1.5)
    _wait_for(lambda: len(list((tmp_path / "out").glob("*_autopick.star"))) == 2)
    assert run.finish() == 0
    err = capsys.readouterr().err
    assert err.count("(64 px in these 512-px-wide micrographs, 96 A at 1.5 A/px)") == 1
