"""What only a GPU shows (all marked ``gpu``; skipped with the reason on machines without one).

- the kernels give the CPU's bits at real micrograph sizes: 4096 x 4096 float32 (with NaN and a hot
  pixel), 5760 x 4092 uint16, float16, int8; peak extraction on 1024 x 1024-cell heatmaps;
- the device path with a real torch model sharing the numba stream equals the host path, bit for bit;
- the torch-GPU ``.pt2`` under CUDA graphs across two shapes and a partial batch, on the device
  path's stream, then a host call of a shape first captured there (the AOTI and inference-tensor
  failures of issue 10).

Run on a GPU machine (``bash tools/device_check.sh`` runs them with the rest): ``python -m pytest -m gpu
tests/test_gpu_hardware.py``. ``EPICK_GPU_TESTS_SMALL=1 NUMBA_ENABLE_CUDASIM=1`` runs the kernel and
device-path plumbing on tiny sizes in the simulator (a dry run of this file, no figures).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from _cudasim import select_simulator_unless_gpu

pytestmark = pytest.mark.gpu
SMALL = os.environ.get("EPICK_GPU_TESTS_SMALL") == "1"

select_simulator_unless_gpu()
from numba import cuda  # noqa: E402

from epick.cuda_kernels._device import SIMULATED  # noqa: E402

if not cuda.is_available() or (SIMULATED and not SMALL):
    pytest.skip("needs a CUDA GPU: numba.cuda runs the CPU simulator here (EPICK_GPU_TESTS_SMALL=1 "
                "dry-runs the kernel checks on tiny sizes in it)", allow_module_level=True)

from epick.cuda_kernels import GpuPeakFinder, GpuPreprocessor  # noqa: E402
from epick.runtime import preprocess as P  # noqa: E402
from epick.runtime.peaks import find_peaks  # noqa: E402


def shrink(shape):
    return (67, 45) if SMALL else shape


def micrograph(shape, dtype, seed: int) -> np.ndarray:
    """Noise of a real detector's range in ``dtype``; float32 with NaN, +inf and a hot pixel."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        image = rng.normal(100.0 if dtype == np.float32 else 0.0, 12.0 if dtype == np.float32 else 1.0, shape)
        image = image.astype(dtype)
        if dtype == np.float32:
            image[rng.random(shape) < 1e-5] = np.nan
            image[3, 5], image[7, 2] = 1e6, np.inf       # a hot pixel forces a second histogram round
        return image
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -3000), min(info.max, 61000), shape).astype(dtype)


@pytest.mark.parametrize("shape,dtype", [((4096, 4096), np.float32), ((4092, 5760), np.uint16),
                                         ((4096, 4096), np.float16), ((4096, 4096), np.int8)])
def test_preprocessing_equals_cpu_at_real_sizes(shape, dtype):
    image = micrograph(shrink(shape), dtype, seed=11)
    params = P.PreprocessParams()
    gpu_u8, gpu_t = GpuPreprocessor(params).preprocess(image)
    cpu_u8, cpu_t = P.preprocess(image, params)
    assert gpu_t == cpu_t
    assert np.array_equal(gpu_u8, cpu_u8), f"{int((gpu_u8 != cpu_u8).sum())} of {cpu_u8.size} pixels differ"


@pytest.mark.parametrize("cells,threshold", [(1024, 0.3), (1024, 0.05)])
def test_peaks_equal_cpu_on_1024_cell_heatmaps(cells, threshold):
    cells = 40 if SMALL else cells
    rng = np.random.default_rng(cells + int(threshold * 100))
    logits = rng.normal(-1.0, 1.5, (cells, cells)).astype(np.float32)
    logits[rng.random(logits.shape) < 0.02] = 0.75    # ties
    offset = rng.random((2, cells, cells)).astype(np.float32)
    gpu = GpuPeakFinder(threshold=threshold, top_k=2000).find(cuda.to_device(logits), cuda.to_device(offset))
    cpu = find_peaks(logits, offset, threshold=threshold, top_k=2000)
    assert len(cpu) > 100 or SMALL
    for name in ("index", "x", "y", "score"):
        np.testing.assert_array_equal(getattr(gpu, name), getattr(cpu, name), err_msg=name)


