"""Targets use the runtime's stride-4 geometry; augmentation moves centres with the pixels."""
import numpy as np
import pytest

from epick.runtime.peaks import find_peaks
from epick.trainer.augment import augment, flip_rotate, random_crop, Augmented
from epick.trainer.targets import gaussian_radius, make_targets, shifted_box_radius


def test_targets_decode_back_to_the_centres_with_the_runtime_decoder():
    pts = np.array([[10.3, 21.7], [40.0, 8.9], [63.4, 63.4]])
    t = make_targets(pts, (64, 128), diameter=20.0)
    assert t.heatmap.shape == (1, 16, 32) and t.offset.shape == (2, 16, 32)
    assert t.mask.sum() == 3
    # cell of u = 10.3: floor((10.3 + .5) / 4) = 2, offset .7; of y = 21.7: floor(22.2 / 4) = 5, .55
    assert t.heatmap[0, 5, 2] == 1.0
    assert t.offset[:, 5, 2] == pytest.approx([0.7, 0.55], abs=1e-6)
    logits = np.where(t.heatmap[0] == 1.0, 5.0, -5.0).astype(np.float32)
    peaks = find_peaks(logits, t.offset, threshold=0.5, top_k=10)
    got = sorted(zip(np.round(peaks.x, 4), np.round(peaks.y, 4)))
    assert got == sorted(zip(np.round(pts[:, 0], 4), np.round(pts[:, 1], 4)))


def test_gaussian_splat_radius_grows_with_diameter_and_is_max_merged():
    assert gaussian_radius(2) == 1
    # CenterNet's rule (min overlap 0.7): r = 0.273 d; a 100-px particle at stride 4 is 25 cells -> 6
    assert gaussian_radius(25) == 6
    assert gaussian_radius(50) == 13
    t = make_targets(np.array([[30.0, 30.0], [38.0, 30.0]]), (64, 64), diameter=100.0)
    row = t.heatmap[0, 7]
    assert row[7] == 1.0 and row[9] == 1.0 and 0 < row[8] < 1.0
    assert t.heatmap.min() == 0.0


def test_objects_with_sizes_get_the_tighter_shifted_box_splat():
    # a 100-px vesicle at stride 4 is 25 cells: shifted-box radius 0.093 d -> 2 (CenterNet's rule: 6)
    assert shifted_box_radius(25) == 2 and shifted_box_radius(2) == 1
    pts = np.array([[50.0, 50.0]])
    particle = make_targets(pts, (128, 128), diameter=100.0)
    vesicle = make_targets(pts, (128, 128), diameter=100.0, sizes=np.array([[100.0, 100.0]]))
    assert (particle.heatmap[0] > 0).sum() == (2 * 6 + 1) ** 2
    assert (vesicle.heatmap[0] > 0).sum() == (2 * 2 + 1) ** 2


def test_size_targets_and_points_outside_are_skipped():
    t = make_targets(np.array([[5.0, 5.0], [-20.0, 3.0]]), (32, 32), 8.0, sizes=np.array([[7.0, 9.0], [1, 1]]))
    assert t.mask.sum() == 1
    assert t.size[:, 1, 1] == pytest.approx([7.0, 9.0])


@pytest.mark.parametrize("hflip,vflip,turns", [(True, False, 0), (False, True, 1), (True, True, 3), (False, False, 2)])
def test_flip_rotate_moves_points_with_pixels(hflip, vflip, turns):
    rng = np.random.default_rng(1)
    img = np.zeros((24, 24), dtype=np.uint8)
    pts = rng.integers(0, 24, size=(5, 2)).astype(float)
    img[pts[:, 1].astype(int), pts[:, 0].astype(int)] = 255
    out = flip_rotate(Augmented(img, pts, np.tile([[1.0, 2.0]], (5, 1))), hflip, vflip, turns)
    xi, yi = np.round(out.points[:, 0]).astype(int), np.round(out.points[:, 1]).astype(int)
    assert np.all(out.image[yi, xi] == 255) and out.image.sum() == img.sum()
    assert np.all(out.sizes == ([2.0, 1.0] if turns % 2 else [1.0, 2.0]))


def test_random_crop_keeps_points_inside_and_pads_small_images():
    rng = np.random.default_rng(0)
    img = (np.arange(40 * 50) % 251).astype(np.uint8).reshape(40, 50)
    pts = np.array([[3.0, 4.0], [45.0, 35.0], [25.0, 20.0]])
    for _ in range(20):
        a = random_crop(img, pts, None, (32, 32), rng)
        assert a.image.shape == (32, 32)
        assert np.all((a.points >= -0.5) & (a.points < 31.5))
    a = augment(img, pts, None, (64, 64), rng)  # larger than the image: zero padding
    assert a.image.shape == (64, 64) and len(a.points) == 3


