"""The GPU picking path (epick.runtime.device_path) gives exactly the host path's picks.

Without a GPU the CUDA kernels run in numba's simulator (switched on before numba.cuda is first
imported, as in test_cuda_kernels.py), and the network is a stand-in "device" backend: the ONNX
Runtime CPU backend behind ``infer_device``, copying the simulator's device batch to the host and
the outputs back. The simulator runs every CUDA thread in Python, so the micrographs are tiny;
the sizes named in the task (1000x777, 64x2000) are in the slow test.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _models import make_onnx


from _cudasim import select_simulator_unless_gpu  # noqa: E402

select_simulator_unless_gpu()
from numba import cuda  # noqa: E402

if not cuda.is_available():
    pytest.skip("numba.cuda has neither a GPU nor the simulator in this process", allow_module_level=True)

from epick.runtime import Picker  # noqa: E402
from epick.runtime.backends.base import Backend, DeviceArrayView, device_batch_pointer  # noqa: E402
from epick.runtime.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from epick.runtime.device_path import RawPrepared, pad_network_image, padded_shape  # noqa: E402
from epick.runtime.errors import ModelFileError  # noqa: E402
from epick.runtime.preprocess import pad_to_multiple  # noqa: E402
from epick.simulator import simulate_micrograph  # noqa: E402


class StandInDeviceBackend(Backend):
    """ONNX Runtime (CPU) behind the device interface: device batch -> host -> ORT -> device outputs.

    ``min_side`` as a torch-GPU package declares it; ``shapes`` records every network input shape.
    """

    device_io = True
    thread_safe = False

    def __init__(self, inner: OnnxRuntimeBackend, min_side: int = 0):
        super().__init__(inner.path, inner.metadata)
        self.inner = inner
        self.min_side = min_side
        self.name = "stand-in-device"
        self.shapes: list[tuple] = []

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        self.shapes.append(("host",) + tuple(images.shape))
        return self.inner.infer(images)

    def infer_device(self, images, stream=None) -> dict:
        host = images.copy_to_host()
        self.shapes.append(("device",) + tuple(host.shape))
        return {name: cuda.to_device(value) for name, value in self.inner.infer(host).items()}


@pytest.fixture(scope="module")
def random_onnx(tmp_path_factory) -> Path:
    return make_onnx(tmp_path_factory.mktemp("dev") / "random.onnx", kind="random", target_width=64, seed=3)


def _as_dtype(image: np.ndarray, dtype) -> np.ndarray:
    """The simulated micrograph in ``dtype``: integers rescaled to most of their range."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return image.astype(dtype)
    info = np.iinfo(dtype)
    unit = (image - image.min()) / max(float(np.ptp(image)), 1e-12)
    return np.round(info.min + 0.05 * (info.max - info.min) + unit * 0.9 * (info.max - info.min)).astype(dtype)


def _micrograph(shape, dtype, seed) -> np.ndarray:
    return _as_dtype(simulate_micrograph(shape, seed=seed, n_particles=4).image, dtype)


def _pickers(onnx_path: Path, min_side: int):
    """(host picker, device picker, device backend) on the same model; low threshold: many picks."""
    host = Picker(StandInDeviceBackend(OnnxRuntimeBackend(onnx_path, device="cpu", threads=1), min_side),
                  threshold=0.2, device_path=False)
    backend = StandInDeviceBackend(OnnxRuntimeBackend(onnx_path, device="cpu", threads=1), min_side)
    device = Picker(backend, threshold=0.2, device_path=True)
    host.backend.shapes.clear()   # forget the interface probe each Picker runs once at load
    backend.shapes.clear()
    return host, device, backend


def _same_picks(a, b) -> None:
    assert a.micrograph == b.micrograph and a.shape == b.shape
    for name in ("x", "y", "score"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.radius is None) == (b.radius is None)


def _compare(host: Picker, device: Picker, groups: list[list[np.ndarray]]) -> int:
    """Run each group as one batch on both paths; picks must be identical. Returns the pick count."""
    total = 0
    for group in groups:
        host_items = [host._prepare(image) for image in group]
        dev_items = [device._prepare(image) for image in group]
        assert all(isinstance(it, RawPrepared) for it in dev_items)
        assert [it.shape for it in dev_items] == [it.shape for it in host_items]
        want = host._run_batch(host_items, keep_images=True)
        got = device._run_batch(dev_items, keep_images=True)
        for w, g in zip(want, got):
            assert w.ok and g.ok, (w.error, g.error)
            _same_picks(g.picks, w.picks)
            np.testing.assert_array_equal(g.image, w.image)   # the uint8 network image, unpadded
            total += len(w.picks)
    return total


