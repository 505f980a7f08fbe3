"""`epick pick` never loses a batch to one output: names too long to write, paths with spaces,
a full disk or an unusable --out (issue 12, items 1 and 2)."""
from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from _models import blob_micrograph, make_onnx
from epick.runtime.cli import main
from epick.runtime.io.coordinates import read_picks
from epick.runtime.io.micrograph import write_mrc


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_onnx(tmp_path_factory.mktemp("model") / "blob.onnx", target_width=256)


def _mics(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        write_mrc(folder / name, blob_micrograph((256, 256), n=4, seed=i)[0])
    return folder


def test_a_name_too_long_to_write_fails_that_micrograph_only(model, tmp_path, capsys):
    long_name = "m" * 245 + ".mrc"           # 249 characters: legal; its _autopick.star name is not
    mics = _mics(tmp_path / "mics", ["a.mrc", long_name, "b.mrc"])
    out = tmp_path / "out"
    rc = main(["pick", str(mics), "--model", str(model), "--out", str(out), "--format", "box,star", "--quiet"])
    assert rc == 0
    assert len(read_picks(out / "a_autopick.star")[0]) > 0 and (out / "b.box").is_file()
    failures = (out / "failures.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in failures] == [long_name]
    assert "too long" in failures[0] and "rename" in failures[0]
    # its box file (written before the star file failed) is removed: no half set for --skip-existing
    assert not (out / ("m" * 245 + ".box")).exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]   # no temporary file left
    summary = json.loads((out / "pick_summary.json").read_text())
    assert summary["picked"] == 2 and summary["failed"] == 1
    assert long_name[:40] in capsys.readouterr().err


def test_a_full_disk_ends_the_run_with_one_error_line_exit_2_and_the_summary(model, tmp_path, capsys, monkeypatch):
    from epick.runtime.io import coordinates

    mics = _mics(tmp_path / "mics", ["a.mrc", "b.mrc", "c.mrc"])
    real = coordinates.write_picks
    written = []

    def filling_disk(picks, path, fmt=None, **kw):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(path)
        return real(picks, path, fmt, **kw)

    monkeypatch.setattr(coordinates, "write_picks", filling_disk)
    out = tmp_path / "out"
    rc = main(["pick", str(mics), "--model", str(model), "--out", str(out), "--quiet", "--batch", "1",
               "--readers", "1"])
    captured = capsys.readouterr()
    assert rc == 2
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("epick pick: error: cannot write outputs in")
    assert "No space left on device" in errors[0] and "--skip-existing" in errors[0]
    assert "micrographs picked       1" in captured.out      # what was done, before the error
    assert json.loads((out / "pick_summary.json").read_text())["picked"] == 1
    assert "Traceback" not in captured.err


def test_an_unusable_out_is_one_error_before_any_picking(model, tmp_path, capsys, monkeypatch):
    mics = _mics(tmp_path / "mics", ["a.mrc"])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["pick", str(mics), "--model", str(model), "--out", str(blocker / "out"), "--quiet"]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["pick", str(mics), "--model", str(model), "--out", str(blocker), "--quiet"]) == 2
    assert "is not a folder" in capsys.readouterr().err

    def denied(self, *a, **k):   # tests run as root here, so permissions are simulated
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_bytes", denied)
    assert main(["pick", str(mics), "--model", str(model), "--out", str(tmp_path / "ro"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Permission denied" in err and "give a folder you may write to" in err


def test_paths_with_spaces_are_quoted_in_the_index(model, tmp_path):
    mics = _mics(tmp_path / "my mics", ["a b.mrc", "c.mrc"])
    out = tmp_path / "out dir"
    assert main(["pick", str(mics), "--model", str(model), "--out", str(out), "--quiet"]) == 0
    index = (out / "autopick.star").read_text()
    assert f'"{mics / "a b.mrc"}" "{out / "a b_autopick.star"}"' in index
    picks = read_picks(out / "autopick.star")            # the index reads back, both micrographs
    assert sorted(p.micrograph for p in picks) == sorted([str(mics / "a b.mrc"), str(mics / "c.mrc")])
    assert json.loads((out / "pick_summary.json").read_text())["picked"] == 2


def test_star_string_quotes_only_what_needs_it():
    from epick.runtime.errors import CoordinateError
    from epick.runtime.io.star import star_string

    assert star_string("a.mrc") == "a.mrc"
    assert star_string("a b.mrc") == '"a b.mrc"'
    assert star_string('say "x" y') == "'say \"x\" y'"
    assert star_string("data_1.mrc") == '"data_1.mrc"'
    with pytest.raises(CoordinateError, match="line break"):
        star_string("a\nb.mrc")


def test_a_line_break_in_a_name_fails_that_micrograph_and_failures_txt_stays_one_line_each(model, tmp_path):
    mics = _mics(tmp_path / "mics", ["a.mrc", "x\ny.mrc"])
    out = tmp_path / "out"
    assert main(["pick", str(mics), "--model", str(model), "--out", str(out), "--quiet"]) == 0
    lines = (out / "failures.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("x\\ny.mrc\t") and "line break" in lines[0]
    assert (out / "autopick.star").read_text().count("_autopick.star") == 1
