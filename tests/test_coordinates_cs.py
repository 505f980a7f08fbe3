"""cryoSPARC .cs: fractions <-> pixels, grouping by micrograph, no pickle."""
from __future__ import annotations

import numpy as np
import pytest

from epick.runtime.errors import CoordinateError
from epick.runtime.io.coordinates import detect_format, read_picks, write_picks
from epick.runtime.picks import Picks


def _cryosparc_like_array() -> np.ndarray:
    """A particles.cs array laid out as cryoSPARC saves one (extra slots, bytes paths, f4 fractions)."""
    dtype = [("uid", "<u8"), ("blob/path", "S40"), ("blob/idx", "<u4"),
             ("location/micrograph_uid", "<u8"), ("location/exp_group_id", "<u4"),
             ("location/micrograph_path", "S60"), ("location/micrograph_shape", "<u4", (2,)),
             ("location/center_x_frac", "<f4"), ("location/center_y_frac", "<f4"),
             ("pick_stats/ncc_score", "<f4")]
    data = np.zeros(3, dtype=dtype)
    data["uid"] = [11, 12, 13]
    data["location/micrograph_path"] = [b"J2/motioncorrected/mic_A_patch_aligned_doseweighted.mrc",
                                        b"J2/motioncorrected/mic_B_patch_aligned_doseweighted.mrc",
                                        b"J2/motioncorrected/mic_A_patch_aligned_doseweighted.mrc"]
    data["location/micrograph_shape"] = [(5760, 4092), (5760, 4092), (5760, 4092)]  # [ny, nx]
    data["location/center_x_frac"] = [0.25, 0.5, 0.75]
    data["location/center_y_frac"] = [0.5, 0.125, 0.0625]
    data["pick_stats/ncc_score"] = [0.3, 0.4, 0.5]
    return data


def test_reads_cryosparc_particles(tmp_path):
    path = tmp_path / "P1_J5_picked_particles.cs"
    with open(path, "wb") as handle:
        np.save(handle, _cryosparc_like_array())
    assert detect_format(path) == "cs"
    a, b = read_picks(path)
    assert a.micrograph.endswith("mic_A_patch_aligned_doseweighted.mrc")
    assert a.shape == (5760, 4092) and b.shape == (5760, 4092)
    np.testing.assert_allclose(a.x, [0.25 * 4092, 0.75 * 4092])  # x fraction of the width nx
    np.testing.assert_allclose(a.y, [0.5 * 5760, 0.0625 * 5760])  # y fraction of the height ny
    np.testing.assert_allclose(b.score, [0.4], rtol=1e-6)


def test_round_trip_several_micrographs(tmp_path):
    rng = np.random.default_rng(2)
    picks = [Picks(f"mics/m{i}.mrc", rng.uniform(0, 3838, 40), rng.uniform(0, 3710, 40),
                   score=rng.uniform(size=40), shape=(3710, 3838)) for i in range(3)]
    path = write_picks(picks, tmp_path / "particles.cs")
    data = np.load(path, allow_pickle=False)
    assert data.dtype["location/micrograph_path"].kind == "S"
    assert len(np.unique(data["uid"])) == 120
    back = read_picks(path)
    assert [b.micrograph for b in back] == [p.micrograph for p in picks]
    for a, b in zip(picks, back):
        assert b.shape == (3710, 3838)
        np.testing.assert_allclose(b.x, a.x, atol=1e-3)  # float32 fractions
        np.testing.assert_allclose(b.y, a.y, atol=1e-3)


def test_writing_needs_the_shape(tmp_path):
    with pytest.raises(CoordinateError, match="--micrographs"):
        write_picks(Picks("m", [1.0], [2.0]), tmp_path / "p.cs")


def test_pickled_content_is_refused(tmp_path):
    path = tmp_path / "obj.cs"
    data = np.zeros(1, dtype=[("location/micrograph_path", "O"), ("location/center_x_frac", "<f4")])
    data["location/micrograph_path"] = ["a.mrc"]
    with open(path, "wb") as handle:
        np.save(handle, data, allow_pickle=True)
    with pytest.raises(CoordinateError, match="pickle"):
        read_picks(path)


def test_missing_location_fields_are_a_coordinate_error(tmp_path):
    path = tmp_path / "ctf.cs"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(2, dtype=[("uid", "<u8"), ("ctf/df1_A", "<f4")]))
    with pytest.raises(CoordinateError, match="location"):
        read_picks(path)
