"""GPU kernels (epick.cuda_kernels) against the CPU implementation, bit for bit.

How the kernels run here: on a machine with an NVIDIA GPU they run on it. Without one, this
module switches numba.cuda to the CPU simulator BEFORE numba.cuda is first imported, by setting
NUMBA_ENABLE_CUDASIM=1 and reloading numba's config (numba reads the variable at import). The
variable stays set for the rest of the pytest process, so any later numba.cuda import in the same
run also gets the simulator; nothing else in epick uses numba.cuda, and CPU numba is unaffected.
If numba.cuda was already imported for real without a GPU, the module is skipped; run it alone
(or with NUMBA_ENABLE_CUDASIM=1 in the environment) to test the kernels.

Sizes are small (the simulator runs every CUDA thread as Python): 37x53-ish images, a few larger
cases marked slow.
"""
from __future__ import annotations

import os

import numpy as np
import pytest


from _cudasim import select_simulator_unless_gpu  # noqa: E402

select_simulator_unless_gpu()
from numba import cuda  # noqa: E402

if not cuda.is_available():
    pytest.skip("numba.cuda has neither a GPU nor the simulator in this process", allow_module_level=True)

from epick.cuda_kernels import GpuPeakFinder, GpuPreprocessor  # noqa: E402
from epick.cuda_kernels import preprocess_kernels as pk  # noqa: E402
from epick.cuda_kernels._device import SIMULATED, grid_2d  # noqa: E402
from epick.runtime import preprocess as P  # noqa: E402
from epick.runtime.peaks import find_peaks, find_peaks_batch  # noqa: E402


def same_peaks(gpu, cpu) -> None:
    assert len(gpu) == len(cpu)
    assert np.array_equal(gpu.index, cpu.index)
    assert np.array_equal(gpu.x, cpu.x) and np.array_equal(gpu.y, cpu.y)
    assert np.array_equal(gpu.score, cpu.score)
    assert (gpu.size is None) == (cpu.size is None)
    if cpu.size is not None:
        assert np.array_equal(gpu.size, cpu.size)


def heat_case(rng, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    heat = rng.normal(-1.0, 1.5, (h, w)).astype(np.float32)
    heat[rng.random((h, w)) < 0.08] = 0.75  # plateaus of ties
    heat[rng.random((h, w)) < 0.03] = np.nan
    off = rng.random((2, h, w)).astype(np.float32)
    size = (rng.random((2, h, w)) * 30).astype(np.float32)
    return heat, off, size


# ---------------------------------------------------------------- peaks
def test_peaks_equal_cpu_on_awkward_heatmap_with_ties_and_nan():
    heat, off, size = heat_case(np.random.default_rng(3), 37, 53)
    assert len(find_peaks(heat, off, threshold=0.3)) > 40  # many peaks and ties: top-K order matters
    for top_k in (2000, 17):
        gpu = GpuPeakFinder(threshold=0.3, top_k=top_k).find(heat, off, size)
        same_peaks(gpu, find_peaks(heat, off, size, threshold=0.3, top_k=top_k))


def test_peaks_batch_equal_cpu_and_buffers_are_reused():
    rng = np.random.default_rng(5)
    cases = [heat_case(rng, 19, 21) for _ in range(3)]
    heat = np.stack([c[0] for c in cases])[:, None]
    off = np.stack([c[1] for c in cases])
    finder = GpuPeakFinder(threshold=0.4, top_k=25)
    for _ in range(2):  # second call reuses the pooled buffers (counter must be reset)
        gpu = finder.find_batch(heat, off)
        for g, c in zip(gpu, find_peaks_batch(heat, off, threshold=0.4, top_k=25)):
            same_peaks(g, c)


def test_peaks_constant_and_one_row_heatmaps():
    const = np.full((5, 7), 0.9, np.float32)
    off = np.zeros((2, 5, 7), np.float32)
    gpu = GpuPeakFinder(threshold=0.3).find(const, off)
    assert list(gpu.index) == list(range(35))
    same_peaks(gpu, find_peaks(const, off, threshold=0.3))
    row = np.random.default_rng(2).normal(0, 2, (1, 61)).astype(np.float32)
    off1 = np.random.default_rng(4).random((2, 1, 61)).astype(np.float32)
    same_peaks(GpuPeakFinder(threshold=0.2, top_k=9).find(row, off1),
               find_peaks(row, off1, threshold=0.2, top_k=9))


def test_peaks_nothing_found():
    heat = np.full((6, 9), -5.0, np.float32)
    off = np.zeros((2, 6, 9), np.float32)
    assert len(GpuPeakFinder(threshold=0.3).find(heat, off)) == 0
    assert len(GpuPeakFinder(threshold=0.0, top_k=0).find(heat, off)) == 0


def test_peaks_from_device_arrays():
    heat, off, size = heat_case(np.random.default_rng(8), 23, 29)
    gpu = GpuPeakFinder(threshold=0.3, top_k=50).find(cuda.to_device(heat), cuda.to_device(off), cuda.to_device(size))
    same_peaks(gpu, find_peaks(heat, off, size, threshold=0.3, top_k=50))


# ---------------------------------------------------------------- preprocessing, step by step
def micrograph(rng, shape, dtype) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return rng.normal(100.0, 12.0, shape).astype(dtype)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -100), min(info.max, 3000)
    return rng.integers(lo, hi, shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8, np.uint16])
