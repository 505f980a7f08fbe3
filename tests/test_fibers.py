"""Fiber line tracing: the angle rule separates crossing lines, arcs stay whole, smoothing drops collinear vertices."""
from __future__ import annotations

import numpy as np
import pytest

from epick.runtime.objects import fibers_from_peaks, smooth_polyline, trace_fibers, turn_angle
from epick.runtime.peaks import NetworkPeaks


def test_turn_angle():
    assert turn_angle(np.array([1.0, 0]), np.array([2.0, 0])) == pytest.approx(0.0)
    assert turn_angle(np.array([1.0, 0]), np.array([0.0, 3])) == pytest.approx(np.pi / 2)
    assert turn_angle(np.array([1.0, 0]), np.array([-1.0, 0])) == pytest.approx(np.pi)
    assert turn_angle(np.array([0.0, 0]), np.array([1.0, 0])) == 0.0


def test_two_crossing_lines_become_two_fibers():
    t = np.arange(0, 400, 15.0)
    hx, hy = 50 + t, np.full(t.size, 250.0)          # horizontal, through (250, 250)
    vx, vy = np.full(t.size, 247.0), 45 + t          # vertical, crossing it near (247, 250)
    x, y = np.r_[hx, vx], np.r_[hy, vy]
    score = np.r_[np.full(t.size, 0.9), np.full(t.size, 0.8)]
    lines = trace_fibers(x, y, score, radius=40, max_angle_deg=30, smooth_rad=0)
    assert len(lines) == 2
    first, second = (set(line.tolist()) for line in lines)
    assert first == set(range(t.size)) and second == set(range(t.size, 2 * t.size))
    # each polyline is ordered along its line
    assert np.all(np.abs(np.diff(x[lines[0]])) == 15.0)
    assert np.all(np.abs(np.diff(y[lines[1]])) == 15.0)


def test_both_directions_are_traced_from_a_middle_start():
    x = np.arange(10) * 10.0
    y = np.zeros(10)
    score = np.full(10, 0.5)
    score[5] = 0.9  # start in the middle
    lines = trace_fibers(x, y, score, radius=15, smooth_rad=0)
    assert len(lines) == 1
    assert lines[0].tolist() in (list(range(10)), list(range(9, -1, -1)))


def test_curved_arc_is_one_fiber_and_keeps_its_bends():
    angles = np.linspace(0, np.pi, 40)
    x, y = 500 + 300 * np.cos(angles), 500 + 300 * np.sin(angles)  # 24 px steps, ~4.6 deg per step
    lines = trace_fibers(x, y, radius=50, max_angle_deg=20, smooth_rad=0.1)
    assert len(lines) == 1
    line = lines[0]
    assert {line[0], line[-1]} == {0, 39}
    assert 3 <= len(line) < 40  # smoothing thinned it but a semicircle needs several vertices
    assert np.all(np.diff(line) > 0) or np.all(np.diff(line) < 0)


def test_sharp_corner_splits_the_fiber_under_the_angle_rule():
    a = np.arange(0, 200, 10.0)
    x = np.r_[a, np.full(a.size - 1, 190.0)]
    y = np.r_[np.zeros(a.size), a[1:]]  # right then a 90 degree turn downwards
    assert len(trace_fibers(x, y, radius=15, max_angle_deg=30, smooth_rad=0)) == 2
    assert len(trace_fibers(x, y, radius=15, max_angle_deg=95, smooth_rad=0)) == 1


def test_smoothing_removes_collinear_vertices_only():
    pts = np.array([[0, 0], [10, 0], [20, 0.5], [30, 0], [30, 10], [30, 20]], dtype=float)
    assert smooth_polyline(pts, 0.1).tolist() == [0, 3, 5]
    assert smooth_polyline(pts, 0.0).tolist() == list(range(6))
    lines = trace_fibers(np.arange(20) * 5.0, np.zeros(20), radius=8)
    assert len(lines) == 1 and len(lines[0]) == 2


def test_isolated_points_are_not_fibers():
    assert trace_fibers(np.array([0.0, 500.0]), np.array([0.0, 500.0]), radius=100) == []
    assert trace_fibers(np.zeros(0), np.zeros(0)) == []


def test_fibers_from_peaks_gives_ordered_points_with_tube_ids_in_original_pixels():
    class Half:
        original_shape = (2048, 2048)

        def to_original(self, x, y):
            return (np.asarray(x) + 0.5) * 2 - 0.5, (np.asarray(y) + 0.5) * 2 - 0.5

    t = np.arange(100, 900, 8.0)  # network px; tracing radius 100 at the 1024 scale
    xn = np.r_[t, np.full(t.size, 300.0)]
    yn = np.r_[np.full(t.size, 200.0), 250 + np.arange(t.size) * 6.0]
    peaks = NetworkPeaks(xn, yn, np.r_[np.full(t.size, 0.9), np.full(t.size, 0.7)])
    picks = fibers_from_peaks(peaks, Half(), micrograph="f")
    assert sorted(set(picks.tube_id.tolist())) == [1, 2]
    one = picks.subset(picks.tube_id == 1)
    assert np.allclose(one.y, 200.5 * 2 - 0.5)
    assert one.x.min() == pytest.approx(100.5 * 2 - 0.5) and one.x.max() == pytest.approx((t[-1] + 0.5) * 2 - 0.5)
    two = picks.subset(picks.tube_id == 2)
    assert np.allclose(two.x, 300.5 * 2 - 0.5)


