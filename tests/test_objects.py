"""Particles and vesicles from network peaks: mapping to original pixels, edge margin, min distance, radius."""
from __future__ import annotations

import numpy as np
import pytest

from epick.runtime.objects import enforce_min_distance, particles_from_peaks, vesicles_from_peaks
from epick.runtime.peaks import NetworkPeaks


class ScaleTransform:
    """A stand-in for preprocess.Transform: uniform scale s (original px per network px)."""

    def __init__(self, s: float, shape: tuple[int, int]):
        self.s, self.original_shape = s, shape

    def to_original(self, x, y):
        return (np.asarray(x) + 0.5) * self.s - 0.5, (np.asarray(y) + 0.5) * self.s - 0.5


def peaks(xy, score, size=None) -> NetworkPeaks:
    xy = np.asarray(xy, dtype=float)
    return NetworkPeaks(xy[:, 0], xy[:, 1], np.asarray(score, float), None if size is None else np.asarray(size, float))


def test_particles_are_mapped_to_original_pixels():
    t = ScaleTransform(4.0, (4096, 4096))
    p = particles_from_peaks(peaks([(100, 200), (511.5, 300)], [0.9, 0.8]), t, micrograph="m", diameter=180)
    assert p.x == pytest.approx([401.5, 2047.5]) and p.y == pytest.approx([801.5, 1201.5])
    assert p.shape == (4096, 4096) and p.diameter == 180 and p.score == pytest.approx([0.9, 0.8])


def test_edge_margin_scales_with_micrograph_width():
    # 25 px at the 1024 scale = 100 original px on a 4096-wide micrograph, whatever the network width
    for s in (4.0, 8.0):  # network width 1024 or 512
        t = ScaleTransform(s, (4096, 4096))
        orig = np.array([80.0, 120.0, 4095 - 80.0, 4095 - 120.0])  # original px: out, in, out, in
        net = (orig + 0.5) / s - 0.5
        p = particles_from_peaks(peaks(np.column_stack([net, np.full(4, 2048 / s)]), np.ones(4)), t, micrograph="m")
        assert sorted(p.x.tolist()) == pytest.approx([120.0, 4095 - 120.0])
    t = ScaleTransform(4.0, (4096, 4096))
    assert len(particles_from_peaks(peaks([(2, 2)], [1]), t, micrograph="m", edge_margin=0)) == 1


def test_rectangular_micrograph_uses_its_own_height():
    t = ScaleTransform(4.0, (2000, 4096))  # network image 1024 x 500
    p = particles_from_peaks(peaks([(500, 480), (500, 470)], [0.9, 0.8]), t, micrograph="m")
    assert len(p) == 1 and p.y[0] == pytest.approx(470.5 * 4 - 0.5)


def test_min_distance_keeps_the_better_of_two_close_particles():
    t = ScaleTransform(1.0, (1024, 1024))
    pk = peaks([(300, 300), (305, 300), (400, 300)], [0.5, 0.9, 0.7])
    p = particles_from_peaks(pk, t, micrograph="m", min_distance=10)
    assert sorted(p.x.tolist()) == [305.0, 400.0]
    keep = enforce_min_distance(np.array([0.0, 3, 6]), np.zeros(3), np.array([0.9, 0.8, 0.7]), 5.0)
    assert keep.tolist() == [0, 2]  # 1 is suppressed by 0, so 2 survives (greedy, not transitive)


def test_vesicle_radius_comes_from_the_size_head_in_original_pixels():
    t = ScaleTransform(4.0, (4096, 4096))
    v = vesicles_from_peaks(peaks([(300, 300), (340, 300)], [0.9, 0.8], [[40, 40], [30, 50]]), t, micrograph="m")
    assert v.radius == pytest.approx([80.0, 80.0])  # mean diameter 40 net px * 4 / 2
    assert len(v) == 2  # overlapping vesicles stay separate


def test_vesicles_without_size_head_raise():
    t = ScaleTransform(1.0, (1024, 1024))
    with pytest.raises(ValueError, match="size"):
        vesicles_from_peaks(peaks([(300, 300)], [0.9]), t, micrograph="m")


def test_shape_must_be_known():
    class NoShape:
        def to_original(self, x, y):
            return x, y

    with pytest.raises(ValueError, match="shape"):
        particles_from_peaks(peaks([(300, 300)], [0.9]), NoShape(), micrograph="m")
    p = particles_from_peaks(peaks([(300, 300)], [0.9]), NoShape(), micrograph="m", shape=(1024, 1024))
    assert len(p) == 1
