"""Micrograph reading never kills the process and never allocates what a header merely claims:
a file shrinking while read, absurd sizes, odd headers (issue 12, items 4, 11 and 12)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tifffile

from epick.runtime.errors import MicrographError
from epick.runtime.io import micrograph as mio
from epick.runtime.io.micrograph import read_micrograph, read_micrograph_shape, write_mrc


def test_a_micrograph_shrinking_while_read_is_a_named_failure_not_sigbus(tmp_path):
    """Another process truncates and rewrites an MRC while it is read, many times: every read
    either gives the whole image or says the file changed; the reading process never dies."""
    n = 4096   # 64 MB: a copy out of a memory map takes long enough to be cut short (SIGBUS before the fix)
    path = write_mrc(tmp_path / "grow.mrc", np.arange(n * n, dtype=np.float32).reshape(n, n))
    script = textwrap.dedent(f"""
        import os, threading, time
        from epick.runtime.errors import MicrographError
        from epick.runtime.io.micrograph import read_micrograph
        path = {str(path)!r}
        full = open(path, "rb").read()
        stop = threading.Event()
        def churn():
            while not stop.is_set():
                time.sleep(0.01)
                os.truncate(path, 2048)
                with open(path, "r+b") as f:
                    f.write(full)
        t = threading.Thread(target=churn); t.start()
        ok = changed = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                data = read_micrograph(path).data
                assert data[-1, -1] == {n * n - 1}, data[-1, -1]
                ok += 1
            except MicrographError as exc:
                assert "changed while being read" in str(exc) or "truncated" in str(exc), exc
                changed += 1
        stop.set(); t.join()
        print(ok, changed)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])   # -7 = SIGBUS before the fix
    ok, changed = map(int, proc.stdout.split())
    assert ok + changed > 0


def test_a_short_read_says_changed_while_being_read(tmp_path, monkeypatch):
    path = write_mrc(tmp_path / "a.mrc", np.ones((64, 64), np.float32))
    real = mio._mrc_header

    def header_then_shrink(p):   # the file shrinks between the header check and the data read
        header = real(p)
        with open(p, "r+b") as handle:
            handle.truncate(1024 + 100)
        return header

    monkeypatch.setattr(mio, "_mrc_header", header_then_shrink)
    with pytest.raises(MicrographError, match="a.mrc: changed while being read"):
        read_micrograph(path)


def test_mrc_read_without_a_map_gives_the_same_values(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(40, 56)).astype(np.float32)
    write_mrc(tmp_path / "a.mrc", image, pixel_size=1.5)
    mic = read_micrograph(tmp_path / "a.mrc")
    np.testing.assert_array_equal(mic.data, image)
    assert mic.pixel_size == 1.5 and mic.data.flags.writeable and mic.data.flags.c_contiguous
    stack = rng.normal(size=(3, 40, 56)).astype(np.float32)
    write_mrc(tmp_path / "s.mrc", stack)
    np.testing.assert_allclose(read_micrograph(tmp_path / "s.mrc").data, stack.mean(0), rtol=1e-6, atol=1e-6)


def _header_with(tmp_path, name, **fields):
    path = write_mrc(tmp_path / name, np.zeros((8, 8), np.float32))
    raw = bytearray(path.read_bytes())
    offsets = {"nx": 0, "ny": 4, "nz": 8, "nsymbt": 92}
    for key, value in fields.items():
        raw[offsets[key]:offsets[key] + 4] = np.int32(value).tobytes()
    path.write_bytes(bytes(raw))
    return path


def test_absurd_sizes_are_refused_before_allocating(tmp_path):
    path = _header_with(tmp_path, "huge.mrc", nx=40000, ny=40000)
    for reader in (read_micrograph, read_micrograph_shape):
        with pytest.raises(MicrographError, match="declares 40000 x 40000 pixels, more than epick reads"):
            reader(path)
    frames = _header_with(tmp_path, "frames.mrc", nx=8192, ny=8192, nz=100000)
    with pytest.raises(MicrographError, match="100000 frames"):
        read_micrograph(frames)
    assert mio.MAX_PIXELS == 16384 * 16384


def test_a_negative_extended_header_is_named_not_called_truncated(tmp_path):
    path = _header_with(tmp_path, "ext.mrc", nsymbt=-1)
    with pytest.raises(MicrographError) as info:
        read_micrograph(path)
    assert "negative extended-header length (-1)" in str(info.value) and "truncated" not in str(info.value)


def test_a_tiff_without_pages_and_a_complex_tiff_say_so(tmp_path):
    (tmp_path / "empty.tif").write_bytes(b"II*\x00" + np.uint32(0).tobytes())
    for reader in (read_micrograph, read_micrograph_shape):
        with pytest.raises(MicrographError, match="empty.tif: .*no image in it"):
            reader(tmp_path / "empty.tif")
    tifffile.imwrite(tmp_path / "c.tif", (np.ones((16, 16)) + 1j).astype(np.complex64))
    with pytest.raises(MicrographError, match="complex pixels"):
        read_micrograph(tmp_path / "c.tif")


def test_a_tiff_cut_after_its_first_page_says_truncated(tmp_path):
    tifffile.imwrite(tmp_path / "full.tif", np.zeros((2, 64, 64), np.float32))
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) - 3000])   # page 1 lies beyond the end
    with pytest.raises(MicrographError, match=r"cut.tif: is truncated: page 1 (starts|has image data) "):
        read_micrograph(tmp_path / "cut.tif")
