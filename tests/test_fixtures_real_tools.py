"""Files written by the real tools (tests/fixtures/README.md gives source and licence): epick reads
each, and what epick writes is read back by the tools' own readers (starfile, cryosparc-tools,
Topaz's topaz.utils.files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from epick.runtime.io.coordinates import detect_format, read_picks, write_picks
from epick.runtime.picks import Picks

FIXTURES = Path(__file__).parent / "fixtures"


def test_cryolo_cbox_is_read_as_centres():
    path = FIXTURES / "cryolo/2d_particles.cbox"
    assert detect_format(path) == "cbox"
    [picks] = read_picks(path)
    assert picks.micrograph == "2d_particles"
    np.testing.assert_allclose(picks.x, [11.6877 + 12.5, 66.56647 + 12.5, 24.34385 + 12.5])   # corner + 25/2
    np.testing.assert_allclose(picks.y, [27.959892 + 12.5, 39.127084 + 12.5, 48.911671 + 12.5])
    assert picks.diameter == 25.0
    assert picks.score is None                              # _Confidence is <NA> in this file


def test_eman_box_with_unequal_width_and_height():
    [picks] = read_picks(FIXTURES / "eman/2d_left.box")
    np.testing.assert_allclose(picks.x, [14 + 10, 26 + 10, 68 + 10])    # corner + width/2
    np.testing.assert_allclose(picks.y, [35 + 5, 57 + 5, 46 + 5])       # corner + height/2


def test_topaz_table_is_read_and_written_back_for_topaz(tmp_path):
    path = FIXTURES / "topaz/particles_EMPIAR-10025_2mics.txt"
    assert detect_format(path) == "topaz"
    picks_list = read_picks(path)
    assert [p.micrograph for p in picks_list] == ["14sep05c_c_00003gr_00014sq_00004hl_00004es_c",
                                                  "14sep05c_c_00003gr_00014sq_00005hl_00003es_c"]
    assert [len(p) for p in picks_list] == [50, 50]
    assert (picks_list[0].x[0], picks_list[0].y[0]) == (6924.0, 2481.0)
    out = write_picks(picks_list, tmp_path / "back.txt", "topaz")
    files = pytest.importorskip("topaz.utils.files", reason="Topaz (topaz-em) is not installed")
    original, back = files.read_coordinates(str(path)), files.read_coordinates(str(out))
    np.testing.assert_array_equal(back["image_name"], original["image_name"])
    np.testing.assert_array_equal(back["x_coord"], original["x_coord"])
    np.testing.assert_array_equal(back["y_coord"], original["y_coord"])


def test_topaz_reads_epick_boxes(tmp_path):
    files = pytest.importorskip("topaz.utils.files", reason="Topaz (topaz-em) is not installed")
    picks = Picks("mic", [100.3, 240.8, 512.5], [80.6, 300.2, 33.3])
    path = write_picks(picks, tmp_path / "mic.box", diameter=64.4)
    boxes = files.read_box(str(path))          # Topaz's own .box reader: integers only
    assert boxes.shape == (3, 4) and np.all(boxes[:, 2:] == 64)
    np.testing.assert_allclose(boxes[:, 0] + 32, picks.x, atol=0.5)
    np.testing.assert_allclose(boxes[:, 1] + 32, picks.y, atol=0.5)


def test_epick_cs_has_cryosparc_own_location_and_pick_stats_fields(tmp_path):
    real = np.load(FIXTURES / "cryosparc/4k_dataset.cs", allow_pickle=False)
    assert read_picks(FIXTURES / "cryosparc/4k_dataset.cs") == []   # 0 particles, read without error
    path = write_picks([Picks("J2/motioncorrected/a.mrc", [10.0], [20.0], score=[0.7], shape=(4096, 4096),
                              pixel_size=0.83)], tmp_path / "particles.cs", "cs")
    ours = np.load(path, allow_pickle=False)
    wanted = [n for n in real.dtype.names if n.startswith(("location/", "pick_stats/")) or n == "uid"]
    assert wanted and set(wanted) <= set(ours.dtype.names)
    for name in wanted:
        if name == "location/micrograph_path":
            assert ours.dtype[name].kind == real.dtype[name].kind == "S"   # fixed-length bytes, no pickle
        else:
            assert (ours.dtype[name].base, ours.dtype[name].shape) == (real.dtype[name].base, real.dtype[name].shape), name
    from cryosparc.dataset import Dataset

    back = Dataset.load(path)
    assert back["location/micrograph_path"][0] in ("J2/motioncorrected/a.mrc", b"J2/motioncorrected/a.mrc")
    np.testing.assert_allclose(back["location/center_x_frac"], [10.0 / 4096])
