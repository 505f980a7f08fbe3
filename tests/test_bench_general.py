"""benchmarks/bench_general.py: the threshold sweep (AP, best F1 and its threshold, AR there) on
hand-made picks, and the DoG baseline on a simulated micrograph with known truth."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_general as bg  # noqa: E402
from epick.runtime.picks import Picks  # noqa: E402


def test_sweep_finds_the_best_f1_threshold_pooled_over_micrographs():
    truth = [Picks("a.mrc", [100, 300, 500], [100, 100, 100]), Picks("b.mrc", [100, 300], [400, 400])]
    # a: two hits (0.9, 0.6) and a far miss (0.8); b: one hit (0.7) and a miss (0.2)
    picks = [Picks("a.mrc", [102, 900, 299], [99, 900, 101], [0.9, 0.8, 0.6]),
             Picks("b.mrc", [101, 700], [402, 700], [0.7, 0.2])]
    r = bg.pr_sweep(picks, truth, diameter=60.0)
    # thresholds: 0.9 -> tp1 fp0 fn4 F1 2/6; 0.8 -> 1,1,4 -> 2/7; 0.7 -> 2,1,3 -> 4/8; 0.6 -> 3,1,2 -> 6/9
    assert r["best_f1"] == pytest.approx(6 / 9)
    assert r["best_threshold"] == pytest.approx(0.6)
    assert r["precision_at_best"] == pytest.approx(0.75) and r["recall_at_best"] == pytest.approx(0.6)
    assert r["ar"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert r["micrographs"][1]["ap"] == pytest.approx(0.5)
    assert bg.f1_at(picks, truth, 60.0, 0.7) == pytest.approx(4 / 8)


def test_dog_baseline_finds_simulated_particles_in_original_pixels():
    from epick.simulator import simulate_micrograph

    sim = simulate_micrograph((512, 512), "apoferritin", pixel_size=3.0, seed=3, snr=2.0, clean=True,
                              density=0.15)
    d = sim.truth.diameter
    picks = bg.dog_picks(sim.image, d, "sim")
    r = bg.pr_sweep([picks], [sim.truth], d)
    assert len(sim.truth) > 10
    assert r["ap"] > 0.8, r
    assert bg.pr_sweep([bg.dog_picks(-sim.image, d, "sim")], [sim.truth], d)["ap"] < 0.3  # polarity matters


def test_topaz_bench_says_what_to_do_without_topaz(tmp_path, capsys, monkeypatch):
    import bench_topaz

    monkeypatch.delenv("EPICK_TOPAZ", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no topaz on PATH
    assert bench_topaz.main(["--topaz", str(tmp_path / "nope"), "--work", str(tmp_path)]) == 0
    assert "Topaz not found" in capsys.readouterr().out


def test_topaz_stage_times_are_per_micrograph_and_kept_for_reruns(tmp_path):
    import bench_topaz

    times = bench_topaz.StageTimes(tmp_path / "times.json")
    assert times.run("segment s8", ["a", "b"], lambda todo: (10.0, 4.0)) == (5.0, 2.0)
    again = bench_topaz.StageTimes(tmp_path / "times.json")
    assert again.run("segment s8", [], None) == (5.0, 2.0)  # nothing to do: the recorded cost
    assert again.run("extract s8", [], None) is None