def test_appearance_jitter_changes_grey_levels_not_geometry():
    from epick.runtime.preprocess import equalise

    img = equalise((np.random.default_rng(3).normal(128, 30, (96, 96))).clip(0, 255).astype(np.uint8))
    pts = np.array([[10.0, 20.0], [50.0, 60.0], [80.0, 15.0]])
    changed = 0
    for seed in range(8):
        plain = augment(img, pts, None, (64, 64), np.random.default_rng(seed))
        jittered = augment(img, pts, None, (64, 64), np.random.default_rng(seed), appearance_jitter=True)
        np.testing.assert_array_equal(plain.points, jittered.points)      # same crop, flips and turns
        assert jittered.image.dtype == np.uint8 and jittered.image.shape == plain.image.shape
        assert jittered.image.max() == 255                                  # re-equalised like preprocessing
        changed += not np.array_equal(plain.image, jittered.image)
    assert changed >= 6                                                     # blur, noise or quantisation, each p=1/2


def test_make_batch_jitters_only_the_named_datasets():
    from epick.runtime.preprocess import equalise
    from epick.trainer.data import Sample, make_batch

    img = equalise((np.random.default_rng(4).normal(128, 30, (96, 96))).clip(0, 255).astype(np.uint8))
    pts = np.array([[30.0, 30.0], [60.0, 70.0]])
    real, sim = Sample("r", "real", img, pts, diameter=10.0), Sample("s", "sim", img.copy(), pts, diameter=10.0)
    for seed in range(4):
        plain = make_batch([real, sim], (64, 64), 10.0, np.random.default_rng(seed))
        only_sim = make_batch([real, sim], (64, 64), 10.0, np.random.default_rng(seed), appearance=("sim",))
        np.testing.assert_array_equal(plain.image[0], only_sim.image[0])         # the real crop untouched
        np.testing.assert_array_equal(plain.heatmap, only_sim.heatmap)            # targets never jittered
    changed = sum(not np.array_equal(make_batch([sim], (64, 64), 10.0, np.random.default_rng(s)).image,
                                     make_batch([sim], (64, 64), 10.0, np.random.default_rng(s), appearance=("*",)).image)
                  for s in range(8))
    assert changed >= 6


def _discs(shape, centres, radius, dark=20, light=200):
    """uint8 image of dark discs at (x, y) ``centres`` on a light background."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    img = np.full(shape, light, np.uint8)
    for x, y in centres:
        img[(yy - y) ** 2 + (xx - x) ** 2 <= radius ** 2] = dark
    return img


@pytest.mark.parametrize("zoom", [0.5, 1.0, 1.7, 2.0])
def test_zoomed_crop_moves_points_with_the_rescaled_pixels(zoom):
    from epick.trainer.augment import zoomed_crop

    centres = np.array([[70.0, 50.0], [40.0, 60.0]])
    img = _discs((300, 300), centres, 5)
    a = zoomed_crop(img, centres, np.full((2, 2), 10.0), (128, 128), zoom, np.random.default_rng(0), origin=(20, 20))
    assert a.image.shape == (128, 128) and a.image.dtype == np.uint8 and a.zoom == zoom
    assert len(a.points) == 2
    np.testing.assert_allclose(a.sizes, 10.0 * zoom)
    ys, xs = np.nonzero(a.image < 110)
    for x, y in a.points:                          # each point sits on the centroid of its rescaled disc
        near = (xs - x) ** 2 + (ys - y) ** 2 < (8 * zoom) ** 2
        assert abs(xs[near].mean() - x) < 0.15 and abs(ys[near].mean() - y) < 0.15
        assert near.sum() == pytest.approx(np.pi * (5 * zoom) ** 2, rel=0.25)   # the disc grew with the zoom


def test_make_batch_zoom_scales_the_splat_and_default_is_unchanged():
    from epick.trainer.data import Sample, make_batch
    from epick.trainer.train import TrainConfig
    from epick.runtime.errors import EpickError

    img = _discs((300, 300), [(60, 60), (150, 160)], 12)
    s = Sample("s", "sim", img, np.array([[60.0, 60.0], [150.0, 160.0]]), diameter=24.0)
    plain = make_batch([s], (128, 128), 24.0, np.random.default_rng(1))
    same = make_batch([s], (128, 128), 24.0, np.random.default_rng(1), zoom=(1.0, 1.0))
    np.testing.assert_array_equal(plain.image, same.image)
    np.testing.assert_array_equal(plain.heatmap, same.heatmap)
    big = make_batch([s], (128, 128), 24.0, np.random.default_rng(1), zoom=(2.0, 2.0), origins=[(20, 20)])
    small = make_batch([s], (128, 128), 24.0, np.random.default_rng(1), zoom=(1.0, 1.0), origins=[(20, 20)])
    assert (big.heatmap[0, 0] > 0.01).sum() > 2 * (small.heatmap[0, 0] > 0.01).sum()   # a wider splat, bigger disc
    with pytest.raises(EpickError, match="zoom"):
        TrainConfig(zoom=(2.0, 1.0))
