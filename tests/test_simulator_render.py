"""Simulator realism for the general model: 8-bit renderings like public JPEG/PNG data, and the
general suite's per-micrograph imaging (pixel size, binning, rendering) with the diameter in the truth."""
from __future__ import annotations

import json

import numpy as np
import pytest

from epick.runtime.io.coordinates import read_picks
from epick.runtime.io.micrograph import read_micrograph
from epick.simulator import simulate_micrograph
from epick.simulator.render import render
from epick.simulator.suites import GENERAL_DETECTOR_PIXEL_A, draw_general, write_suite


@pytest.fixture(scope="module")
def sim():
    return simulate_micrograph((256, 256), "apoferritin", pixel_size=3.0, seed=5)


def _high_frequency_fraction(img: np.ndarray) -> float:
    p = np.abs(np.fft.rfft2(img.astype(np.float64) - img.mean())) ** 2
    fy = np.fft.fftfreq(img.shape[0])[:, None]
    fx = np.fft.rfftfreq(img.shape[1])[None, :]
    return float(p[np.hypot(fx, fy) > 0.25].sum() / p.sum())


def test_stretched_rendering_uses_few_grey_levels_like_empiar10947(sim):
    out = render(sim.image, "stretched", np.random.default_rng(0), 3.0)
    assert out.dtype == np.uint8 and out.shape == sim.image.shape
    lo, hi = np.percentile(out, [1, 99])
    assert 12 <= len(np.unique(out)) <= 40 and 5 <= hi - lo <= 20


def test_denoised_rendering_removes_pixel_noise_and_spans_a_jpeg_grey_range(sim):
    out = render(sim.image, "denoised", np.random.default_rng(0), 3.0)
    assert out.dtype == np.uint8
    lo, hi = np.percentile(out, [1, 99])
    assert 80 <= hi - lo <= 160
    assert _high_frequency_fraction(out) < 0.02 < _high_frequency_fraction(sim.image)
    assert render(sim.image, "float", np.random.default_rng(0), 3.0) is sim.image
    with pytest.raises(ValueError, match="stretched"):
        render(sim.image, "jpeg", np.random.default_rng(0), 3.0)


def test_general_draws_cover_pixel_sizes_binning_and_every_rendering():
    rng = np.random.default_rng(1)
    draws = [draw_general(rng, d, (1024, 1024)) for d in np.linspace(80.0, 420.0, 120)]
    d_px = [d_a / k["pixel_size"] for d_a, k in zip(np.linspace(80.0, 420.0, 120), draws)]
    assert all(GENERAL_DETECTOR_PIXEL_A[0] <= k["detector_pixel_a"] <= GENERAL_DETECTOR_PIXEL_A[1] for k in draws)
    assert max(d_px) <= 160.01 and min(d_px) >= 16
    assert {k["binning"] for k in draws} >= {1, 2, 4}
    assert {k["render"] for k in draws} == {"float", "denoised", "stretched"}
    assert min(k["density"] for k in draws) < 0.06 and max(k["density"] for k in draws) > 0.4


def test_general_suite_writes_renderings_with_the_diameter_in_each_truth(tmp_path):
    write_suite("general", tmp_path, shape=(256, 256), n_train=3, n_test=0, only=["general_small"])
    man = json.loads((tmp_path / "general_small" / "manifest.json").read_text())
    assert man["varied"] is True
    suffixes = set()
    for row in man["micrographs"]:
        path = tmp_path / "general_small" / row["micrograph"]
        suffixes.add(path.suffix)
        assert row["params"]["render"] in ("float", "denoised", "stretched")
        assert read_micrograph(path).data.shape == (256, 256)
        [truth] = read_picks(tmp_path / "general_small" / row["coordinates"])
        assert truth.diameter == pytest.approx(row["params"]["diameter_px"], rel=1e-4)
        assert truth.diameter == pytest.approx(row["params"]["diameter_a"] / row["params"]["pixel_size_a"], rel=1e-3)
    assert len(suffixes) >= 2


def test_cli_writes_a_rendering(tmp_path):
    from epick.runtime.cli import main

    assert main(["simulate", "micrographs", str(tmp_path), "--n", "1", "--size", "128", "--type", "small",
                 "--render", "denoised"]) == 0
    [jpg] = tmp_path.glob("*.jpg")
    assert read_micrograph(jpg).data.shape == (128, 128) and (tmp_path / f"{jpg.stem}.star").is_file()


def test_nanodisc_and_antibody_shapes():
    from epick.simulator import get_particle_type, list_particle_types, particle_diameter_a
    from epick.simulator.projection import project_cloud

    assert {"nanodisc", "antibody"} <= set(list_particle_types(include_atomic=False))
    assert 130 < particle_diameter_a("nanodisc") < 180 and 150 < particle_diameter_a("antibody") < 200
    disc = get_particle_type("nanodisc")
    top = project_cloud(*disc.cloud, np.eye(3), 4.0, 51, disc.blob_sigma_a)  # looking down the membrane normal
    c = 25
    # the protein in the middle projects thicker than the lipid around it (lipid density 0.45)
    assert top[c, c] > 1.5 * top[c, c + 11]  # 44 A out: lipid only
    from epick.simulator.shapes import rotation_matrix

    fab = get_particle_type("antibody")
    front = project_cloud(*fab.cloud, rotation_matrix("x", -90), 4.0, 61, fab.blob_sigma_a)  # rows = the Y's axis
    arms, stem, gap = min(front[38, 20], front[38, 40]), front[20, 30], front[40, 30]
    assert gap < 0.05 * min(arms, stem)  # a Y: two arms and a stem, nothing between the arms
