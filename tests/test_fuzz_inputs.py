"""Fuzz suite: one `epick pick` batch over bad and odd inputs made here (empty, truncated, random,
mislabelled, damaged headers, absurd sizes, odd names, links, FIFOs, folders, byte-flipped copies
of good files). The batch never crashes: good micrographs are picked, every other input is named
in failures.txt with a reason, nothing is half-written (issue 12, suite)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from _models import blob_micrograph, make_onnx
from epick.runtime.cli import main
from epick.runtime.io.coordinates import read_picks
from epick.runtime.io.micrograph import write_mrc

RNG = np.random.default_rng(12)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_onnx(tmp_path_factory.mktemp("model") / "blob.onnx", target_width=128)


def _u8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, -2, 2) * 60 + 128).astype(np.uint8)


def _mrc_with(folder: Path, name: str, **fields) -> None:
    path = write_mrc(folder / name, np.zeros((16, 16), np.float32))
    raw = bytearray(path.read_bytes())
    offsets = {"nx": 0, "ny": 4, "nz": 8, "mode": 12, "nsymbt": 92}
    for key, value in fields.items():
        raw[offsets[key]:offsets[key] + 4] = np.int32(value).tobytes()
    path.write_bytes(bytes(raw))


def make_inputs(folder: Path) -> tuple[set[str], set[str]]:
    """Write the fuzz inputs into ``folder``: (names that must be picked, names that must fail)."""
    folder.mkdir()
    image = blob_micrograph((160, 192), n=5, seed=1)[0]
    good = {"good.mrc", "good_t.tif", "good_p.png", "good_j.jpg", "good stack.mrc", "ünï cødé.mrc", "-dash.mrc",
            "hash #1.mrc", "tiny.mrc", "constant.mrc", "all nan.mrc", "m" * 200 + ".mrc"}
    write_mrc(folder / "good.mrc", image)
    tifffile.imwrite(folder / "good_t.tif", image)
    Image.fromarray(_u8(image)).save(folder / "good_p.png")
    Image.fromarray(_u8(image)).save(folder / "good_j.jpg")
    write_mrc(folder / "good stack.mrc", np.stack([image, image]))
    for name in ("ünï cødé.mrc", "-dash.mrc", "hash #1.mrc", "it's \"quoted\".mrc", "m" * 200 + ".mrc"):
        write_mrc(folder / name, image)
    write_mrc(folder / "tiny.mrc", np.ones((1, 3), np.float32))
    write_mrc(folder / "constant.mrc", np.full((64, 64), 7.0, np.float32))
    write_mrc(folder / "all nan.mrc", np.full((64, 64), np.nan, np.float32))

    bad = set()
    full = {name[-3:]: (folder / name).read_bytes() for name in ("good.mrc", "good_t.tif", "good_p.png",
                                                                  "good_j.jpg")}
    for suffix, data in full.items():   # stems differ: micrographs sharing a stem refuse the batch
        (folder / f"empty_{suffix}.{suffix}").write_bytes(b"")
        (folder / f"half_{suffix}.{suffix}").write_bytes(data[: len(data) // 2])
        (folder / f"random_{suffix}.{suffix}").write_bytes(RNG.integers(0, 256, 3000, dtype=np.uint8).tobytes())
        bad |= {f"empty_{suffix}.{suffix}", f"half_{suffix}.{suffix}", f"random_{suffix}.{suffix}"}
    (folder / "png named.mrc").write_bytes(full["png"])
    _mrc_with(folder, "mode4.mrc", mode=4)
    _mrc_with(folder, "ext -1.mrc", nsymbt=-1)
    _mrc_with(folder, "huge.mrc", nx=40000, ny=40000)
    _mrc_with(folder, "nz0.mrc", nz=0)
    _mrc_with(folder, "nx negative.mrc", nx=-5)
    (folder / "no pages.tif").write_bytes(b"II*\x00" + np.uint32(0).tobytes())
    tifffile.imwrite(folder / "complex.tif", (image + 1j).astype(np.complex64))
    (folder / "broken link.mrc").symlink_to(folder / "nowhere.mrc")
    (folder / "loop.mrc").symlink_to(folder / "loop.mrc")
    os.mkfifo(folder / "pipe.mrc")
    (folder / "folder.mrc").mkdir()
    (folder / "line\nbreak.mrc").write_bytes(full["mrc"])
    (folder / ("n" * 245 + ".mrc")).write_bytes(full["mrc"])   # legal name, its STAR name is not
    bad |= {"it's \"quoted\".mrc",   # spaces and both quotes: no STAR value can hold it
            "png named.mrc", "mode4.mrc", "ext -1.mrc", "huge.mrc", "nz0.mrc", "nx negative.mrc", "no pages.tif",
            "complex.tif", "line\nbreak.mrc", "n" * 245 + ".mrc"}
    links = {"broken link.mrc", "loop.mrc", "pipe.mrc", "folder.mrc"}
    # byte-flipped copies of a good MRC header and a good TIFF: either picked or named, never a crash
    for i in range(12):
        source = "good.mrc" if i % 2 == 0 else "good_t.tif"
        data = bytearray(full[source[-3:]])
        for pos in RNG.integers(0, 256, 6):
            data[pos] = int(RNG.integers(0, 256))
        (folder / f"flipped{i:02d}{Path(source).suffix}").write_bytes(bytes(data))
    return good, bad | links


def test_one_batch_of_bad_and_odd_inputs_never_crashes(model, tmp_path, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    good, bad = make_inputs(folder)
    rc = main(["pick", str(folder), "--model", str(model), "--out", str(out), "--format", "star,box,csv,cs",
               "--diameter", "20", "--quiet", "--batch", "3"])
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err and "internal error" not in err, err[-3000:]
    failures = {}
    for line in (out / "failures.txt").read_text().splitlines():
        name, reason = line.split("\t")
        failures[Path(name.encode().decode("unicode_escape") if "\\" in name else name).name] = reason
        assert reason.strip()
    summary = json.loads((out / "pick_summary.json").read_text())
    picked = set(summary["picks_per_micrograph"])
    assert good <= picked, good - picked
    assert bad <= set(failures), bad - set(failures)
    every = {p.name for p in folder.iterdir()}
    assert picked | set(failures) == every          # nothing skipped silently
    assert not picked & set(failures)
    for name in picked:                              # every picked micrograph has its full set of outputs
        stem = Path(name).stem
        for suffix in ("_autopick.star", ".box", ".csv", ".cs"):
            assert (out / f"{stem}{suffix}").is_file(), (name, suffix)
    index = read_picks(out / "autopick.star")
    assert sorted(Path(p.micrograph).name for p in index) == sorted(picked)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]   # no temporary file left
    for name in ("half_mrc.mrc", "huge.mrc", "ext -1.mrc", "no pages.tif", "complex.tif", "broken link.mrc",
                 "pipe.mrc"):
        assert any(w in failures[name] for w in ("truncated", "declares", "negative", "no image", "complex",
                                                  "broken", "regular file")), (name, failures[name])
