"""benchmarks/figure_false_positives.py: crops are centred on the picks (edges padded) and the sheet is written."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import figure_false_positives as ffp  # noqa: E402


class HalfScale:
    """Original pixels -> network pixels at half scale (centre-of-pixel convention)."""

    scale_x = 0.5

    @staticmethod
    def to_network(x, y):
        return (x + 0.5) * 0.5 - 0.5, (y + 0.5) * 0.5 - 0.5


def test_crops_are_centred_on_the_picks_and_padded_at_the_edge():
    image = np.zeros((40, 60), np.uint8)
    image[10, 30] = 255                                  # network pixel (x 30, y 10) = original (61, 21)
    [inside, corner] = ffp.crops(image, HalfScale(), np.array([61.0, 1.0]), np.array([21.0, 1.0]), half=4)
    assert inside.shape == corner.shape == (8, 8)
    assert inside[4, 4] == 255 and inside.sum() == 255
    assert corner.sum() == 0


def test_sheet_is_written_with_every_block(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(1)
    tile = lambda: rng.integers(0, 255, (12, 12), dtype=np.uint8)  # noqa: E731
    found = {"fp": [(s, tile()) for s in (0.9, 0.4, 0.7)], "tp": [(0.8, tile()) for _ in range(25)], "fn": []}
    out = ffp.draw(found, 20, 0.3, Path("model.onnx"), tmp_path / "sheet.png", "3 micrographs")
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))


def test_collect_splits_the_picks_of_a_real_micrograph(shared_data):
    micrograph = sorted((Path(shared_data) / "empiar10947").glob("*.png"))[0]
    found, threshold = ffp.collect([micrograph], ffp.DEFAULT_MODEL, threads=1)
    assert 0.0 < threshold < 1.0
    assert found["tp"] and found["fp"]
    assert all(score >= threshold for score, _ in found["tp"] + found["fp"])
    half = round(0.75 * 60)                                   # 60-px labels, 1024-px micrograph: network scale 1
    assert {crop.shape for _, crop in found["tp"] + found["fp"] + found["fn"]} == {(2 * half, 2 * half)}


def test_centre_contrast_is_positive_for_dark_centres_and_near_zero_for_noise():
    rng = np.random.default_rng(2)
    noise = [rng.normal(128, 20, (45, 45)) for _ in range(200)]
    yy, xx = np.mgrid[:45, :45]
    disk = np.hypot(xx - 22, yy - 22) <= 4.5               # 0.15 of the 30-px diameter of a 45-px crop
    dark = [n - 40 * disk for n in noise]
    bright = [n + 40 * disk for n in noise]
    assert abs(ffp.centre_contrast(noise)) < 0.05
    assert ffp.centre_contrast(dark) > 1.0
    assert ffp.centre_contrast(bright) < -1.0
    assert ffp.centre_contrast([]) is None


def test_held_out_micrographs_are_the_sets_last_files(shared_data):
    paths = ffp.held_out_micrographs("empiar10947")
    assert len(paths) == 3 and all(p.suffix == ".png" and p.with_suffix(".star").is_file() for p in paths)
    every = sorted(p.stem for p in (Path(shared_data) / "empiar10947").glob("*.png"))
    assert [p.stem for p in paths] == every[-3:]