# ---------------------------------------------------------------- gap bridging after tracing
def test_a_gap_of_1_6_radii_is_bridged_into_one_fiber():
    r = 20.0
    x = np.r_[np.arange(0, 200, 10.0), 190 + 1.6 * r + np.arange(0, 200, 10.0)]  # one 32 px gap
    y = np.zeros(x.size)
    assert len(trace_fibers(x, y, radius=r, smooth_rad=0, bridge_factor=0)) == 2  # the paper's tracing splits it
    lines = trace_fibers(x, y, radius=r, smooth_rad=0)
    assert len(lines) == 1
    assert lines[0].tolist() in (list(range(x.size)), list(range(x.size - 1, -1, -1)))
    smoothed = trace_fibers(x, y, radius=r)  # smoothing is re-applied to the merged line
    assert len(smoothed) == 1 and sorted(smoothed[0].tolist()) == [0, x.size - 1]


def test_bridging_needs_both_ends_and_the_gap_to_be_straight_enough():
    r = 20.0
    a = np.arange(0, 200, 10.0)
    # the second piece continues after a 32 px gap but 45 degrees off the first: no join at 30 degrees
    off = np.deg2rad(45)
    x = np.r_[a, 190 + 32 * np.cos(off) + a * np.cos(off)]
    y = np.r_[np.zeros(a.size), 32 * np.sin(off) + a * np.sin(off)]
    assert len(trace_fibers(x, y, radius=r, max_angle_deg=30, smooth_rad=0)) == 2
    assert len(trace_fibers(x, y, radius=r, max_angle_deg=50, smooth_rad=0)) == 1
    # gaps longer than bridge_factor * radius stay open
    x = np.r_[a, 190 + 2.2 * r + a]
    assert len(trace_fibers(x, np.zeros(x.size), radius=r, smooth_rad=0)) == 2


def test_fibers_crossing_at_90_degrees_stay_two_and_are_not_joined_into_an_l():
    r = 20.0
    t = np.arange(0, 300, 12.0)
    # horizontal through y = 150; the vertical is cut at the crossing (a 36 px hole around it, within
    # the 40 px bridging distance) so that its pieces end right next to the horizontal line's points
    vt = t[np.abs(t - 150) > 10]
    x = np.r_[t, np.full(vt.size, 150.0)]
    y = np.r_[np.full(t.size, 150.0), vt]
    lines = trace_fibers(x, y, radius=r, smooth_rad=0)
    assert len(lines) == 2
    groups = sorted(set(line.tolist()) for line in lines)
    assert set(range(t.size)) in groups and set(range(t.size, x.size)) in groups  # vertical re-joined
    assert len(trace_fibers(x, y, radius=r, smooth_rad=0, bridge_factor=0)) == 3
    # two fibers meeting end to end at a right angle (an L) are not merged either
    x = np.r_[t, np.full(t.size - 1, t[-1] + 10.0)]
    y = np.r_[np.zeros(t.size), 10.0 + t[1:]]
    assert len(trace_fibers(x, y, radius=r, smooth_rad=0)) == 2


def test_parallel_fibers_side_by_side_stay_separate():
    r = 20.0
    t = np.arange(0, 300, 15.0)  # ends 25 px apart sideways, well within the 40 px bridging distance
    x = np.r_[t, t]
    y = np.r_[np.zeros(t.size), np.full(t.size, 25.0)]
    lines = trace_fibers(x, y, radius=r, smooth_rad=0)
    assert sorted(set(line.tolist()) for line in lines) == [set(range(t.size)), set(range(t.size, 2 * t.size))]
    # staggered: one fiber's end 30 px past the other's start and 25 px to the side, still separate
    x = np.r_[t, t + t[-1] + 30.0]
    lines = trace_fibers(x, y, radius=r, smooth_rad=0)
    assert len(lines) == 2


def test_bridging_joins_a_chain_of_pieces_in_order_and_never_closes_a_loop():
    r = 20.0
    pieces = [np.arange(0, 100, 10.0) + k * (90 + 30) for k in range(4)]  # 4 pieces, 30 px gaps
    x = np.concatenate(pieces)
    lines = trace_fibers(x, np.zeros(x.size), radius=r, smooth_rad=0)
    assert len(lines) == 1 and (np.all(np.diff(x[lines[0]]) > 0) or np.all(np.diff(x[lines[0]]) < 0))
    # a closed ring of points cut into arcs: all arcs join into one open line, never a loop
    ang = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    ang = ang[(ang % (np.pi / 2)) > 0.15]  # four gaps of 0.31 rad (38 px at radius 120)
    x, y = 500 + 120 * np.cos(ang), 500 + 120 * np.sin(ang)
    lines = trace_fibers(x, y, radius=r, max_angle_deg=30, smooth_rad=0)
    assert len(trace_fibers(x, y, radius=r, max_angle_deg=30, smooth_rad=0, bridge_factor=0)) == 4
    assert len(lines) == 1 and len(lines[0]) == x.size and len(set(lines[0].tolist())) == x.size