def test_device_path_picks_equal_host_path_on_awkward_sizes_and_dtypes(random_onnx):
    a32 = _micrograph((50, 37), np.float32, seed=1)
    a16 = _as_dtype(a32, np.uint16)
    strip8 = _micrograph((20, 150), np.int8, seed=2)
    strip_half = _micrograph((20, 150), np.float16, seed=3)
    host, device, backend = _pickers(random_onnx, min_side=0)
    assert device.on_device and not host.on_device
    total = _compare(host, device, [[a32, a16], [strip8, strip_half]])
    assert total > 0   # the comparison covered real picks
    # the network saw the padded shapes: 50x37 -> 64x64; 20x150 -> 10x64 at target_width 64 -> 32x64
    assert backend.shapes == [("device", 2, 1, 64, 64), ("device", 2, 1, 32, 64)]


def test_min_side_pads_both_paths_the_same_and_batches_raw_shapes_together(random_onnx):
    a32 = _micrograph((50, 37), np.float32, seed=4)
    strip_half = _micrograph((20, 150), np.float16, seed=5)
    host, device, backend = _pickers(random_onnx, min_side=64)
    _compare(host, device, [[strip_half, a32]])   # both pad to 64x64: one batch, two raw shapes
    assert backend.shapes == [("device", 2, 1, 64, 64)]
    assert host.backend.shapes == [("host", 2, 1, 64, 64)]


def test_pick_and_pick_many_run_on_the_device_path(random_onnx, tmp_path):
    from epick.runtime.io.micrograph import write_mrc

    image = _micrograph((40, 70), np.float32, seed=6)
    path = write_mrc(tmp_path / "m.mrc", image, pixel_size=2.0)
    host, device, backend = _pickers(random_onnx, min_side=0)
    want = host.pick(image)
    _same_picks(device.pick(image), want)
    [result] = list(device.pick_many([path], batch_size=2))
    assert result.ok and result.name == "m.mrc" and result.picks.pixel_size == pytest.approx(2.0)
    np.testing.assert_array_equal(result.picks.x, want.x)
    assert all(s[0] == "device" for s in backend.shapes)


def test_device_path_refused_for_host_backend_and_off_by_default_without_gpu(random_onnx):
    with pytest.raises(ModelFileError, match="runs on the host"):
        Picker(random_onnx, backend="onnxruntime-cpu", device_path=True)
    with Picker(random_onnx, backend="onnxruntime-cpu") as picker:
        assert not picker.on_device
    from epick.cuda_kernels._device import SIMULATED

    backend = StandInDeviceBackend(OnnxRuntimeBackend(random_onnx, device="cpu"))
    assert Picker(backend).on_device is (not SIMULATED)   # auto: only on a real GPU, never the simulator


def test_device_path_applies_the_models_filters_like_the_host_path(tmp_path):
    filtered = make_onnx(tmp_path / "bandpass.onnx", kind="random", target_width=64, seed=3,
                         extra_meta={"preprocess": {"target_width": 64, "lowpass": 1.5, "highpass": 6.0}})
    host, device, _ = _pickers(filtered, min_side=0)
    assert (device.params.lowpass, device.params.highpass) == (1.5, 6.0) and device.on_device
    a32 = _micrograph((50, 37), np.float32, seed=1)
    assert _compare(host, device, [[a32, _as_dtype(a32, np.uint16)], [_micrograph((20, 150), np.int8, seed=2)]]) > 0


@pytest.mark.slow
def test_device_path_equals_host_path_on_the_task_sizes(random_onnx):
    big = _micrograph((1000, 777), np.float32, seed=7)
    strip = _micrograph((64, 2000), np.uint16, seed=8)
    host, device, _ = _pickers(random_onnx, min_side=0)
    assert _compare(host, device, [[big], [strip]]) > 0


