"""benchmarks/recipe_realism.py: the matched-filter detectability of particles, measured on the
project's simulated micrographs (known SNR) and on pure noise (nothing to detect)."""
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import recipe_realism as rr  # noqa: E402
from tools.general_data import LOOKALIKE, simulated_samples  # noqa: E402

from epick.runtime.preprocess import PreprocessParams  # noqa: E402


def _samples(snr: float):
    recipe = replace(LOOKALIKE, size=384, snr=(snr, snr), density=(0.3, 0.3))
    return simulated_samples(2, PreprocessParams(), seed=5, recipe=recipe, progress=False)


def test_fainter_simulated_particles_are_less_detectable():
    bright = rr.summary(rr.measure_samples(_samples(0.4)))
    faint = rr.summary(rr.measure_samples(_samples(0.03)))
    assert bright["n"] == faint["n"] == 2
    # same positions and views (same seed), only the particles' SNR differs
    assert bright["median"] > faint["median"] + 0.5
    assert faint["median"] > 0.3          # still above chance: the filter is the particles' own mean


def test_random_points_on_noise_are_not_detectable():
    rng = np.random.default_rng(0)
    image = rng.normal(128, 20, (384, 384))
    points = rng.uniform(20, 364, (150, 2))
    d = rr.detectability(image, points, diameter=24.0)
    assert d["particles"] == 150 and d["background_points"] > 500
    # cross-fitted: a template made of the same crops would score them ~2 units above the background
    assert abs(d["dprime"]) < 0.4


def test_dark_disks_on_noise_are_detected_and_border_points_skipped():
    rng = np.random.default_rng(1)
    image = rng.normal(128, 20, (384, 384))
    yy, xx = np.mgrid[:384, :384]
    points = np.array([[x, y] for y in range(40, 350, 60) for x in range(40, 350, 60)], float)
    for x, y in points:
        image[np.hypot(xx - x, yy - y) <= 10] -= 15
    edge = np.vstack([points, [[3.0, 3.0], [380.0, 200.0]]])   # crops of these would leave the image
    d = rr.detectability(image, edge, diameter=20.0)
    assert d["particles"] == len(points)
    assert d["dprime"] > 3.0
    assert rr.detectability(image, edge[-3:], diameter=20.0)["dprime"] is None   # too few to split


def test_summary_ignores_micrographs_without_a_value():
    rows = [{"dprime": 1.0}, {"dprime": None}, {"dprime": 3.0}]
    assert rr.summary(rows) == {"n": 2, "median": 2.0, "min": 1.0, "max": 3.0}
    assert rr.summary([{"dprime": None}])["median"] is None


def test_unknown_recipe_is_refused_with_the_known_ones(capsys):
    with pytest.raises(SystemExit):
        rr.main(["--recipes", "nosuch"])
    assert "lookalike" in capsys.readouterr().err
