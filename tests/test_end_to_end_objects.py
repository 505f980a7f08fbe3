"""Vesicles and fibers end to end: simulate -> train -> export ONNX -> pick -> compare with the truth.

The end-to-end runs use the CLI exactly as a user would (``epick simulate micrographs``, ``epick train``,
``epick export --onnx``, ``epick pick``) on tiny clean simulated micrographs (512 px, high SNR) and a
narrow network trained for a few epochs on the CPU. The metric helpers of ``epick.runtime.evaluate``
they rely on (``radius_errors``, ``fiber_metrics``) are tested on hand-made geometry first.
"""
from __future__ import annotations


import numpy as np
import pytest

from epick.runtime.evaluate import distance_to_polylines, fiber_metrics, radius_errors, resample_polyline
from epick.runtime.picks import Picks


# ---------------------------------------------------------------- metric helpers
def test_radius_errors_are_relative_and_only_for_matched_vesicles():
    truth = Picks("m", [100, 300], [100, 300], radius=[40, 20])
    picks = Picks("m", [103, 600], [98, 600], score=[0.9, 0.8], radius=[44, 20])
    err = radius_errors(picks, truth, radius=10)
    np.testing.assert_allclose(err, [0.1])  # |44 - 40| / 40; the far pick matches nothing


def test_distance_to_polylines_measures_to_segments_not_only_vertices():
    line = np.array([[0.0, 0.0], [100.0, 0.0]])
    d = distance_to_polylines(np.array([50.0, 120.0, 50.0]), np.array([3.0, 0.0, -4.0]), [line])
    np.testing.assert_allclose(d, [3.0, 20.0, 4.0])
    assert np.isinf(distance_to_polylines(np.array([1.0]), np.array([1.0]), [])).all()


def test_resample_polyline_keeps_ends_and_spacing():
    pts = resample_polyline(np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]), 1.0)
    assert len(pts) == 21
    np.testing.assert_allclose(pts[[0, -1]], [[0, 0], [10, 10]])
    np.testing.assert_allclose(np.hypot(*np.diff(pts, axis=0).T), 1.0)


def test_fiber_metrics_count_tubes_distance_precision_and_coverage():
    # truth: two horizontal tubes of length 100 at y = 0 and y = 50
    truth = Picks("m", [0, 100, 0, 100], [0, 0, 50, 50], tube_id=[1, 1, 2, 2])
    # picks: half of tube 1 traced 2 px off, plus one stray tube far away
    picks = Picks("m", [0, 25, 50, 300, 320], [2, 2, 2, 300, 300], tube_id=[1, 1, 1, 2, 2])
    m = fiber_metrics(picks, truth, tolerance=5)
    assert (m["n_tubes"], m["n_true_tubes"]) == (2, 2)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["coverage"] == pytest.approx(55 / 202, abs=0.01)  # x in [0, 50 + sqrt(5^2 - 2^2)] of tube 1 only
    assert m["mean_distance"] > 2.0  # the stray tube pulls the mean up
    assert fiber_metrics(Picks.empty("m"), truth, tolerance=5)["coverage"] == 0.0


# ---------------------------------------------------------------- the size head's start
def test_new_vesicle_network_starts_its_size_head_at_the_median_training_diameter(tmp_path):
    """A new size head starts at the median training diameter (network pixels, x then y): diameters
    are tens of network pixels, which a head starting at 0 does not reach in a short run."""
    from epick.trainer.data import Sample
    from epick.trainer.modelfile import read_model_file
    from epick.trainer.train import TrainConfig, train_samples

    rng = np.random.default_rng(0)
    samples = [Sample(f"m{i}", "ves", rng.integers(0, 255, (128, 128), dtype=np.uint8),
                      points=[[40, 40], [90, 80]], sizes=[[30, 30], [50, 46]]) for i in range(2)]
    config = TrainConfig(object_type="vesicle", epochs=1, lr=1e-12, crop=128, width=0.25, target_width=128,
                         val_fraction=0.0, progress=False, batch_size=2)
    path, _ = train_samples(samples, config, tmp_path / "v.epick")
    bias = read_model_file(path).network.size[-1].bias.detach().numpy()
    np.testing.assert_allclose(bias, [40.0, 38.0], atol=0.01)


