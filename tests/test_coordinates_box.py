"""EMAN .box: corner <-> centre conversion, box size, helix start/end pairs."""
from __future__ import annotations

import numpy as np
import pytest

from epick.runtime.errors import CoordinateError
from epick.runtime.io.coordinates import read_picks, write_picks
from epick.runtime.picks import Picks

# As crYOLO / RELION write .box for particles: corner = centre - box/2, tab-separated.
CRYOLO_BOX = "1166\t77\t208\t208\n2312.5\t83\t208\t208\n"
# As e2helixboxer / crYOLO write filaments: start (-1) and end (-2) boxes per tube.
EMAN_HELIX_BOX = ("100\t200\t64\t64\t-1\n400\t200\t64\t64\t-2\n"
                  "1000\t1000\t64\t64\t-1\n1000\t1500\t64\t64\t-2\n")


def test_reads_corners_as_centres_plus_half_box(tmp_path):
    path = tmp_path / "mic_001.box"
    path.write_text(CRYOLO_BOX)
    [picks] = read_picks(path)
    # centre = corner + size/2: not the corner itself (the original EPicker's mistake)
    np.testing.assert_array_equal(picks.x, [1270.0, 2416.5])
    np.testing.assert_array_equal(picks.y, [181.0, 187.0])
    assert picks.diameter == 208.0
    assert picks.micrograph == "mic_001"


def test_writes_integer_corner_equal_centre_minus_half_box(tmp_path):
    # integers, as EMAN/crYOLO write them: Topaz's reader raises on "-53.75" and RELION's integer
    # read of the columns truncates it
    picks = Picks("m", [1270.0, 50.25, 10.7], [181.0, 60.0, 20.2])
    path = write_picks(picks, tmp_path / "m.box", diameter=208.4)
    rows = [ln.split("\t") for ln in path.read_text().splitlines()]
    assert rows == [["1166", "77", "208", "208"], ["-54", "-44", "208", "208"], ["-93", "-84", "208", "208"]]
    for row in rows:
        assert all(str(int(v)) == v for v in row)


def test_round_trip_moves_centres_by_at_most_half_a_pixel(tmp_path):
    rng = np.random.default_rng(3)
    picks = Picks("m", rng.uniform(0, 4096, 300), rng.uniform(0, 4096, 300), diameter=107.3)
    [back] = read_picks(write_picks(picks, tmp_path / "m.box"))
    assert np.abs(back.x - picks.x).max() <= 0.5
    assert np.abs(back.y - picks.y).max() <= 0.5
    assert np.abs(back.x - picks.x).max() > 0.1   # the corners really are whole pixels
    assert back.diameter == 107.0


def test_writing_without_a_size_names_the_fix(tmp_path):
    with pytest.raises(CoordinateError, match="--diameter"):
        write_picks(Picks("m", [1.0], [2.0]), tmp_path / "m.box")
    assert not (tmp_path / "m.box").exists()


def test_vesicles_write_their_bounding_square(tmp_path):
    picks = Picks("v", [500.0, 800.0], [400.0, 900.0], radius=[50.0, 120.0])
    path = write_picks(picks, tmp_path / "v.box")
    rows = [ln.split("\t") for ln in path.read_text().splitlines()]
    assert rows == [["450", "350", "100", "100"], ["680", "780", "240", "240"]]
    [back] = read_picks(path)
    np.testing.assert_array_equal(back.radius, [50.0, 120.0])
    np.testing.assert_array_equal(back.x, picks.x)


def test_reads_eman_helix_start_end_pairs(tmp_path):
    path = tmp_path / "fil.box"
    path.write_text(EMAN_HELIX_BOX)
    [picks] = read_picks(path)
    np.testing.assert_array_equal(picks.tube_id, [1, 1, 2, 2])
    np.testing.assert_array_equal(picks.x, [132, 432, 1032, 1032])
    np.testing.assert_array_equal(picks.y, [232, 232, 1032, 1532])
    assert picks.diameter == 64.0


def test_fiber_polylines_round_trip_through_start_end_pairs(tmp_path):
    picks = Picks("f", [10.0, 110.0, 210.0, 300.0, 700.0, 700.0], [10.0, 10.0, 60.0, 90.0, 100.0, 400.0],
                  tube_id=[1, 1, 1, 1, 2, 2])
    path = write_picks(picks, tmp_path / "f.box", diameter=40)
    tags = [ln.split("\t")[4] for ln in path.read_text().splitlines()]
    assert tags == ["-1", "-2"] * 4  # three pieces of tube 1, one of tube 2
    [back] = read_picks(path)
    np.testing.assert_array_equal(back.tube_id, picks.tube_id)
    np.testing.assert_allclose(back.x, picks.x)
    np.testing.assert_allclose(back.y, picks.y)


def test_malformed_helix_pairs_are_a_coordinate_error(tmp_path):
    path = tmp_path / "bad.box"
    path.write_text("1\t2\t64\t64\t-1\n3\t4\t64\t64\t-1\n")
    with pytest.raises(CoordinateError, match="start"):
        read_picks(path)


def test_text_in_a_box_file_is_a_coordinate_error(tmp_path):
    path = tmp_path / "bad.box"
    path.write_text("1\t2\t64\t64\nhello world\n")
    with pytest.raises(CoordinateError, match="line 2"):
        read_picks(path)
