"""Peak extraction on hand-made heatmaps: maxima, plateaus, borders, threshold, top-K order, offsets."""
from __future__ import annotations

import numpy as np
import pytest

from epick.runtime.peaks import (STRIDE, find_peaks, find_peaks_batch, heatmap_to_network, logit_threshold,
                                 network_to_heatmap)

LOW = -8.0  # a logit whose sigmoid (3e-4) is below every threshold used here


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def blank(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((h, w), LOW, np.float32), np.zeros((2, h, w), np.float32)


def cells(peaks, w: int) -> list[tuple[int, int]]:
    return [(int(i) // w, int(i) % w) for i in peaks.index]


def test_geometry_round_trip_and_known_values():
    u = np.array([-0.5, 0.0, 1.5, 10.0, 1023.5])
    assert np.allclose(heatmap_to_network(network_to_heatmap(u)), u)
    # pixel 0..3 of the network image lie in heatmap cell 0; pixel 1.5 is the cell centre (offset 0.5)
    assert network_to_heatmap(1.5) == pytest.approx(0.5)
    assert np.floor(network_to_heatmap(3.0)) == 0 and np.floor(network_to_heatmap(3.5)) == 1
    assert STRIDE == 4


def test_isolated_maxima_found_with_offsets_decoded():
    heat, off = blank(12, 16)
    heat[3, 5] = logit(0.9)
    heat[8, 12] = logit(0.6)
    off[0, 3, 5], off[1, 3, 5] = 0.25, 0.75
    p = find_peaks(heat, off, threshold=0.3)
    assert cells(p, 16) == [(3, 5), (8, 12)]
    assert p.score == pytest.approx([0.9, 0.6])
    assert p.x[0] == pytest.approx((5 + 0.25) * 4 - 0.5)
    assert p.y[0] == pytest.approx((3 + 0.75) * 4 - 0.5)
    assert p.x[1] == pytest.approx(12 * 4 - 0.5) and p.y[1] == pytest.approx(8 * 4 - 0.5)


def test_neighbour_of_a_maximum_is_suppressed_but_not_two_cells_away():
    heat, off = blank(9, 9)
    heat[4, 4] = logit(0.9)
    heat[4, 5] = logit(0.8)  # in the 3x3 window of (4, 4): suppressed
    heat[4, 6] = logit(0.85)  # its window holds (4, 5) only, which is smaller: a peak
    p = find_peaks(heat, off, threshold=0.3)
    assert cells(p, 9) == [(4, 4), (4, 6)]


def test_plateau_keeps_every_tied_cell_in_row_major_order():
    heat, off = blank(6, 6)
    heat[2, 2] = heat[2, 3] = heat[3, 2] = logit(0.7)
    p = find_peaks(heat, off, threshold=0.3)
    assert cells(p, 6) == [(2, 2), (2, 3), (3, 2)]
    assert np.all(p.score == p.score[0])


def test_borders_and_corners_are_peaks():
    heat, off = blank(5, 7)
    for r, c in [(0, 0), (0, 6), (4, 0), (4, 6), (2, 0)]:
        heat[r, c] = logit(0.5)
    p = find_peaks(heat, off, threshold=0.3)
    assert sorted(cells(p, 7)) == sorted([(0, 0), (0, 6), (4, 0), (4, 6), (2, 0)])


def test_threshold_is_inclusive_in_logit_space():
    heat, off = blank(5, 9)
    heat[2, 1] = np.float32(logit_threshold(0.5))  # exactly at threshold: kept
    heat[2, 4] = np.nextafter(np.float32(0.0), np.float32(-1.0))  # just below 0.5
    heat[2, 7] = logit(0.51)
    p = find_peaks(heat, off, threshold=0.5)
    assert cells(p, 9) == [(2, 7), (2, 1)]
    assert len(find_peaks(heat, off, threshold=0.99)) == 0


def test_top_k_keeps_the_best_in_stable_order():
    heat, off = blank(10, 10)
    values = {(1, 1): 0.6, (1, 5): 0.9, (5, 1): 0.6, (5, 5): 0.7, (8, 8): 0.6}
    for (r, c), v in values.items():
        heat[r, c] = logit(v)
    p = find_peaks(heat, off, threshold=0.3, top_k=4)
    assert cells(p, 10) == [(1, 5), (5, 5), (1, 1), (5, 1)]
    assert len(find_peaks(heat, off, threshold=0.3, top_k=0)) == 0


def test_nan_never_a_peak_and_does_not_suppress_neighbours():
    heat, off = blank(5, 5)
    heat[2, 2] = np.nan
    heat[2, 3] = logit(0.6)
    p = find_peaks(heat, off, threshold=0.3)
    assert cells(p, 5) == [(2, 3)]


def test_constant_heatmap_above_threshold_keeps_every_cell():
    heat = np.full((3, 4), logit(0.8), np.float32)
    p = find_peaks(heat, np.zeros((2, 3, 4), np.float32), threshold=0.3)
    assert list(p.index) == list(range(12))


def test_size_is_sampled_at_the_peaks():
    heat, off = blank(6, 6)
    size = np.zeros((2, 6, 6), np.float32)
    heat[1, 4] = logit(0.9)
    size[:, 1, 4] = (12.0, 8.0)
    p = find_peaks(heat, off, size)
    assert p.size.shape == (1, 2) and tuple(p.size[0]) == (12.0, 8.0)


def test_batch_equals_single_and_accepts_channel_axis():
    rng = np.random.default_rng(1)
    heat = rng.normal(-2, 2, (3, 1, 17, 23)).astype(np.float32)
    off = rng.random((3, 2, 17, 23)).astype(np.float32)
    batch = find_peaks_batch(heat, off, threshold=0.4, top_k=30)
    for i, b in enumerate(batch):
        single = find_peaks(heat[i, 0], off[i], threshold=0.4, top_k=30)
        assert np.array_equal(b.index, single.index) and np.array_equal(b.x, single.x)


def test_random_heatmap_matches_a_numpy_max_pool_reference():
    rng = np.random.default_rng(7)
    heat = rng.normal(-1, 1.5, (31, 45)).astype(np.float32)
    heat[rng.random(heat.shape) < 0.1] = 0.5  # plateaus
    pad = np.pad(heat, 1, constant_values=-np.inf)
    pooled = np.max([pad[dr:dr + 31, dc:dc + 45] for dr in range(3) for dc in range(3)], axis=0)
    expect = np.flatnonzero((heat == pooled) & (heat >= logit_threshold(0.35)))
    got = find_peaks(heat, np.zeros((2, 31, 45), np.float32), threshold=0.35, top_k=10**6)
    assert sorted(got.index.tolist()) == expect.tolist()
    assert np.all(np.diff(got.score) <= 0)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        find_peaks(np.zeros((4, 4), np.float32), np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError):
        find_peaks(np.zeros((4, 4), np.float32), np.zeros((2, 4, 4), np.float32), threshold=1.5)
