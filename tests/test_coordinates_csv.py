"""Topaz tables and plain CSV coordinates."""
from __future__ import annotations

import numpy as np
import pytest

from epick.runtime.errors import CoordinateError
from epick.runtime.io.coordinates import detect_format, read_picks, write_picks
from epick.runtime.picks import Picks

# As `topaz extract` writes: tab-separated, logit scores (negative allowed), many micrographs.
TOPAZ_EXTRACT = ("image_name\tx_coord\ty_coord\tscore\n"
                 "14sep05c_00024sq_00003hl_00002es_c\t3539\t2819\t6.711\n"
                 "14sep05c_00024sq_00003hl_00002es_c\t1151\t3123\t-0.538\n"
                 "14sep05c_00024sq_00004hl_00002es_c\t2003\t111\t4.02\n")


def test_reads_topaz_extract_output(tmp_path):
    path = tmp_path / "predicted_particles.txt"
    path.write_text(TOPAZ_EXTRACT)
    assert detect_format(path) == "topaz"
    first, second = read_picks(path)
    assert first.micrograph == "14sep05c_00024sq_00003hl_00002es_c"
    np.testing.assert_array_equal(first.x, [3539, 1151])
    np.testing.assert_array_equal(first.y, [2819, 3123])
    np.testing.assert_array_equal(first.score, [6.711, -0.538])
    assert len(second) == 1 and second.x[0] == 2003


def test_topaz_round_trip_many_micrographs(tmp_path):
    rng = np.random.default_rng(1)
    picks = [Picks(f"/data/mics/mic_{i}.mrc", rng.uniform(0, 4000, 20), rng.uniform(0, 4000, 20),
                   score=rng.normal(size=20)) for i in range(3)]
    path = write_picks(picks, tmp_path / "picks.txt", "topaz")
    assert path.read_text().splitlines()[0] == "image_name\tx_coord\ty_coord\tscore"
    back = read_picks(path)
    assert [b.micrograph for b in back] == ["mic_0", "mic_1", "mic_2"]  # Topaz names: no folder, no extension
    for a, b in zip(picks, back):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.score, b.score)


def test_plain_csv_with_and_without_header(tmp_path):
    with_header = tmp_path / "a.csv"
    with_header.write_text("x,y,score\n10.5,20,0.9\n30,40.25,0.1\n")
    no_header = tmp_path / "b.csv"
    no_header.write_text("10.5,20\n30,40.25\n")
    [a] = read_picks(with_header)
    [b] = read_picks(no_header)
    np.testing.assert_array_equal(a.x, [10.5, 30])
    np.testing.assert_array_equal(b.y, [20, 40.25])
    np.testing.assert_array_equal(a.score, [0.9, 0.1])
    assert b.score is None


def test_header_columns_found_by_name_in_any_order(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("score,y,x\n0.5,2,1\n")
    [p] = read_picks(path)
    assert (p.x[0], p.y[0], p.score[0]) == (1.0, 2.0, 0.5)


def test_plain_csv_round_trip_keeps_radius_and_tube(tmp_path):
    picks = Picks("m", [1.0, 2.5, 3.0], [4.0, 5.0, 6.125], radius=[7.0, 8.0, 9.5], score=[0.1, 0.2, 0.3])
    [back] = read_picks(write_picks(picks, tmp_path / "m.csv"))
    np.testing.assert_array_equal(back.x, picks.x)
    np.testing.assert_array_equal(back.y, picks.y)
    np.testing.assert_array_equal(back.radius, picks.radius)
    fib = Picks("f", [1.0, 2.0], [3.0, 4.0], tube_id=[1, 1])
    [back] = read_picks(write_picks(fib, tmp_path / "f.csv"))
    np.testing.assert_array_equal(back.tube_id, [1, 1])


def test_csv_without_y_column_is_a_coordinate_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("x,score\n1,2\n")
    with pytest.raises(CoordinateError, match="no y column"):
        read_picks(path)
