"""EPicker .thi files, written exactly as thuem/EPicker writes them."""
from __future__ import annotations

import numpy as np
import pytest

from epick.runtime.errors import CoordinateError
from epick.runtime.io.coordinates import detect_format, read_picks

EPICKER_PARTICLES = "[Particle Coordinates: X Y Value]\n1270\t181\t0.912345\n2416\t187\t0.500000\n[End]\n"
EPICKER_VESICLES = "[Vesicle Coordinates: X Y Radius Value]\n800\t900\t120\t0.880000\n[End]\n"
EPICKER_HELIX = ("[Helix Coordinates: X Y Group Value]\n"
                 "100 100 1 1.0\n200 110 1 1.0\n300 125 1 1.0\n900 50 2 1.0\n950 400 2 1.0\n[End]")


def test_reads_particle_thi(tmp_path):
    path = tmp_path / "mic_001.thi"
    path.write_text(EPICKER_PARTICLES)
    assert detect_format(path) == "thi"
    [picks] = read_picks(path)
    assert picks.micrograph == "mic_001"
    np.testing.assert_array_equal(picks.x, [1270, 2416])
    np.testing.assert_array_equal(picks.y, [181, 187])
    np.testing.assert_allclose(picks.score, [0.912345, 0.5])


def test_reads_vesicle_thi(tmp_path):
    path = tmp_path / "ves.thi"
    path.write_text(EPICKER_VESICLES)
    [picks] = read_picks(path)
    assert (picks.x[0], picks.y[0], picks.radius[0], picks.score[0]) == (800, 900, 120, 0.88)


def test_reads_helix_thi(tmp_path):
    path = tmp_path / "fib.thi"
    path.write_text(EPICKER_HELIX)
    [picks] = read_picks(path)
    np.testing.assert_array_equal(picks.tube_id, [1, 1, 1, 2, 2])
    np.testing.assert_array_equal(picks.x, [100, 200, 300, 900, 950])


def test_reads_merge_results_index(tmp_path):
    (tmp_path / "a.thi").write_text(EPICKER_PARTICLES)
    (tmp_path / "b.thi").write_text(EPICKER_VESICLES)
    index = tmp_path / "merge_results.thi"
    index.write_text("[Micrograph Particle coordinate:\n #0:MICROGRAPH_PATH    STRING\n #1:PARTICLE_PATH    STRING]\n"
                     "/data/mics/a.mrc /old/place/a.thi\n/data/mics/b.mrc b.thi\n")
    a, b = read_picks(index)
    assert (a.micrograph, len(a)) == ("/data/mics/a.mrc", 2)
    assert (b.micrograph, len(b)) == ("/data/mics/b.mrc", 1)
    assert b.radius is not None


def test_unknown_header_is_a_coordinate_error(tmp_path):
    path = tmp_path / "x.thi"
    path.write_text("[Something Else: A B]\n1 2\n[End]\n")
    with pytest.raises(CoordinateError, match="unknown header"):
        read_picks(path)