# ------------------------------------------------------------------ torch on the GPU
def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device here")
    return torch


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from _models import make_model_file

    return make_model_file(tmp_path_factory.mktemp("gpu") / "narrow.epick")


def test_device_path_with_a_torch_model_on_the_shared_stream_equals_host_path(model_file):
    torch = _torch_cuda()
    from epick.runtime import Picker
    from epick.trainer.backend import TorchModelBackend

    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    backend = TorchModelBackend(model_file, device="cuda")
    host = Picker(backend, threshold=0.2, device_path=False)
    device = Picker(backend, threshold=0.2, device_path=True)
    assert device.on_device
    groups = [[micrograph(shrink((4096, 4096)), np.float32, s) for s in (1, 2)],
              [micrograph(shrink((4092, 5760)), np.uint16, s) for s in (3, 4, 5)]]
    total = 0
    for group in groups:
        want = host._run_batch([host._prepare(im) for im in group], keep_images=True)
        got = device._run_batch([device._prepare(im) for im in group], keep_images=True)
        for w, g in zip(want, got):
            assert w.ok and g.ok, (w.error, g.error)
            np.testing.assert_array_equal(g.image, w.image)
            for name in ("x", "y", "score"):
                np.testing.assert_array_equal(getattr(g.picks, name), getattr(w.picks, name), err_msg=name)
            total += len(w.picks)
    assert total > 0


@pytest.fixture(scope="module")
def package(model_file, tmp_path_factory):
    """The FP16 .pt2 of the narrow model (compiled once for the module: a minute or two)."""
    _torch_cuda()
    from epick.export.model_source import load_for_export
    from epick.export.torch_gpu import export_torch_gpu

    graph, meta = load_for_export(model_file)
    return export_torch_gpu(graph.network, tmp_path_factory.mktemp("pt2") / "m.pt2", meta, device="cuda", fp16=True)


def test_pt2_cuda_graphs_across_two_shapes_and_a_partial_batch(package, caplog):
    torch = _torch_cuda()
    from epick.export.parity import random_network_batch
    from epick.runtime.backends.torch_cuda import TorchCudaBackend
    from epick.runtime.device_path import stream_handle

    backend = TorchCudaBackend(package)
    eager = torch._inductor.aoti_load_package(str(package))

    def reference(x):
        with torch.inference_mode():
            out = eager(torch.from_numpy(x).cuda())
        return [v.float().cpu().numpy() for v in out]

    a, b = random_network_batch((4, 1, 256, 256)), random_network_batch((2, 1, 256, 320), seed=1)
    partial = a[:3].copy()
    with caplog.at_level("WARNING", logger="epick.runtime"):
        for x in (a, b, partial, a):
            out = backend.infer(x)
            want = reference(x)
            np.testing.assert_allclose(out["heatmap"], want[0], atol=2e-2)   # graph replay vs eager, FP16
            np.testing.assert_allclose(out["offset"], want[1], atol=2e-2)
    assert backend.cuda_graphs and "capture failed" not in caplog.text
    assert sorted(backend._graphs) == [(1, 256, 256), (1, 256, 320)]          # the partial batch reused a graph
    # the device path's numba stream, a shape first captured there, then a host call of that shape
    stream = cuda.stream()
    x = random_network_batch((2, 1, 320, 256), seed=2)
    out = backend.infer_device(cuda.to_device(x, stream=stream), stream=stream_handle(stream))
    heat = cuda.as_cuda_array(out["heatmap"]).copy_to_host(stream=stream)
    stream.synchronize()
    np.testing.assert_allclose(heat, reference(x)[0], atol=2e-2)
    np.testing.assert_array_equal(backend.infer(x)["heatmap"], heat)         # same graph, same bits
    assert backend.cuda_graphs
    backend.close()
