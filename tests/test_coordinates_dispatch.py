"""read_picks / write_picks dispatch: format detection by content and suffix, shape/diameter fill-in."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from epick.runtime.errors import CoordinateError
from epick.runtime.io.coordinates import (detect_format, find_coordinate_files, read_picks,
                                          write_picks)
from epick.runtime.picks import Picks


def test_content_beats_a_misleading_suffix(tmp_path):
    star_as_txt = tmp_path / "picks.txt"
    star_as_txt.write_text("data_\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n5 6\n")
    assert detect_format(star_as_txt) == "star"
    plain = tmp_path / "plain.txt"
    plain.write_text("5 6\n7 8\n")
    assert detect_format(plain) == "csv"
    [p] = read_picks(plain)
    np.testing.assert_array_equal(p.x, [5, 7])


def test_unknown_suffix_and_missing_file_are_coordinate_errors(tmp_path):
    odd = tmp_path / "picks.xyz"
    odd.write_text("1 2\n")
    with pytest.raises(CoordinateError, match="unknown coordinate format"):
        read_picks(odd)
    with pytest.raises(CoordinateError, match="does not exist"):
        read_picks(tmp_path / "gone.star")


def test_shape_and_diameter_fill_in_only_what_is_missing(tmp_path):
    path = write_picks(Picks("m", [1.0], [2.0], diameter=80.0), tmp_path / "m.star")
    [p] = read_picks(path, shape=(100, 200), diameter=50.0)
    assert p.shape == (100, 200)
    assert p.diameter == 80.0  # the file's own diameter wins


def test_per_micrograph_format_refuses_many(tmp_path):
    many = [Picks("a", [1.0], [2.0]), Picks("b", [1.0], [2.0])]
    with pytest.raises(CoordinateError, match="one micrograph"):
        write_picks(many, tmp_path / "x.star")


def test_unwritable_format_is_named(tmp_path):
    with pytest.raises(CoordinateError, match="cannot write"):
        write_picks(Picks("a", [1.0], [2.0]), tmp_path / "x.thi", "thi")


def test_folder_listing_skips_index_files(tmp_path):
    write_picks(Picks("a", [1.0], [2.0]), tmp_path / "a_autopick.star")
    (tmp_path / "autopick.star").write_text("data_\n")
    (tmp_path / "notes.md").write_text("hi")
    assert [p.name for p in find_coordinate_files([tmp_path])] == ["a_autopick.star"]


def test_importing_coordinates_does_not_import_pandas_or_torch():
    code = ("import sys, epick.runtime.io.coordinates; "
            "print('pandas' in sys.modules, 'torch' in sys.modules, 'starfile' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_group_indices_keeps_first_seen_order_and_row_order():
    from epick.runtime.io._tables import group_indices

    groups = group_indices(np.array(["b", "a", "b", "c", "a", "b"]))
    assert [g for g, _ in groups] == ["b", "a", "c"]
    assert [idx.tolist() for _, idx in groups] == [[0, 2, 5], [1, 4], [3]]
    assert group_indices(np.array([], dtype=str)) == []


def test_a_folder_with_several_formats_per_micrograph_reads_each_micrograph_once(tmp_path):
    # what `epick pick --format star,box,cs,csv` writes: eval/convert/train of that folder read STAR only
    picks = Picks("mic_a.jpg", [10.0, 30.0], [20.0, 40.0], score=[0.9, 0.5], shape=(64, 64), diameter=8.0)
    for fmt in ("box", "csv", "cs", "star"):
        write_picks(picks, tmp_path / f"mic_a{'_autopick' if fmt == 'star' else ''}.{fmt}", fmt)
    write_picks(Picks("mic_b", [5.0], [6.0], diameter=8.0), tmp_path / "mic_b.box", "box")
    assert [p.name for p in find_coordinate_files([tmp_path])] == ["mic_a_autopick.star", "mic_b.box"]
    # files named one by one are all read
    assert len(find_coordinate_files(sorted(tmp_path.iterdir()))) == 5
