"""RELION STAR coordinates: autopick files, particles.star, autopick.star index, helical, vesicles."""
from __future__ import annotations

import numpy as np
import pytest

from epick.runtime.errors import CoordinateError
from epick.runtime.io.coordinates import read_picks, write_autopick_index, write_picks
from epick.runtime.io.star import fiber_geometry
from epick.runtime.picks import Picks

# As relion_autopick (RELION 3.1/4) writes NAME_autopick.star: version comment, empty data_ name,
# labels with trailing space, %12.6f coordinates, class 0, FOM, psi -999.
RELION_AUTOPICK = """
# version 30001

data_

loop_ 
_rlnCoordinateX #1 
_rlnCoordinateY #2 
_rlnClassNumber #3 
_rlnAutopickFigureOfMerit #4 
_rlnAnglePsi #5 
 1270.000000   181.000000            0     1.523036   -999.00000 
 2416.000000   187.000000            0     0.829577   -999.00000 
  613.500000  3790.250000            0     2.100000   -999.00000 
"""

# RELION 3.1+ particles.star: optics block, then particles with micrograph names.
RELION_PARTICLES = """
# version 30001

data_optics

loop_ 
_rlnOpticsGroupName #1 
_rlnOpticsGroup #2 
_rlnMicrographOriginalPixelSize #3 
_rlnVoltage #4 
_rlnSphericalAberration #5 
_rlnAmplitudeContrast #6 
_rlnMicrographPixelSize #7 
opticsGroup1            1     0.885000   300.000000     2.700000     0.100000     1.770000 
 

# version 30001

data_particles

loop_ 
_rlnCoordinateX #1 
_rlnCoordinateY #2 
_rlnAutopickFigureOfMerit #3 
_rlnClassNumber #4 
_rlnAnglePsi #5 
_rlnMicrographName #6 
_rlnOpticsGroup #7 
 1270.000000   181.000000     1.523036            0   -999.00000 MotionCorr/job002/Movies/mic_001.mrc            1 
  100.000000   200.000000     0.500000            0   -999.00000 MotionCorr/job002/Movies/mic_002.mrc            1 
 2416.000000   187.000000     0.829577            0   -999.00000 MotionCorr/job002/Movies/mic_001.mrc            1 
"""

# Helical segments as relion_autopick writes them (coordinates, FOM, tube ID and priors).
RELION_HELICAL = """
# version 30001

data_

loop_ 
_rlnCoordinateX #1 
_rlnCoordinateY #2 
_rlnAutopickFigureOfMerit #3 
_rlnHelicalTubeID #4 
_rlnAngleTiltPrior #5 
_rlnAnglePsiPrior #6 
_rlnHelicalTrackLengthAngst #7 
_rlnAnglePsiFlipRatio #8 
  100.000000   100.000000     1.000000            1    90.000000    -0.000000     0.000000     0.500000 
  150.000000   100.000000     1.000000            1    90.000000    -0.000000    50.000000     0.500000 
  500.000000   500.000000     0.700000            2    90.000000   -90.000000     0.000000     0.500000 
  500.000000   560.000000     0.700000            2    90.000000   -90.000000    60.000000     0.500000 
"""


def _random_picks(n: int = 50, seed: int = 0, **kwargs) -> Picks:
    rng = np.random.default_rng(seed)
    return Picks("mic_007", rng.uniform(0, 4096, n), rng.uniform(0, 3000, n),
                 score=rng.uniform(0, 1, n), **kwargs)


def test_reads_relion_autopick_file(tmp_path):
    path = tmp_path / "mic_001_autopick.star"
    path.write_text(RELION_AUTOPICK)
    [picks] = read_picks(path)
    assert picks.micrograph == "mic_001"
    np.testing.assert_array_equal(picks.x, [1270.0, 2416.0, 613.5])
    np.testing.assert_array_equal(picks.y, [181.0, 187.0, 3790.25])
    np.testing.assert_allclose(picks.score, [1.523036, 0.829577, 2.1])
    assert picks.radius is None and picks.tube_id is None