# ---------------------------------------------------------------- end to end through the CLI
# The pipeline and its CPU-sized recipes are shared with benchmarks/bench_objects.py.
import _object_recipes as bo  # noqa: E402


@pytest.mark.slow
def test_vesicles_end_to_end_centres_and_radii(tmp_path):
    """16 training micrographs of 10 vesicles (20 A/px: radii 10-50 px), 25 epochs; picked on 4 test
    micrographs (benchmarks/bench_objects.py measures the same pipeline)."""
    import json

    picks = bo.run_pipeline(tmp_path, "vesicle")
    bo.epick("eval", "--picks", picks, "--truth", tmp_path / "test", "--radius", bo.VESICLE_MATCH_PX,
             "--json", tmp_path / "m.json", "--quiet")
    by_cli = json.loads((tmp_path / "m.json").read_text())
    acc = bo.vesicle_accuracy(bo.paired(picks, tmp_path / "test"))
    assert acc["ap"] == pytest.approx(by_cli["ap"])
    assert acc["ap"] > 0.8 and acc["ar"] > 0.85
    assert acc["truth"] == 40 and acc["matched"] >= 30
    assert acc["median_radius_error"] < 0.15


@pytest.mark.slow
def test_fibers_end_to_end_points_follow_the_true_polylines(tmp_path):
    """8 training micrographs of 3 amyloid fibers (12.8 px wide), 30 epochs; picked on 4 micrographs of 2
    fibers. Gaps the 3x3 peak step leaves along a fiber's heatmap ridge are bridged
    (``objects.bridge_fibers``), so each fiber is traced as one tube, rarely two."""
    from epick.runtime.evaluate import fiber_metrics

    picks = bo.run_pipeline(tmp_path, "fiber")
    rows = [fiber_metrics(p, t, tolerance=bo.FIBER_WIDTH_PX / 2) for p, t in bo.paired(picks, tmp_path / "test")]
    assert len(rows) == 4
    for m in rows:
        assert m["n_true_tubes"] == 2
        assert m["mean_distance"] < 3.0 and m["precision"] > 0.9
        assert m["coverage"] > 0.6
        assert 2 <= m["n_tubes"] <= 3
    assert sum(m["n_tubes"] for m in rows) <= 9  # at most one extra tube over the 4 micrographs
    assert np.mean([m["coverage"] for m in rows]) > 0.75


# ---------------------------------------------------------------- the diameter of STAR files
def test_model_keeps_the_diameter_of_star_files_so_fiber_box_output_works(tmp_path):
    """Trained without --diameter on STAR files that carry `# diameter_px`, the model keeps that
    diameter (original pixels), so `epick pick --format box` writes fiber start/end boxes of that size."""
    import json

    from epick.trainer.modelfile import read_model_file

    bo.epick("simulate", "micrographs", tmp_path / "mics", "--object", "fiber", "--n", 2, "--seed", 3,
             "--n-particles", 2, *bo.MICROGRAPH)
    width = json.loads((tmp_path / "mics" / "manifest.json").read_text())["diameter_px"]
    model = tmp_path / "f.epick"
    bo.epick("train", "--object", "fiber", "--data", tmp_path / "mics", tmp_path / "mics", "-o", model,
             "--epochs", 1, "--val-fraction", 0, *bo.NARROW)
    assert read_model_file(model).metadata["particle_diameter"] == pytest.approx(width, rel=1e-6)
    bo.epick("pick", tmp_path / "mics", "--model", model, "--out", tmp_path / "out", "--object", "fiber",
             "--format", "star,box", "--threshold", 0.01, "--quiet")
    boxes = sorted((tmp_path / "out").glob("*.box"))
    assert len(boxes) == 2 and not (tmp_path / "out" / "failures.txt").exists()
    sides = np.concatenate([np.loadtxt(b, ndmin=2)[:, 2:4].ravel() for b in boxes if b.stat().st_size])
    assert sides.size and np.allclose(sides, round(width), atol=1)
