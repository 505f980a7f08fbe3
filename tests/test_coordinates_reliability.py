"""Bad coordinates are one-line errors naming the file and the row, in `epick eval`, `convert` and
`train --data`; nothing NaN/Inf is ever written (issue 12, item 10)."""
from __future__ import annotations

import numpy as np
import pytest

from epick.runtime.cli import main
from epick.runtime.errors import CoordinateError
from epick.runtime.io.coordinates import read_picks, write_picks
from epick.runtime.picks import Picks

STAR_HEAD = "\ndata_\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n"


def _cs(path, x_frac, dtype="f4"):
    """A tiny cryoSPARC .cs (NumPy format) with the location fields."""
    data = np.zeros(len(x_frac), dtype=[("uid", "u8"), ("location/micrograph_path", "S20"),
                                        ("location/center_x_frac", dtype), ("location/center_y_frac", "f4"),
                                        ("location/micrograph_shape", "u4", (2,))])
    data["location/micrograph_path"] = b"m.mrc"
    data["location/center_x_frac"] = x_frac
    data["location/center_y_frac"] = 0.5
    data["location/micrograph_shape"] = 100
    with open(path, "wb") as handle:
        np.save(handle, data)
    return path


BAD_FILES = {
    "text_autopick.star": (STAR_HEAD + "10 20\nfoo 30\n", ["_rlnCoordinateX", "'foo'", "data row 2"]),
    "nan_autopick.star": (STAR_HEAD + "10 20\n12 22\nnan 30\n", ["row 3", "x is nan"]),
    "inf_autopick.star": (STAR_HEAD + "10 inf\n", ["row 1", "y is inf"]),
    "text.csv": ("x,y,score\n10,20,0.5\nabc,30,0.4\n", ["data row 2", "'abc'"]),
    "nan.csv": ("x,y,score\n10,20,nan\n", ["row 1", "score is nan"]),
    "topaz.txt": ("image_name\tx_coord\ty_coord\tscore\nm\t1\t2\tinf\n", ["row 1", "score is inf"]),
    "empty.cs": ("", ["empty (0 bytes)"]),
}


@pytest.fixture()
def bad(tmp_path):
    files = {}
    for name, (text, words) in BAD_FILES.items():
        (tmp_path / name).write_text(text)
        files[name] = (tmp_path / name, words)
    files["text.cs"] = (_cs(tmp_path / "text.cs", [b"0.5", b"abc"], dtype="S8"),
                        ["location/center_x_frac", "'abc'", "data row 2"])
    files["nan.cs"] = (_cs(tmp_path / "nan.cs", [0.5, np.nan]), ["row 2", "x is nan"])
    return files


def test_read_picks_names_the_file_and_row(bad):
    for name, (path, words) in bad.items():
        with pytest.raises(CoordinateError) as info:
            read_picks(path)
        message = str(info.value)
        assert message.startswith(str(path)), message
        for word in words:
            assert word in message, (name, message)


def test_convert_and_eval_end_in_one_line_never_a_traceback(bad, tmp_path, capsys):
    good = tmp_path / "good_autopick.star"
    good.write_text(STAR_HEAD + "10 20\n")
    for name, (path, words) in bad.items():
        assert main(["convert", str(path), "--to", "star", "--out", str(tmp_path / f"o_{name}")]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("epick convert: error: ") and words[0] in err[0], err
        assert not list((tmp_path / f"o_{name}").glob("*")) if (tmp_path / f"o_{name}").exists() else True
    path = bad["nan_autopick.star"][0]
    assert main(["eval", "--picks", str(path), "--truth", str(good), "--diameter", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "row 3" in err[0] and "Traceback" not in err[0]


def test_nothing_nonfinite_is_ever_written(tmp_path):
    picks = Picks("m", np.array([1.0, np.nan]), np.array([2.0, 3.0]), score=np.array([0.5, 0.6]))
    for fmt in ("star", "box", "csv", "cs"):
        out = tmp_path / f"m.{fmt}"
        with pytest.raises(CoordinateError, match="not written: micrograph m, row 2: x is nan"):
            write_picks(picks, out, fmt, diameter=10)
        assert not out.exists()


def test_train_refuses_nan_coordinates_before_training(tmp_path, capsys):
    pytest.importorskip("torch")
    from _models import blob_micrograph
    from epick.runtime.io.micrograph import write_mrc

    mics, coords = tmp_path / "mics", tmp_path / "coords"
    mics.mkdir()
    coords.mkdir()
    write_mrc(mics / "a.mrc", blob_micrograph((128, 128), n=2)[0])
    (coords / "a_autopick.star").write_text(STAR_HEAD + "40 40\nnan 60\n")
    rc = main(["train", "--mode", "joint", "--data", str(mics), str(coords), "--diameter", "12",
               "-o", str(tmp_path / "m.epick"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "a_autopick.star" in err and "row 2: x is nan" in err and "Traceback" not in err
    assert not (tmp_path / "m.epick").exists()
