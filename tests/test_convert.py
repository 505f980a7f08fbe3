"""`epick convert`: bulk conversion, errors that name the fix, and the real-data round trip."""
from __future__ import annotations

import numpy as np
import pytest

from epick.runtime.cli import main
from epick.runtime.io.coordinates import read_picks, write_picks
from epick.runtime.picks import Picks


def _centres(folder, suffix):
    out = {}
    for path in sorted(folder.glob(f"*{suffix}")):
        for p in read_picks(path):
            out[p.key] = (p.x, p.y)
    return out


def test_betagal_star_to_box_to_star_keeps_every_centre(betagal_dir, tmp_path):
    boxes, stars = tmp_path / "box", tmp_path / "star"
    assert main(["convert", str(betagal_dir), "--to", "box", "--out", str(boxes)]) == 0
    assert main(["convert", str(boxes), "--to", "star", "--out", str(stars)]) == 0
    original = _centres(betagal_dir, ".star")
    back = _centres(stars, ".star")
    assert len(original) == 14 and back.keys() == original.keys()
    for key, (x, y) in original.items():   # .box corners are whole pixels: at most 0.5 px off
        np.testing.assert_allclose(back[key][0], x, atol=0.5)
        np.testing.assert_allclose(back[key][1], y, atol=0.5)
    # the box files hold integer corners: centre - 108/2 (diameter from the '# diameter_px 108.0' comment)
    first = sorted(boxes.glob("*.box"))[0]
    x0, y0, w, h = (int(v) for v in first.read_text().splitlines()[0].split("\t"))
    key = first.stem
    assert (w, h) == (108, 108)
    assert abs(x0 + 54 - original[key][0][0]) <= 0.5 and abs(y0 + 54 - original[key][1][0]) <= 0.5
    # the diameter travels through the box size back into the STAR comment
    assert read_picks(sorted(stars.glob("*.star"))[0])[0].diameter == 108.0


def test_box_output_without_a_size_names_the_fix(tmp_path, capsys):
    src = tmp_path / "in"
    write_picks(Picks("m", [10.0], [20.0]), src / "m.csv")
    code = main(["convert", str(src), "--to", "box", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--diameter" in capsys.readouterr().err
    assert main(["convert", str(src), "--to", "box", "--out", str(tmp_path / "out"), "--diameter", "64"]) == 0
    assert (tmp_path / "out" / "m.box").read_text() == "-22\t-12\t64\t64\n"


def test_cs_output_without_sizes_names_the_fix(tmp_path, capsys):
    src = tmp_path / "in"
    write_picks(Picks("m", [10.0], [20.0]), src / "m.star")
    assert main(["convert", str(src), "--to", "cs", "--out", str(tmp_path / "out")]) == 2
    assert "--micrographs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cs_output_reads_sizes_from_micrographs(tmp_path):
    pytest.importorskip("epick.runtime.io.micrograph")
    from PIL import Image

    mics = tmp_path / "mics"
    mics.mkdir()
    Image.fromarray(np.zeros((30, 50), dtype=np.uint8)).save(mics / "m.png")
    src = tmp_path / "in"
    write_picks(Picks("m", [10.0, 25.0], [15.0, 3.0]), src / "m_autopick.star")
    out = tmp_path / "out"
    assert main(["convert", str(src), "--to", "cs", "--out", str(out), "--micrographs", str(mics)]) == 0
    [p] = read_picks(out / "particles.cs")
    assert p.shape == (30, 50)
    assert p.micrograph.endswith("m.png")
    np.testing.assert_allclose(p.x, [10.0, 25.0], atol=1e-4)
    np.testing.assert_allclose(p.y, [15.0, 3.0], atol=1e-4)


def test_topaz_output_is_one_file_for_all_micrographs(tmp_path):
    src = tmp_path / "in"
    for name in ("a", "b", "c"):
        write_picks(Picks(name, [1.0, 2.0], [3.0, 4.0]), src / f"{name}.star")
    out = tmp_path / "out"
    assert main(["convert", str(src), "--to", "topaz", "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["picks_topaz.txt"]
    assert [p.micrograph for p in read_picks(out / "picks_topaz.txt")] == ["a", "b", "c"]


def test_two_inputs_for_one_micrograph_are_refused(tmp_path, capsys):
    src = tmp_path / "in"
    write_picks(Picks("a", [1.0], [2.0]), src / "a.star")
    write_picks(Picks("a", [1.0], [2.0]), src / "a_autopick.csv")
    # named one by one (a folder reads one format per micrograph: find_coordinate_files)
    assert main(["convert", str(src / "a.star"), str(src / "a_autopick.csv"), "--to", "star",
                 "--out", str(tmp_path / "out")]) == 2
    assert "same output name" in capsys.readouterr().err
