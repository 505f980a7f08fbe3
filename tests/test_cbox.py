"""crYOLO CBOX filaments (read as fibers) and start-end STAR files for filaments (write)."""
from __future__ import annotations

import numpy as np
import pytest

from epick.runtime.cli import main
from epick.runtime.errors import CoordinateError
from epick.runtime.io.coordinates import read_picks, write_picks
from epick.runtime.picks import Picks

# the layout of crYOLO's filament CBOX (data_global, data_cryolo with _filamentid; boxes of one
# filament in order; <NA> for values crYOLO leaves out), two filaments of 3 and 2 boxes
FILAMENT_CBOX = """
data_global

_cbox_format_version   1.0

data_cryolo

loop_
_CoordinateX #1
_CoordinateY #2
_CoordinateZ #3
_Width #4
_Height #5
_Depth #6
_EstWidth #7
_EstHeight #8
_Confidence #9
_NumBoxes #10
_Angle #11
_filamentid #12
 80.0 180.0 <NA> 40.0 40.0 1.0 <NA> <NA> 0.9 <NA> <NA> 0
 130.0 180.0 <NA> 40.0 40.0 1.0 <NA> <NA> 0.8 <NA> <NA> 0
 180.0 180.0 <NA> 40.0 40.0 1.0 <NA> <NA> 0.7 <NA> <NA> 0
 480.0 80.0 <NA> 40.0 40.0 1.0 <NA> <NA> 0.6 <NA> <NA> 1
 480.0 140.0 <NA> 40.0 40.0 1.0 <NA> <NA> 0.5 <NA> <NA> 1
"""


def test_filament_cbox_reads_as_fibers(tmp_path):
    path = tmp_path / "fil_mic.cbox"
    path.write_text(FILAMENT_CBOX)
    [picks] = read_picks(path)
    assert picks.micrograph == "fil_mic"
    np.testing.assert_array_equal(picks.tube_id, [1, 1, 1, 2, 2])
    np.testing.assert_allclose(picks.x, [100, 150, 200, 500, 500])       # corner + 40/2
    np.testing.assert_allclose(picks.y, [200, 200, 200, 100, 160])
    np.testing.assert_allclose(picks.score, [0.9, 0.8, 0.7, 0.6, 0.5])
    assert picks.diameter == 40.0


def test_start_end_star_for_filaments(tmp_path):
    starfile = pytest.importorskip("starfile")
    picks = Picks("f", [100.0, 150.0, 200.0, 500.0, 500.0], [200.0, 200.0, 230.0, 100.0, 160.0],
                  tube_id=[1, 1, 1, 2, 2])
    path = write_picks(picks, tmp_path / "f_start_end.star", "startend")
    table = starfile.read(path)
    assert list(table.columns) == ["rlnCoordinateX", "rlnCoordinateY"]
    # one start-end pair per straight piece: (100,200)-(150,200), (150,200)-(200,230), (500,100)-(500,160)
    np.testing.assert_allclose(table["rlnCoordinateX"], [100, 150, 150, 200, 500, 500])
    np.testing.assert_allclose(table["rlnCoordinateY"], [200, 200, 200, 230, 100, 160])
    with pytest.raises(CoordinateError, match="not fibers"):
        write_picks(Picks("p", [1.0], [2.0]), tmp_path / "p_start_end.star", "startend")


def test_convert_cbox_filaments_to_start_end_and_eman_helix_boxes(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in/fil_mic.cbox").write_text(FILAMENT_CBOX)
    assert main(["convert", str(tmp_path / "in"), "--to", "startend", "--out", str(tmp_path / "se")]) == 0
    assert (tmp_path / "se/fil_mic_start_end.star").is_file()
    assert main(["convert", str(tmp_path / "in"), "--to", "box", "--out", str(tmp_path / "box")]) == 0
    tags = [ln.split("\t")[4] for ln in (tmp_path / "box/fil_mic.box").read_text().splitlines()]
    assert tags == ["-1", "-2"] * 3
