"""Preprocessing: shapes, no upsampling, robustness (constant, NaN, hot pixels), equalisation,
the coordinate transform, padding and the network input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from epick.runtime.io.micrograph import read_micrograph
from epick.runtime.preprocess import (
    PreprocessParams,
    Transform,
    area_weights,
    downsample,
    equalise,
    gaussian_weights,
    lowpass,
    subtract_background,
    network_input,
    network_shape,
    pad_to_multiple,
    preprocess,
    robust_range,
    to_levels,
)


def _noise(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32).astype(dtype)


def _coarse_flatness(u8: np.ndarray, groups: int = 16) -> np.ndarray:
    """Fraction of pixels in each of ``groups`` equal ranges of grey levels, divided by 1/groups."""
    counts = np.bincount(u8.reshape(-1) // (256 // groups), minlength=groups)
    return counts / (u8.size / groups)


# --- shapes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("ny, nx", [(4096, 4096), (4092, 5760), (5760, 4092), (3710, 3838)])
def test_output_shape_keeps_aspect_ratio(ny, nx):
    image = _noise((ny, nx))
    u8, tf = preprocess(image)
    expected = (math.floor(ny * 1024 / nx + 0.5), 1024)
    assert u8.shape == expected == tf.network_shape and u8.dtype == np.uint8
    assert tf.original_shape == (ny, nx)
    assert tf.scale_x == nx / 1024 and tf.scale_y == ny / expected[0]


def test_narrow_images_are_never_upsampled():
    ramp = np.add.outer(np.arange(300.0), np.arange(500.0)).astype(np.float32)
    u8, tf = preprocess(ramp, PreprocessParams(target_width=1024))
    assert u8.shape == (300, 500) and tf.scale_x == tf.scale_y == 1.0
    assert network_shape((300, 1024)) == (300, 1024)
    # a monotonic ramp stays monotonic (the grey map is non-decreasing)
    assert (np.diff(u8.astype(int), axis=1) >= 0).all() and (np.diff(u8.astype(int), axis=0) >= 0).all()
    assert u8.min() == 0 and u8.max() == 255


# --- step 1: area downsampling ----------------------------------------------------------------------
@pytest.mark.parametrize("n_in, n_out", [(4096, 1024), (5760, 1024), (3710, 990), (7, 3), (10, 10)])
def test_area_weights_sum_to_one_and_cover_the_input_once(n_in, n_out):
    start, weights = area_weights(n_in, n_out)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    assert (weights >= 0).all()
    coverage = np.zeros(n_in)
    for j in range(n_out):
        k = np.arange(weights.shape[1])
        inside = start[j] + k < n_in
        np.add.at(coverage, start[j] + k[inside], weights[j, inside])
    np.testing.assert_allclose(coverage, n_out / n_in, atol=1e-6)  # every input pixel counted once


@pytest.mark.parametrize("ny, nx", [(4092, 5760), (1000, 1300), (64, 2048), (4096, 4096)])
def test_downsampling_a_ramp_gives_the_transformed_centre(ny, nx):
    """Area-averaging the image x (or y) gives each network pixel's centre in original pixels:
    exactly for integer scales, within 0.1 px for fractional ones (pixels are little squares), and
    without bias on average. A half-pixel convention error would show as a mean offset."""
    shape = network_shape((ny, nx), 1024)
    tf = Transform.between((ny, nx), shape)
    ramp_x = np.broadcast_to(np.arange(nx, dtype=np.float32)[None, :], (ny, nx))
    ramp_y = np.broadcast_to(np.arange(ny, dtype=np.float32)[:, None], (ny, nx))
    x, y = tf.to_original(np.arange(shape[1]), np.arange(shape[0]))
    for ramp, centre, axis in ((ramp_x, x, 0), (ramp_y, y, 1)):
        small = downsample(ramp, shape)
        err = np.take(small, 0, axis=axis) - centre
        assert np.abs(small - np.take(small, [0], axis=axis)).max() < 1e-3  # depends on one axis only
        assert np.abs(err).max() <= 0.1
        assert abs(err.mean()) < 2e-3
        if float(nx / shape[1]).is_integer() and float(ny / shape[0]).is_integer():
            assert np.abs(err).max() < 1e-3


def test_downsampling_skips_nonfinite_pixels():
    image = np.ones((8, 8), np.float32)
    image[0, 0] = np.nan
    image[5, 6] = np.inf
    image[4:8, 0:4] = np.nan  # one whole output block
    small = downsample(image, (2, 2))
    assert small[0, 0] == pytest.approx(1.0) and small[1, 1] == pytest.approx(1.0) and small[0, 1] == 1.0
    assert np.isnan(small[1, 0])


def test_bright_dot_lands_where_the_transform_says():
    ny, nx = 4092, 5760
    x0, y0 = 2345.3, 1501.8
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    image = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 12.0 ** 2)).astype(np.float32)
    image += _noise((ny, nx), seed=3) * 0.01
    u8, tf = preprocess(image)
    un, vn = tf.to_network(x0, y0)
    small = downsample(image, tf.network_shape)
    v, u = np.mgrid[0:tf.network_shape[0], 0:tf.network_shape[1]]
    window = (np.abs(u - un) < 8) & (np.abs(v - vn) < 8)
    weight = np.clip(small - 0.02, 0, None) * window
    centroid = ((weight * u).sum() / weight.sum(), (weight * v).sum() / weight.sum())
    assert centroid == pytest.approx((float(un), float(vn)), abs=0.05)
    peak_v, peak_u = np.unravel_index(np.argmax(np.where(window, small, -1)), small.shape)
    assert (peak_u, peak_v) == (round(float(un)), round(float(vn)))
    assert u8[peak_v, peak_u] == 255
    back = tf.to_original(centroid[0], centroid[1])
    assert back == pytest.approx((x0, y0), abs=0.3)


# --- step 2 and 3: robust 8-bit levels --------------------------------------------------------------
def test_robust_range_finds_the_quantiles_despite_a_hot_pixel():
    values = np.random.default_rng(5).uniform(0, 1, size=(1000, 1000)).astype(np.float32)
    lo, hi = robust_range(values, 0.01, 0.99)
    assert lo == pytest.approx(np.quantile(values, 0.01), abs=2e-3)
    assert hi == pytest.approx(np.quantile(values, 0.99), abs=2e-3)
    values[500, 500] = 1e6
    values[10, 10] = -1e9
    values[20, 20] = np.nan
    lo2, hi2 = robust_range(values, 0.01, 0.99)
    assert (lo2, hi2) == pytest.approx((lo, hi), abs=2e-3)


def test_constant_and_all_nan_images_become_mid_grey():
    for image in (np.full((600, 2000), 7.5, np.float32), np.full((50, 60), np.nan, np.float32)):
        assert robust_range(image) is None
        u8, _ = preprocess(image)
        assert (u8 == 128).all()
    u8, _ = preprocess(np.zeros((40, 40), np.int16))
    assert (u8 == 128).all()


def test_near_constant_image_with_outliers_keeps_the_background_flat():
    """99.99% of one value: the quantiles coincide, so the range falls back to (min, max) instead
    of stretching the float32 rounding noise of the fractional area average to 0..255."""
    image = np.full((2000, 2000), 5.0, np.float32)
    image[:3, :3] = 100.0
    image[-2:, -2:] = -50.0
    u8, tf = preprocess(image)
    background = u8[10:-10, 10:-10]
    assert background.min() == background.max()
    assert robust_range(downsample(image, tf.network_shape)) == pytest.approx((-50.0, 100.0), abs=1e-3)


def test_to_levels_maps_the_range_to_0_255_and_nan_to_mid_grey():
    image = np.array([[-1.0, 0.0, 0.5, 1.0, 2.0, np.nan]], np.float32)
    np.testing.assert_array_equal(to_levels(image, 0.0, 1.0), [[0, 0, 128, 255, 255, 128]])


def test_a_single_hot_pixel_does_not_wreck_the_contrast():
    image = _noise((4096, 4096), seed=7)
    clean, _ = preprocess(image)
    image[1234, 2345] = 1e6
    hot, _ = preprocess(image)
    assert hot[1234 // 4, 2345 // 4] == 255
    hot[1234 // 4, 2345 // 4] = clean[1234 // 4, 2345 // 4]
    # the quantiles move by one rank at most, so grey levels move by a few levels at most
    assert hot.std() == pytest.approx(clean.std(), rel=0.01) and hot.std() > 60
    assert np.abs(hot.astype(int) - clean.astype(int)).max() <= 3
    assert np.mean(hot == clean) > 0.9


def test_nan_pixels_are_handled_not_propagated():
    image = _noise((2048, 2048), seed=11)
    clean, _ = preprocess(image)
    holes = image.copy()
    rng = np.random.default_rng(2)
    holes[rng.integers(0, 2048, 500), rng.integers(0, 2048, 500)] = np.nan
    holes[:40, :40] = np.inf  # one fully non-finite network-pixel block and more
    u8, _ = preprocess(holes)
    assert u8.dtype == np.uint8
    assert np.mean(np.abs(u8.astype(int) - clean.astype(int)) <= 24) > 0.98


# --- step 4: equalisation -----------------------------------------------------------------------------
def test_histogram_is_roughly_flat_after_equalisation():
    rng = np.random.default_rng(9)
    image = rng.gamma(2.0, 1.0, size=(2048, 3000)).astype(np.float32)  # skewed input
    u8, _ = preprocess(image)
    flat = _coarse_flatness(u8)
    assert flat.min() > 0.75 and flat.max() < 1.25, flat
    unequalised, _ = preprocess(image, PreprocessParams(equalise=False))
    assert np.ptp(_coarse_flatness(unequalised)) > 1.0  # the skew was there before equalising


def test_equalise_is_monotonic_and_keeps_a_single_level():
    levels = np.random.default_rng(4).binomial(255, 0.3, size=(300, 300)).astype(np.uint8)
    out = equalise(levels)
    order = np.argsort(levels.reshape(-1), kind="stable")
    assert (np.diff(out.reshape(-1)[order].astype(int)) >= 0).all()
    assert out.min() == 0 and out.max() == 255
    single = np.full((5, 5), 77, np.uint8)
    np.testing.assert_array_equal(equalise(single), single)


# --- transform, params, padding, network input --------------------------------------------------------
def test_transform_round_trip_and_json():
    tf = Transform.between((4092, 5760), network_shape((4092, 5760)))
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-0.5, 5759.5, 1000), rng.uniform(-0.5, 4091.5, 1000)
    xb, yb = tf.to_original(*tf.to_network(x, y))
    np.testing.assert_allclose(xb, x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(yb, y, rtol=0, atol=1e-9)
    # edges map to edges: original pixel edge -0.5 is network edge -0.5
    assert tf.to_network(-0.5, -0.5) == pytest.approx((-0.5, -0.5))
    assert tf.to_network(5759.5, 4091.5) == pytest.approx((1023.5, tf.network_shape[0] - 0.5))
    assert Transform.from_dict(json.loads(json.dumps(tf.to_dict()))) == tf


def test_params_round_trip_and_validation():
    params = PreprocessParams(target_width=512, clip_low=0.01, equalise=False)
    assert PreprocessParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params
    with pytest.raises(ValueError, match="bogus"):
        PreprocessParams.from_dict({"bogus": 1})
    with pytest.raises(ValueError):
        PreprocessParams(clip_low=0.9, clip_high=0.1)


# --- optional Gaussian low-pass ------------------------------------------------------------------------
@pytest.mark.parametrize("n, sigma", [(40, 0.7), (40, 2.0), (9, 2.0), (3, 2.0), (1, 1.0)])
def test_gaussian_weights_are_a_mirrored_kernel_on_contiguous_windows(n, sigma):
    start, w = gaussian_weights(n, sigma)
    r = math.ceil(3 * sigma)
    assert w.shape == (n, min(2 * r + 1, n)) and start.dtype == np.int32 and w.dtype == np.float32
    assert np.all(start >= 0) and np.all(start + w.shape[1] <= n)     # every tap inside the axis
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    # as a dense matrix: mirror-symmetric edges make it the flip of itself, a blur of a constant is constant
    dense = np.zeros((n, n))
    for j in range(n):
        dense[j, start[j]:start[j] + w.shape[1]] = w[j]
    np.testing.assert_allclose(dense, dense[::-1, ::-1], atol=1e-7)
    if n > 2 * r:   # an inner row is the plain Gaussian, centred
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
        np.testing.assert_allclose(dense[r, :2 * r + 1], k / k.sum(), atol=1e-7)


def test_lowpass_is_scipy_gaussian_filter_with_mirrored_edges():
    from scipy import ndimage

    image = _noise((37, 53), seed=3)
    for sigma in (0.5, 1.5, 3.0):
        want = ndimage.gaussian_filter(image.astype(np.float64), sigma, mode="reflect", truncate=math.ceil(3 * sigma) / sigma)
        np.testing.assert_allclose(lowpass(image, sigma), want, rtol=0, atol=2e-6)
    assert lowpass(image, 0.0) is not None and np.array_equal(lowpass(image, 0.0), image)


def test_lowpass_gives_the_bits_of_the_resampling_passes_the_gpu_runs():
    from epick.runtime.preprocess import _resample_cols, _resample_rows

    image = _noise((61, 97), seed=6)
    image[5, 7] = np.nan
    image[30:40, 50:70] = np.inf        # a patch wider than the short kernel: NaN outputs there
    for sigma in (1.5, 4.0, 20.0):
        want = _resample_rows(_resample_cols(image, *gaussian_weights(61, sigma)), *gaussian_weights(97, sigma))
        assert np.array_equal(lowpass(image, sigma), want, equal_nan=True)


def test_lowpass_in_preprocess_only_when_asked_and_it_cuts_pixel_noise():
    image = _noise((300, 400), seed=4)
    plain, tf = preprocess(image, PreprocessParams(target_width=200))
    assert np.array_equal(plain, preprocess(image, PreprocessParams(target_width=200, lowpass=0.0))[0])
    smooth, tf2 = preprocess(image, PreprocessParams(target_width=200, lowpass=2.0))
    assert tf2 == tf and smooth.shape == plain.shape
    # white noise: neighbouring pixels are nearly independent before, strongly correlated after
    def neighbour_corr(u8):
        a = u8.astype(np.float64)
        return np.corrcoef(a[:, :-1].ravel(), a[:, 1:].ravel())[0, 1]
    assert abs(neighbour_corr(plain)) < 0.1 and neighbour_corr(smooth) > 0.8
    with pytest.raises(ValueError, match="lowpass"):
        PreprocessParams(lowpass=-1.0)
    old = {k: v for k, v in PreprocessParams().to_dict().items() if k != "lowpass"}   # a model from before the key
    assert PreprocessParams.from_dict(old).lowpass == 0.0
    assert PreprocessParams.from_dict(PreprocessParams(lowpass=1.5).to_dict()).lowpass == 1.5


def test_background_subtraction_removes_gradients_and_keeps_particles():
    yy, xx = np.mgrid[0:200, 0:300].astype(np.float32)
    gradient = (0.05 * xx + 0.02 * yy + 10.0 * (yy > 150)).astype(np.float32)   # ice gradient and a carbon step
    blob = -5.0 * np.exp(-((xx - 100) ** 2 + (yy - 80) ** 2) / (2 * 4.0 ** 2))   # a particle, sigma 4 px
    flat = subtract_background(gradient, 32.0)
    assert np.abs(flat[40:90, 100:200]).max() < 0.05 * np.abs(gradient[40:90, 100:200]).max()  # 60 px from the step
    kept = subtract_background(gradient + blob, 32.0) - flat
    assert kept[80, 100] < -4.5 and abs(kept[80, 160]) < 0.05              # the particle stays, locally
    assert np.array_equal(subtract_background(gradient, 0.0), gradient)
    # in preprocess: an added gradient barely changes the network image (it would without the subtraction)
    noise = _noise((400, 600), seed=5)
    ramp = np.linspace(0.0, 3.0, 600, dtype=np.float32)[None, :] * np.ones((400, 1), np.float32)
    for highpass, most in ((16.0, 6.0), (0.0, None)):
        params = PreprocessParams(target_width=300, lowpass=1.0, highpass=highpass)
        a, _ = preprocess(noise, params)
        b, _ = preprocess(noise + ramp, params)
        change = np.abs(a.astype(int) - b.astype(int))[:, 40:-40].mean()
        assert change < most if most else change > 30
    assert PreprocessParams.from_dict(PreprocessParams(highpass=8.0).to_dict()).highpass == 8.0
    with pytest.raises(ValueError, match="highpass"):
        PreprocessParams(highpass=-2.0)


def test_target_width_is_respected():
    u8, tf = preprocess(_noise((1500, 2000)), PreprocessParams(target_width=512))
    assert u8.shape == (384, 512) and tf.scale_x == pytest.approx(2000 / 512)


def test_pad_to_multiple_pads_bottom_right_only():
    u8 = np.random.default_rng(0).integers(0, 256, size=(727, 1024)).astype(np.uint8)
    padded = pad_to_multiple(u8, 32)
    assert padded.shape == (736, 1024) and padded.dtype == np.uint8
    np.testing.assert_array_equal(padded[:727], u8)
    assert (padded[727:] == int(np.floor(u8.mean() + 0.5))).all()
    edge = pad_to_multiple(u8[:, :1000], 32, mode="edge")
    assert edge.shape == (736, 1024)
    np.testing.assert_array_equal(edge[:727, 1000:], np.repeat(u8[:, 999:1000], 24, axis=1))
    batch = pad_to_multiple(np.zeros((3, 33, 64), np.uint8))
    assert batch.shape == (3, 64, 64)
    same = np.zeros((64, 96), np.uint8)
    assert pad_to_multiple(same) is same


def test_network_input_is_u8_over_255():
    u8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    x = network_input(u8)
    assert x.dtype == np.float32 and x.shape == (16, 16)
    assert x[0, 0] == 0.0 and x[15, 15] == 1.0
    np.testing.assert_array_equal(x, u8.astype(np.float32) / np.float32(255))


def test_real_betagal_jpeg(betagal_dir):
    path = sorted(betagal_dir.glob("*.jpg"))[0]
    mic = read_micrograph(path)
    u8, tf = preprocess(mic.data)
    assert u8.shape == (1024, 1024) and tf.scale_x == tf.scale_y == 4.0
    flat = _coarse_flatness(u8)
    assert flat.min() > 0.6 and flat.max() < 1.4, flat
    again, _ = preprocess(mic.data)
    np.testing.assert_array_equal(u8, again)  # deterministic


def test_to_levels_saturates_infinite_and_huge_values():
    """+inf and 1e30 are brighter than the range: level 255, never wrapped round to 0."""
    from epick.runtime.preprocess import to_levels

    out = to_levels(np.array([[np.inf, 1e30, 1.0, -np.inf, -1e30]], np.float32), 0.0, 3.0)
    assert out.tolist() == [[255, 255, 85, 0, 0]]


def test_fixed_width_rescales_only_particles_above_max_particle_px_and_only_with_a_diameter():
    p = PreprocessParams(max_particle_px=64, rescale_px=32)
    assert p.rescales and not PreprocessParams().rescales
    assert p.network_shape((4096, 4096)) == (1024, 1024)                      # no diameter: the fixed width
    assert p.with_diameter(None) is p
    assert p.with_diameter(256).network_shape((4096, 4096)) == (1024, 1024)  # 64 px at 1024: kept
    # 300 px -> 75 px at 1024, above 64: resampled so they span 32 px (4096 * 32 / 300 = 437)
    assert p.with_diameter(300).network_shape((4096, 4096)) == (437, 437)
    # a 1024-px micrograph of 80-px particles: 80 px at its own width, resampled to 410 (never enlarged)
    assert p.with_diameter(80).network_shape((1024, 1024)) == (410, 410)
    assert p.with_diameter(20).network_shape((512, 512)) == (512, 512)
    assert PreprocessParams().with_diameter(300).network_shape((4096, 4096)) == (1024, 1024)  # off by default
    round_trip = PreprocessParams.from_dict(p.to_dict())
    assert round_trip == p and PreprocessParams.from_dict({"target_width": 1024}).max_particle_px == 0
    with pytest.raises(ValueError, match="go together"):
        PreprocessParams(max_particle_px=64)