def test_written_file_has_relion_autopick_columns(tmp_path):
    path = write_picks(_random_picks(5), tmp_path / "mic_007_autopick.star")
    text = path.read_text()
    labels = [ln.split()[0] for ln in text.splitlines() if ln.startswith("_rln")]
    assert labels == ["_rlnCoordinateX", "_rlnCoordinateY", "_rlnClassNumber",
                      "_rlnAutopickFigureOfMerit", "_rlnAnglePsi"]
    rows = [ln.split() for ln in text.splitlines() if ln.strip() and ln.strip()[0].isdigit()]
    assert len(rows) == 5
    assert all(r[2] == "0" and float(r[4]) == -999.0 for r in rows)
    assert "data_" in text.splitlines()


def test_round_trip_particles(tmp_path):
    picks = _random_picks(200, diameter=150.0)
    [back] = read_picks(write_picks(picks, tmp_path / "mic_007_autopick.star"))
    np.testing.assert_allclose(back.x, picks.x, atol=1e-6)
    np.testing.assert_allclose(back.y, picks.y, atol=1e-6)
    np.testing.assert_allclose(back.score, picks.score, atol=1e-6)
    assert back.diameter == 150.0
    assert back.micrograph == "mic_007"


def test_round_trip_vesicle_radius(tmp_path):
    picks = _random_picks(30, radius=np.linspace(20, 80, 30))
    path = write_picks(picks, tmp_path / "v.star")
    assert "_rlnEpickRadius" in path.read_text()
    [back] = read_picks(path)
    np.testing.assert_allclose(back.radius, picks.radius, atol=1e-6)


def test_empty_micrograph_round_trips(tmp_path):
    [back] = read_picks(write_picks(Picks.empty("nothing"), tmp_path / "nothing_autopick.star"))
    assert len(back) == 0 and back.micrograph == "nothing"


def test_reads_shared_betagal_file_with_diameter_comment(betagal_dir):
    path = sorted(betagal_dir.glob("*.star"))[0]
    [picks] = read_picks(path)
    assert picks.diameter == 108.0
    assert len(picks) > 100
    assert picks.micrograph == path.stem
    first = [ln.split() for ln in path.read_text().splitlines() if ln[:1].isdigit()][0]
    assert (picks.x[0], picks.y[0]) == (float(first[0]), float(first[1]))


def test_reads_particles_star_grouped_by_micrograph(tmp_path):
    path = tmp_path / "particles.star"
    path.write_text(RELION_PARTICLES)
    picks_list = read_picks(path)
    assert [p.micrograph for p in picks_list] == ["MotionCorr/job002/Movies/mic_001.mrc",
                                                   "MotionCorr/job002/Movies/mic_002.mrc"]
    first, second = picks_list
    np.testing.assert_array_equal(first.x, [1270.0, 2416.0])
    np.testing.assert_array_equal(second.y, [200.0])
    assert first.pixel_size == pytest.approx(1.77)
    assert first.key == "mic_001"


def test_reads_helical_segments(tmp_path):
    path = tmp_path / "fil_autopick.star"
    path.write_text(RELION_HELICAL)
    [picks] = read_picks(path)
    np.testing.assert_array_equal(picks.tube_id, [1, 1, 2, 2])
    np.testing.assert_array_equal(picks.x, [100, 150, 500, 500])