def test_downsample_exact_for_each_input_dtype(dtype):
    rng = np.random.default_rng(11)
    image = micrograph(rng, (37, 53), dtype)
    if np.dtype(dtype).kind == "f":
        image[5, 7] = np.nan
        image[20, 30:33] = np.inf
        image[30:32, 40:43] = np.nan  # a whole output pixel without finite input -> NaN
    gpu = GpuPreprocessor(P.PreprocessParams(target_width=23))
    shape = P.network_shape(image.shape, 23)
    got = gpu.downsample(cuda.to_device(image), shape).copy_to_host()
    want = P.downsample(image, shape)
    assert got.dtype == np.float32 and np.array_equal(got, want, equal_nan=True)


def range_cases(rng):
    clean = rng.normal(0.0, 1.0, (29, 31)).astype(np.float32)
    hot = clean.copy()
    hot[3, 4] = 1e6
    nan = clean.copy()
    nan[::7, ::5] = np.nan
    constant = np.full((9, 13), 3.5, np.float32)
    near_constant = constant + np.float32(1e-7) * rng.random((9, 13)).astype(np.float32)
    near_constant[0, :2] = (0.0, 9.0)  # two outliers: falls back to (min, max)
    all_nan = np.full((3, 4), np.nan, np.float32)
    return clean, hot, nan, constant, near_constant, all_nan


@pytest.mark.parametrize("params", [P.PreprocessParams(), pytest.param(
    P.PreprocessParams(hist_bins=5000, clip_low=0.01, clip_high=0.98), marks=pytest.mark.slow)])
def test_grey_range_on_the_device_equals_cpu_without_host_round_trips(params):
    """k_range_start + rounds of k_histogram_dev/k_range_step: refine_range's decisions and bits,
    the result left on the device; the hot pixel takes extra rounds, constant images none."""
    from epick.cuda_kernels.preprocess_kernels import RS_CONSTANT, RS_HI, RS_LO

    gpu = GpuPreprocessor(params)
    for k, image in enumerate(range_cases(np.random.default_rng(12))):
        device_image = cuda.to_device(image)
        state_dev = gpu.grey_range(device_image)
        state = state_dev.copy_to_host()
        want = P.robust_range(image, params.clip_low, params.clip_high, params.hist_bins)
        got = None if state[RS_CONSTANT] else (float(state[RS_LO]), float(state[RS_HI]))
        assert got == want
        if params.hist_bins == 4096 and k in (1, 3):    # hot pixel, constant: levels from the state
            u8, _ = gpu.levels_on_device(device_image, state_dev)
            assert np.array_equal(u8.copy_to_host(), P.equalise(P.to_levels(image, *(want or (None, None)))))


def test_robust_range_equals_cpu_clean_hot_nan_constant_and_many_bins():
    for params in (P.PreprocessParams(), P.PreprocessParams(hist_bins=5000, clip_low=0.01, clip_high=0.98)):
        gpu = GpuPreprocessor(params)
        for image in range_cases(np.random.default_rng(12)):
            got = gpu.robust_range(cuda.to_device(image))
            want = P.robust_range(image, params.clip_low, params.clip_high, params.hist_bins)
            assert got == want


