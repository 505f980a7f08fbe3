"""`epick pick`: outputs per micrograph, RELION index, failures, summary, resume, previews, exit codes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _models import blob_micrograph, make_onnx
from epick.runtime.cli import main
from epick.runtime.io.coordinates import read_picks
from epick.runtime.io.micrograph import write_mrc


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_onnx(tmp_path_factory.mktemp("model") / "blob.onnx", target_width=256)


@pytest.fixture()
def mics(tmp_path) -> Path:
    folder = tmp_path / "mics"
    folder.mkdir()
    for i in range(3):
        write_mrc(folder / f"mic{i}.mrc", blob_micrograph(seed=i)[0])
    (folder / "corrupt.mrc").write_bytes(b"\x01\x02" * 700)
    return folder


def test_pick_writes_every_format_index_failures_and_summary(model, mics, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["pick", str(mics), "--model", str(model), "--out", str(out), "--format", "star,box,cs,csv",
               "--threshold", "0.5", "--batch", "2", "--quiet", "--preview", "2"])
    assert rc == 0
    for i in range(3):
        star = read_picks(out / f"mic{i}_autopick.star")[0]
        box = read_picks(out / f"mic{i}.box")[0]
        np.testing.assert_allclose(box.x, star.x, atol=0.5)   # .box corners are whole pixels
        assert (out / f"mic{i}.csv").is_file() and (out / f"mic{i}.cs").is_file()
        assert len(star) > 0
    index = (out / "autopick.star").read_text()
    assert index.count("_autopick.star") == 3 and "corrupt" not in index
    failures = (out / "failures.txt").read_text().splitlines()
    assert len(failures) == 1 and failures[0].startswith("corrupt.mrc\t")
    assert json.loads((out / "failures.json").read_text()).keys() == {"corrupt.mrc"}
    summary = json.loads((out / "pick_summary.json").read_text())
    assert summary["picked"] == 3 and summary["failed"] == 1
    assert summary["picks_total"] == sum(summary["picks_per_micrograph"].values())
    assert len(list((out / "preview").glob("*.png"))) == 2
    captured = capsys.readouterr()
    text = captured.out
    assert "micrographs picked       3" in text and "micrographs/s" in text
    assert "epick pick: corrupt.mrc: " in captured.err   # the reason is on screen, not only in failures.txt


def test_picks_written_equal_picker_picks(model, mics, tmp_path):
    from epick.runtime import Picker

    out = tmp_path / "out"
    assert main(["pick", str(mics / "mic1.mrc"), "--model", str(model), "--out", str(out), "--quiet"]) == 0
    written = read_picks(out / "mic1_autopick.star")[0]
    direct = Picker(model).pick(mics / "mic1.mrc")
    np.testing.assert_allclose(written.x, direct.x, atol=1e-4)
    np.testing.assert_allclose(written.y, direct.y, atol=1e-4)


def test_skip_existing_resumes(model, mics, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["pick", str(mics), "--model", str(model), "--out", str(out), "--quiet"]
    assert main(args) == 0
    stamp = (out / "mic0_autopick.star").stat().st_mtime_ns
    (out / "mic2_autopick.star").unlink()
    capsys.readouterr()
    assert main(args + ["--skip-existing"]) == 0
    text = capsys.readouterr().out
    assert "skipped (outputs exist)  2" in text and "micrographs picked       1" in text
    assert (out / "mic0_autopick.star").stat().st_mtime_ns == stamp
    assert (out / "mic2_autopick.star").is_file()
    assert (out / "autopick.star").read_text().count("_autopick.star") == 3


def test_exit_code_nonzero_only_when_everything_failed(model, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.mrc").write_bytes(b"")
    (bad / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken jpeg")
    assert main(["pick", str(bad), "--model", str(model), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert len((tmp_path / "o" / "failures.txt").read_text().splitlines()) == 2


def test_errors_exit_2_with_a_fix(model, mics, tmp_path, capsys):
    assert main(["pick", str(mics), "--model", str(model), "--out", str(tmp_path / "o"), "--format", "pdf"]) == 2
    assert "choose from star, box, cs, csv" in capsys.readouterr().err
    assert main(["pick", str(mics), "--model", str(model), "--out", str(tmp_path / "o"), "--object", "fiber"]) == 2
    assert "fibers were requested" in capsys.readouterr().err
    nodiam = make_onnx(tmp_path / "nd.onnx", target_width=256, diameter=None)
    assert main(["pick", str(mics), "--model", str(nodiam), "--out", str(tmp_path / "o"), "--format", "box"]) == 2
    assert "--diameter" in capsys.readouterr().err
    # a threshold outside [0, 1] is one error up front, not one failure per micrograph
    with pytest.raises(SystemExit) as exit_info:   # refused by the option's type (runtime/cli_args.py)
        main(["pick", str(mics), "--model", str(model), "--out", str(tmp_path / "t"), "--threshold", "2"])
    assert exit_info.value.code == 2
    assert "--threshold: needs a number in (0, 1]" in capsys.readouterr().err and not (tmp_path / "t").exists()


def test_real_betagal_jpeg(model, betagal_dir, tmp_path):
    """A real 4096 x 4096 JPEG goes through reading, preprocessing, picking and writing."""
    mic = sorted(betagal_dir.glob("*.jpg"))[0]
    out = tmp_path / "out"
    assert main(["pick", str(mic), "--model", str(model), "--out", str(out), "--quiet"]) == 0
    picks = read_picks(out / f"{mic.stem}_autopick.star")[0]
    assert len(picks) > 0
    assert picks.x.min() >= 0 and picks.x.max() <= 4095 and picks.y.max() <= 4095


def test_an_interrupted_run_exits_130_and_says_how_to_continue(model, mics, tmp_path, capsys):
    # Ctrl-C sets the stop event: the run ends early, so `epick pick ... && next-step` must not go on
    import argparse
    import threading

    from epick.runtime.commands import pick as pick_cmd

    parser = argparse.ArgumentParser()
    pick_cmd.add_arguments(parser)
    args = parser.parse_args([str(mics), "--model", str(model), "--out", str(tmp_path / "o"), "--quiet"])
    stop = threading.Event()
    stop.set()
    assert pick_cmd.run(args, stop=stop) == pick_cmd.EXIT_INTERRUPTED == 130
    assert "--skip-existing" in capsys.readouterr().err