def test_helical_write_has_relion_prior_columns_and_round_trips(tmp_path):
    x = [100.0, 150.0, 200.0, 500.0, 500.0]
    y = [100.0, 100.0, 150.0, 500.0, 560.0]
    picks = Picks("fil", x, y, tube_id=[1, 1, 1, 2, 2], pixel_size=2.0)
    path = write_picks(picks, tmp_path / "fil.star")
    text = path.read_text()
    for label in ("_rlnHelicalTubeID", "_rlnAngleTiltPrior", "_rlnAnglePsiPrior",
                  "_rlnHelicalTrackLengthAngst", "_rlnAnglePsiFlipRatio"):
        assert label in text
    import starfile

    df = starfile.read(path)
    np.testing.assert_allclose(df["rlnAngleTiltPrior"], 90.0)
    # psi prior is minus the in-plane direction (RELION helix.cpp): first segment along +x, the
    # second at 45 degrees (y down), tube 2 along +y
    np.testing.assert_allclose(df["rlnAnglePsiPrior"], [-0.0, -45.0, -45.0, -90.0, -90.0], atol=1e-6)
    np.testing.assert_allclose(df["rlnHelicalTrackLengthAngst"],
                               [0.0, 100.0, 100.0 + 2 * np.hypot(50, 50), 0.0, 120.0], atol=1e-5)
    [back] = read_picks(path)
    np.testing.assert_array_equal(back.tube_id, picks.tube_id)
    np.testing.assert_allclose(back.x, x)
    np.testing.assert_allclose(back.y, y)


def test_helical_track_length_is_left_out_without_a_pixel_size(tmp_path):
    # rlnHelicalTrackLengthAngst holds Angstrom: with no pixel size there is nothing honest to write
    picks = Picks("fil", [100.0, 150.0, 200.0], [100.0, 100.0, 150.0], tube_id=[1, 1, 1])
    path = write_picks(picks, tmp_path / "fil.star")
    import starfile

    df = starfile.read(path)
    assert "rlnHelicalTrackLengthAngst" not in df.columns
    assert list(df.columns) == ["rlnCoordinateX", "rlnCoordinateY", "rlnAutopickFigureOfMerit", "rlnHelicalTubeID",
                                "rlnAngleTiltPrior", "rlnAnglePsiPrior", "rlnAnglePsiFlipRatio"]
    np.testing.assert_allclose(df["rlnAnglePsiFlipRatio"], 0.5)
    [back] = read_picks(path)
    np.testing.assert_array_equal(back.tube_id, [1, 1, 1])


def test_fiber_geometry_direction_and_length():
    picks = Picks("f", [0.0, 3.0, 3.0], [0.0, 4.0, 10.0], tube_id=[1, 1, 1])
    psi, track = fiber_geometry(picks)
    np.testing.assert_allclose(track, [0.0, 5.0, 11.0])
    np.testing.assert_allclose(psi, [np.degrees(np.arctan2(4, 3)), 90.0, 90.0])


def test_autopick_index_reads_listed_files_relative_to_project(tmp_path, monkeypatch):
    project = tmp_path / "project"
    job = project / "AutoPick" / "job006"
    (job / "Movies").mkdir(parents=True)
    (job / "Movies" / "mic_001_autopick.star").write_text(RELION_AUTOPICK)
    write_picks(_random_picks(4), job / "Movies" / "mic_002_autopick.star")
    index = write_autopick_index(job, [("MotionCorr/job002/Movies/mic_001.mrc",
                                        "AutoPick/job006/Movies/mic_001_autopick.star"),
                                       ("MotionCorr/job002/Movies/mic_002.mrc",
                                        "AutoPick/job006/Movies/mic_002_autopick.star")])
    assert index == job / "autopick.star"
    assert "_rlnMicrographCoordinates" in index.read_text()
    monkeypatch.chdir(tmp_path)  # not the project dir: paths resolve via the index's parents
    picks_list = read_picks(index)
    assert [p.micrograph for p in picks_list] == ["MotionCorr/job002/Movies/mic_001.mrc",
                                                   "MotionCorr/job002/Movies/mic_002.mrc"]
    assert [len(p) for p in picks_list] == [3, 4]


def test_index_naming_a_missing_file_is_a_coordinate_error(tmp_path):
    index = write_autopick_index(tmp_path, [("a.mrc", "nowhere/a_autopick.star")])
    with pytest.raises(CoordinateError, match="nowhere/a_autopick.star"):
        read_picks(index)


def test_star_without_coordinates_is_a_coordinate_error(tmp_path):
    path = tmp_path / "ctf.star"
    path.write_text("data_\n\nloop_\n_rlnMicrographName #1\n_rlnDefocusU #2\na.mrc 10000\n")
    with pytest.raises(CoordinateError, match="ctf.star"):
        read_picks(path)