# ------------------------------------------------------------------ padding geometry (no GPU work)
def test_padded_shape_rounds_to_32_and_to_min_side():
    assert padded_shape((50, 37)) == (64, 64)
    assert padded_shape((10, 64)) == (32, 64)
    assert padded_shape((10, 64), min_side=64) == (64, 64)
    assert padded_shape((100, 200), min_side=64) == (128, 224)
    assert padded_shape((10, 10), min_side=40) == (64, 64)   # min_side itself rounds up to 32


def test_pad_network_image_is_pad_to_multiple_grown_with_the_same_grey():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (10, 70), dtype=np.uint8)
    np.testing.assert_array_equal(pad_network_image(u8), pad_to_multiple(u8, 32))
    grown = pad_network_image(u8, min_side=64)
    assert grown.shape == (64, 96)
    np.testing.assert_array_equal(grown[:32], pad_to_multiple(u8, 32))
    grey = pad_to_multiple(u8, 32)[-1, -1]
    assert np.all(grown[32:] == grey) and grey == int(np.floor(u8.mean() + 0.5))
    square = np.zeros((64, 64), np.uint8)
    assert pad_network_image(square, min_side=64) is square


def test_host_picker_pads_to_backend_min_side(random_onnx):
    backend = StandInDeviceBackend(OnnxRuntimeBackend(random_onnx, device="cpu"), min_side=64)
    with Picker(backend, device_path=False) as picker:
        backend.shapes.clear()   # the interface probe at load
        picks = picker.pick(_micrograph((20, 150), np.float32, seed=9))
    assert backend.shapes == [("host", 1, 1, 64, 64)]   # 10x64 network image, 32x64 without min_side
    assert picks.shape == (20, 150)


def test_torch_gpu_min_side_comes_from_the_sidecar():
    from epick.runtime.backends.torch_cuda import sidecar_min_side

    assert sidecar_min_side({"torch_gpu": {"min_side": 64}}) == 64
    assert sidecar_min_side({"torch_gpu": {}}) == 64       # packages without the key: export's guard
    assert sidecar_min_side({"torch_gpu": {"min_side": 96}}) == 96


def test_device_batch_pointer_checks_the_contract():
    good = DeviceArrayView(1 << 20, (2, 1, 64, 32), np.float32)
    assert device_batch_pointer(good, "m") == (1 << 20, (2, 1, 64, 32))
    with pytest.raises(ValueError, match="float32"):
        device_batch_pointer(DeviceArrayView(1, (2, 1, 64, 32), np.float16), "m")
    with pytest.raises(ValueError, match="multiples of 32"):
        device_batch_pointer(DeviceArrayView(1, (2, 1, 60, 32), np.float32), "m")
    with pytest.raises(ValueError, match="device array"):
        device_batch_pointer(np.zeros((1, 1, 32, 32), np.float32), "m")


# ------------------------------------------------------------------ throughput plumbing (simulator)
def _write_mrc_as_is(path, image):
    """An MRC file in the image's own dtype (mrcfile writes integer modes and float16 as such)."""
    import mrcfile

    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(image)
    return path


def test_device_picker_reads_files_in_their_dtype_into_pinned_buffers(random_onnx, tmp_path):
    host, device, _ = _pickers(random_onnx, min_side=0)
    for i, dtype in enumerate([np.uint16, np.float16, np.int8, np.float32]):
        path = _write_mrc_as_is(tmp_path / f"m{i}.mrc", _micrograph((40, 70), dtype, seed=40 + i))
        item = device._prepare(path)
        assert item.raw.dtype == dtype and device._pipeline.host_buffers.is_pinned(item.raw)
        assert host._prepare(path).u8 is not None      # the host path still reads float32 (unchanged)


def test_pinned_pool_reuses_a_buffer_only_after_its_upload_event():
    from epick.runtime.device_path import PinnedPool

    class Event:
        def __init__(self):
            self.finished = False

        def query(self):
            return self.finished

    pool = PinnedPool(limit_bytes=3 * 40 * 70 * 2)
    a = pool.take((40, 70), np.uint16)
    done = Event()
    pool.give_back(a, done)
    b = pool.take((40, 70), np.uint16)
    assert b is not a and pool.allocated == 2                  # a's upload has not finished yet
    done.finished = True
    assert pool.take((40, 70), np.uint16) is a and pool.allocated == 2
    c = pool.take((40, 70), np.uint16)                           # the third fits the limit
    over = pool.take((40, 70), np.uint16)                        # beyond it: pageable, not from the pool
    assert pool.allocated == 3 and pool.is_pinned(c) and not pool.is_pinned(over) and over.shape == (40, 70)
    del c                                                        # a dropped buffer frees its share
    assert pool.is_pinned(pool.take((40, 70), np.uint16)) and pool.allocated == 4