def test_levels_and_equalisation_equal_cpu():
    rng = np.random.default_rng(13)
    small = rng.gamma(2.0, 10.0, (37, 53)).astype(np.float32)
    small[2, 2] = np.nan
    lo, hi = 5.0, 40.0
    for equalise in (True, False):
        gpu = GpuPreprocessor(P.PreprocessParams(equalise=equalise))
        u8, _ = gpu.levels(cuda.to_device(small), (lo, hi))
        want = P.to_levels(small, lo, hi)
        if equalise:
            want = P.equalise(want)
        assert np.array_equal(u8.copy_to_host(), want)


def test_to_levels_clips_infinite_and_huge_values_to_white():
    image = np.array([[np.inf, -np.inf, 1e30, -1e30, np.nan, 1.0]], np.float32)
    out = cuda.device_array(image.shape, np.uint8)
    grid, block = grid_2d(*image.shape)
    pk.k_to_levels[grid, block](cuda.to_device(image), 0.0, 255.0 / 3.0, out)
    assert out.copy_to_host().tolist() == [[255, 0, 255, 0, 128, 85]]


@pytest.mark.parametrize("mode", ["mean", "edge"])
def test_network_input_is_padded_like_pad_to_multiple(mode):
    rng = np.random.default_rng(14)
    image = micrograph(rng, (37, 53), np.float32)
    params = P.PreprocessParams(target_width=45)
    gpu = GpuPreprocessor(params, pad_multiple=16, pad_mode=mode)
    result = gpu.run(image)
    u8, transform = P.preprocess(image, params)
    want = P.network_input(P.pad_to_multiple(u8, 16, mode=mode))
    got = result.network_input.copy_to_host()
    assert got.shape == (1, 1) + want.shape and np.array_equal(got[0, 0], want)
    assert result.transform == transform


# ---------------------------------------------------------------- preprocessing, whole
@pytest.mark.parametrize("case", ["float32_nan_hot", "uint16", "int8_no_downsample", "constant", "one_row",
                                  "lowpass_nan", "lowpass_int8_no_downsample", "lowpass_one_row",
                                  "bandpass_nan", "bandpass_uint16", "highpass_constant"])
def test_preprocess_equals_cpu(case):
    rng = np.random.default_rng(15)
    params = P.PreprocessParams(target_width=23, lowpass=1.5 if case.startswith(("lowpass", "bandpass")) else 0.0,
                                highpass=4.0 if case.startswith(("highpass", "bandpass")) else 0.0)
    case = case.split("pass_")[-1]
    if case == "nan":
        case = "float32_nan_hot"
    if case == "float32_nan_hot":
        image = micrograph(rng, (37, 53), np.float32)
        image[4, 4] = np.nan
        image[10, 11] = 5e4
    elif case == "uint16":
        image = micrograph(rng, (41, 47), np.uint16)
    elif case == "int8_no_downsample":
        image = micrograph(rng, (13, 19), np.int8)
    elif case == "constant":
        image = np.full((37, 53), 7.25, np.float32)
    else:
        image = micrograph(rng, (1, 53), np.float32)
    gpu_u8, gpu_t = GpuPreprocessor(params).preprocess(image)
    cpu_u8, cpu_t = P.preprocess(image, params)
    assert gpu_t == cpu_t
    assert gpu_u8.dtype == np.uint8 and np.array_equal(gpu_u8, cpu_u8)


def test_preprocess_reuses_buffers_and_accepts_device_input():
    rng = np.random.default_rng(16)
    params = P.PreprocessParams(target_width=23)
    gpu = GpuPreprocessor(params)
    for _ in range(2):
        image = micrograph(rng, (37, 53), np.float32)
        assert np.array_equal(gpu.preprocess(cuda.to_device(image))[0], P.preprocess(image, params)[0])


@pytest.mark.slow
def test_preprocess_and_peaks_larger_cases():
    rng = np.random.default_rng(17)
    image = micrograph(rng, (211, 301), np.float32)
    image[rng.random(image.shape) < 0.001] = np.nan
    params = P.PreprocessParams(target_width=128)
    assert np.array_equal(GpuPreprocessor(params).preprocess(image)[0], P.preprocess(image, params)[0])
    heat, off, size = heat_case(rng, 96, 128)
    same_peaks(GpuPeakFinder(top_k=300).find(heat, off, size), find_peaks(heat, off, size, top_k=300))


def test_simulator_flag_matches_the_environment():
    assert SIMULATED == (os.environ.get("NUMBA_ENABLE_CUDASIM") == "1")
