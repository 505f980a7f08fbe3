"""`epick pick --watch` and file lists lose nothing: files first seen incomplete are picked once
complete (also after a restart), FIFOs are never opened, stale command-line paths are named and the
rest picked, the summary covers the whole job (issue 12, items 3, 6, 7 and 12)."""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from _models import blob_micrograph, make_onnx
from epick.runtime import watch
from epick.runtime.cli import main
from epick.runtime.io.micrograph import completeness_problem, write_mrc
from test_watch import _args, _Run, _wait_for   # the --watch run in a thread, as test_watch drives it


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_onnx(tmp_path_factory.mktemp("model") / "blob.onnx", target_width=256)


def _image(seed: int) -> np.ndarray:
    return blob_micrograph((256, 256), n=4, seed=seed)[0]


def _state(out: Path) -> dict:
    path = out / watch.STATE_NAME
    return json.loads(path.read_text()) if path.is_file() else {"done": {}}


def test_completeness_covers_every_format(tmp_path):
    from PIL import Image

    img = (_image(1).clip(-2, 2) * 60 + 128).astype(np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", np.stack([img, img]))
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(img).save(tmp_path / "a.jpg")
    write_mrc(tmp_path / "a.mrc", img.astype(np.float32))
    for name in ("a.tif", "a.png", "a.jpg", "a.mrc"):
        full = (tmp_path / name).read_bytes()
        assert completeness_problem(tmp_path / name) is None, name
        cut = tmp_path / f"cut_{name}"
        cut.write_bytes(full[: len(full) - 2000])     # the first chunk of a copy
        assert completeness_problem(cut) is not None, name
    # a one-page TIFF whose first chunk holds its whole header and IFD: its strip lies beyond the end
    tifffile.imwrite(tmp_path / "one.tif", img)
    with tifffile.TiffFile(tmp_path / "one.tif") as tif:
        strip_end = tif.pages[0].dataoffsets[0] + 10
    (tmp_path / "ifd.tif").write_bytes((tmp_path / "one.tif").read_bytes()[:strip_end])
    assert "page 0 has image data up to byte" in completeness_problem(tmp_path / "ifd.tif")


def test_a_file_first_seen_incomplete_is_picked_once_complete_also_after_a_restart(model, tmp_path, monkeypatch):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    monkeypatch.setattr(watch, "CORRUPT_AFTER_S", 0.2)       # a stalled copy is passed on and fails
    tifffile.imwrite(tmp_path / "full.tif", _image(1))
    full_tif = (tmp_path / "full.tif").read_bytes()
    (folder / "t.tif").write_bytes(full_tif[:len(full_tif) // 2])   # chunk 1 of 2
    write_mrc(tmp_path / "full.mrc", _image(2))
    full_mrc = (tmp_path / "full.mrc").read_bytes()
    (folder / "m.mrc").write_bytes(full_mrc[:5000])                  # a copy that stalls

    run = _Run(_args(model, folder, out))
    _wait_for(lambda: len(_state(out)["done"]) == 2)
    assert _state(out)["done"] == {"t.tif": "failed", "m.mrc": "failed"}
    (folder / "t.tif").write_bytes(full_tif)                          # chunk 2 arrives: tried again
    _wait_for(lambda: (out / "t_autopick.star").is_file())
    assert run.finish() == 0

    # while stopped, the stalled copy completes: the restart sees the change and picks it
    with open(folder / "m.mrc", "ab") as handle:
        handle.write(full_mrc[5000:])
    run = _Run(_args(model, folder, out))
    _wait_for(lambda: (out / "m_autopick.star").is_file())
    time.sleep(0.3)
    assert run.finish() == 0
    assert _state(out)["done"] == {"t.tif": "picked", "m.mrc": "picked"}
    assert not (out / "failures.txt").exists()
    summary = json.loads((out / "pick_summary.json").read_text())
    assert summary["picked"] == 2 and summary["failed"] == 0   # the whole job, across the restart
    # an unchanged failed file is not tried again on every poll
    (folder / "junk.mrc").write_bytes(b"\x07" * 3000)
    tries = []
    original = watch.header_problem
    monkeypatch.setattr(watch, "header_problem", lambda p: tries.append(p.name) or original(p))
    run = _Run(_args(model, folder, out))
    _wait_for(lambda: _state(out)["done"].get("junk.mrc") == "failed")
    n = len(tries)
    time.sleep(0.4)
    assert run.finish() == 0 and len(tries) == n


def test_watch_summary_counts_the_whole_job_across_restarts(model, tmp_path, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    write_mrc(folder / "a.mrc", _image(1))
    run = _Run(_args(model, folder, out))
    _wait_for(lambda: (out / "a_autopick.star").is_file())
    assert run.finish() == 0
    write_mrc(folder / "b.mrc", _image(2))
    run = _Run(_args(model, folder, out))
    _wait_for(lambda: (out / "b_autopick.star").is_file())
    time.sleep(0.2)
    assert run.finish() == 0
    summary = json.loads((out / "pick_summary.json").read_text())
    assert summary["picked"] == 2 and set(summary["picks_per_micrograph"]) == {"a.mrc", "b.mrc"}
    assert summary["picks_total"] == sum(summary["picks_per_micrograph"].values()) > 0
    assert "micrographs picked       2" in capsys.readouterr().out.split("backend")[-2]


def test_watch_never_opens_a_fifo_and_stops_when_asked(model, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    os.mkfifo(folder / "pipe.mrc")
    write_mrc(folder / "a.mrc", _image(1))
    run = _Run(_args(model, folder, out))
    try:
        _wait_for(lambda: (out / "a_autopick.star").is_file())
        time.sleep(0.3)
        assert run.finish() == 0
    finally:   # on a failure, release a reader blocked on the FIFO so the test process can end
        with contextlib.suppress(OSError):
            os.close(os.open(folder / "pipe.mrc", os.O_WRONLY | os.O_NONBLOCK))
    assert "pipe.mrc" not in _state(out)["done"]


def test_a_stale_path_on_the_command_line_is_named_and_the_rest_picked(model, tmp_path, capsys):
    mics = tmp_path / "mics"
    mics.mkdir()
    write_mrc(mics / "a.mrc", _image(1))
    (mics / "gone.mrc").symlink_to(tmp_path / "nowhere.mrc")
    (mics / "loop.mrc").symlink_to(mics / "loop.mrc")
    os.mkfifo(mics / "pipe.mrc")
    out = tmp_path / "out"
    rc = main(["pick", str(mics / "a.mrc"), str(mics / "gone.mrc"), str(tmp_path / "missing.mrc"),
               "--model", str(model), "--out", str(out), "--quiet"])
    assert rc == 0
    failures = dict(line.split("\t") for line in (out / "failures.txt").read_text().splitlines())
    assert "broken symbolic link" in failures[str(mics / "gone.mrc")]
    assert "no such file" in failures[str(tmp_path / "missing.mrc")]
    assert (out / "a_autopick.star").is_file()
    # in a folder too: broken links, link loops and FIFOs named like micrographs are listed
    out2 = tmp_path / "out2"
    assert main(["pick", str(mics), "--model", str(model), "--out", str(out2), "--quiet"]) == 0
    failures = (out2 / "failures.txt").read_text()
    assert "gone.mrc" in failures and "loop.mrc" in failures and "pipe.mrc\tis not a regular file" in failures
    # nothing to pick at all is still one error
    assert main(["pick", str(mics / "gone.mrc"), "--model", str(model), "--out", str(tmp_path / "o3"),
                 "--quiet"]) == 2
    assert "broken symbolic link" in capsys.readouterr().err


def _jpeg(path: Path, seed: int) -> None:
    from PIL import Image

    Image.fromarray((_image(seed).clip(-2, 2) * 60 + 128).astype(np.uint8)).save(path)


def test_micrographs_sharing_a_stem_are_refused_up_front(model, tmp_path, capsys):
    mics = tmp_path / "mics"
    mics.mkdir()
    write_mrc(mics / "a.mrc", _image(1))
    _jpeg(mics / "a.jpg", 2)
    write_mrc(mics / "b.mrc", _image(3))
    out = tmp_path / "out"
    assert main(["pick", str(mics), "--model", str(model), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "share a name stem" in err and str(mics / "a.jpg") in err and str(mics / "a.mrc") in err
    assert not list(out.glob("*_autopick.star"))
    assert main(["pick", str(mics / "*.mrc"), "--model", str(model), "--out", str(out), "--quiet"]) == 0


def test_watch_names_a_second_micrograph_with_the_same_stem_and_keeps_the_first_picks(model, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    write_mrc(folder / "a.mrc", _image(1))
    run = _Run(_args(model, folder, out))
    _wait_for(lambda: (out / "a_autopick.star").is_file())
    first = (out / "a_autopick.star").read_text()
    _jpeg(folder / "a.jpg", 5)
    _wait_for(lambda: _state(out)["done"].get("a.jpg") == "failed")
    assert run.finish() == 0
    run = _Run(_args(model, folder, out))   # a restart does not take a.mrc's outputs for a.jpg's
    time.sleep(0.4)
    assert run.finish() == 0
    assert _state(out)["done"] == {"a.mrc": "picked", "a.jpg": "failed"}
    assert (out / "a_autopick.star").read_text() == first
    assert "a.jpg\thas the same name stem as a.mrc" in (out / "failures.txt").read_text()
    index = (out / "autopick.star").read_text()
    assert "a.mrc" in index and "a.jpg" not in index


def test_watch_with_spaces_in_paths_keeps_flushing_the_index(model, tmp_path):
    folder, out = tmp_path / "in dir", tmp_path / "out dir"
    folder.mkdir()
    write_mrc(folder / "a b.mrc", _image(1))
    run = _Run(_args(model, folder, out))
    _wait_for(lambda: (out / "autopick.star").is_file())    # the periodic flush, while running
    write_mrc(folder / "c d.mrc", _image(2))
    _wait_for(lambda: "c d_autopick.star" in (out / "autopick.star").read_text())   # the flusher lives on
    assert run.finish() == 0
    from epick.runtime.io.coordinates import read_picks

    assert sorted(p.micrograph for p in read_picks(out / "autopick.star")) == [str(folder / "a b.mrc"),
                                                                               str(folder / "c d.mrc")]