@pytest.mark.slow
def test_files_keep_their_dtype_into_pinned_buffers_and_buffers_are_reused(random_onnx, tmp_path):
    """pick_many on MRC files of uint16, float16 and int8 through the device path: the readers keep
    the file's dtype (no float32 copy) in pinned buffers from the pool, the second pass rotates the
    uploader's 3 slots onto used ones, and it allocates nothing new."""
    files = []
    for i, dtype in enumerate([np.uint16, np.float16, np.int8]):
        image = _micrograph((40, 70), dtype, seed=20 + i)
        files.append(_write_mrc_as_is(tmp_path / f"m{i}.mrc", image))
    host, device, backend = _pickers(random_onnx, min_side=0)
    seen = []
    real_prepare = device._pipeline.prepare

    def spy(data, *args):
        seen.append((data.dtype.name, device._pipeline.host_buffers.is_pinned(data)))
        return real_prepare(data, *args)

    device._pipeline.prepare = spy
    want = {r.name: r.picks for r in host.pick_many(files, batch_size=3, readers=1)}
    for attempt in range(2):
        got = {r.name: r for r in device.pick_many(files, batch_size=3, readers=1)}
        assert all(r.ok for r in got.values()), [r.error for r in got.values()]
        for name, picks in want.items():
            _same_picks(got[name].picks, picks)
        if attempt == 0:
            pool, allocated = device._pipeline.host_buffers, device._pipeline.host_buffers.allocated
            device_allocations = device._pipeline.preprocessor._pool.allocations
    assert sorted(set(seen)) == [("float16", True), ("int8", True), ("uint16", True)]
    assert pool.allocated == allocated <= 3                      # the second pass reused the pinned buffers
    assert device._pipeline.preprocessor._pool.allocations == device_allocations
    assert [s[0] for s in backend.shapes] == ["device", "device"]


def test_float16_file_with_nan_is_repaired_as_on_the_host(tmp_path):
    from epick.runtime.io.micrograph import read_micrograph, write_mrc

    image = _micrograph((30, 20), np.float16, seed=30)
    image[3, 4] = np.nan
    path = write_mrc(tmp_path / "nan.mrc", image)
    kept = read_micrograph(path, keep_dtype=True)
    host = read_micrograph(path)
    assert kept.data.dtype == np.float32 and kept.n_nonfinite == 1
    np.testing.assert_array_equal(kept.data, host.data)
    clean = write_mrc(tmp_path / "clean.mrc", _micrograph((30, 20), np.float16, seed=31))
    assert read_micrograph(clean, keep_dtype=True).data.dtype == np.float16
    assert read_micrograph(clean).data.dtype == np.float32


def test_pick_many_keeps_two_device_batches_in_flight_and_a_failed_one_is_retried(random_onnx):
    """Two batches of two: the second is submitted before the first is collected; picks equal the
    host path's. A batch whose network call fails is rerun item by item."""
    images = [_micrograph((30, 50), np.float32, seed=50 + i) for i in range(4)]
    host, device, backend = _pickers(random_onnx, min_side=0)
    want = [host.pick(im) for im in images]
    order = []
    real_submit, real_collect = device._pipeline.submit, device._pipeline.collect
    device._pipeline.submit = lambda items, *a: (order.append("submit"), real_submit(items, *a))[1]
    device._pipeline.collect = lambda b: (order.append("collect"), real_collect(b))[1]
    got = list(device.pick_many(images, batch_size=2, readers=1))
    assert order == ["submit", "submit", "collect", "collect"]
    assert len(got) == 4 and all(r.ok for r in got)
    for result in got:
        match = [w for w in want if np.array_equal(w.x, result.picks.x) and np.array_equal(w.score, result.picks.score)]
        assert match, "a device result differs from every host result"
    calls = {"n": 0}
    real_infer = backend.infer_device

    def flaky(batch, stream=None):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA error: an illegal memory access")
        return real_infer(batch, stream)

    backend.infer_device = flaky
    again = list(device.pick_many(images[:2], batch_size=2, readers=1))
    assert len(again) == 2 and all(r.ok for r in again) and calls["n"] == 3   # 1 failed + 2 retries
