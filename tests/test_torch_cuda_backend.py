"""The torch-CUDA backend's graph logic on a CPU: the AOTInductor loader's arguments, static buffers
that survive a device-path capture followed by a host call, and graphs reused for partial batches.

No GPU here: ``CpuGraphs`` stands in for ``CudaGraphs`` (same members; "capture" records the call and
"replay" reruns it into the static outputs, as a CUDA graph replay writes them), and a fake
``aoti_load_package`` records how the package is loaded. What only hardware shows (a real capture of
the .pt2 across shapes and streams) is in test_gpu_hardware.py.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from epick.runtime.backends import torch_cuda  # noqa: E402
from epick.runtime.backends.torch_cuda import TorchCudaBackend, _GraphRunner  # noqa: E402


class CpuGraphs:
    """CPU stand-in for ``torch_cuda.CudaGraphs``: counts captures; replay reruns the captured call."""

    device = "cpu"

    def __init__(self):
        self.captured: list[tuple] = []

    def pinned(self, shape):
        return torch.empty(shape, dtype=torch.float32)

    def capture(self, fn):
        for _ in range(2):
            fn()
        out = fn()
        self.captured.append(tuple(out[0].shape))

        def replay():
            with torch.no_grad():
                for static, new in zip(out, fn()):
                    static.copy_(new)
        return replay, out

    def synchronize(self):
        pass


def program(x):
    """A stand-in network: stride-4 heatmap logits and offsets that depend on every batch row."""
    pooled = torch.nn.functional.avg_pool2d(x, 4)
    return pooled * 8.0 - 2.0, torch.cat([pooled, 1.0 - pooled], dim=1)


def batch(n, h=64, w=64, seed=0):
    return np.random.default_rng(seed).random((n, 1, h, w)).astype(np.float32)


def reference(images):
    heat, off = program(torch.from_numpy(images))
    return heat.numpy(), off.numpy()


def test_host_infer_after_a_capture_inside_inference_mode():
    """The device path captures its first graph inside torch.inference_mode (infer_device); the
    static input must stay a normal tensor so a later host infer() of the same shape can copy into it."""
    graphs = CpuGraphs()
    x = batch(2)
    with torch.inference_mode():                     # what device_outputs wraps around the first call
        runner = _GraphRunner(program, x.shape, ["heatmap", "offset"], graphs)
        runner.replay(torch.from_numpy(x))
    assert not runner.static_in.is_inference()
    y = batch(2, seed=1)
    out = runner(y)                                  # raised "Inplace update to inference tensor" before
    np.testing.assert_array_equal(out["heatmap"], reference(y)[0])
    np.testing.assert_array_equal(out["offset"], reference(y)[1])


@pytest.fixture
def backend(tmp_path, monkeypatch):
    """A TorchCudaBackend on a fake package: the loader records its keyword arguments."""
    from epick.runtime.artifact import build_artifact_metadata

    calls = []

    def fake_load(path, **kwargs):
        calls.append(kwargs)
        return program

    monkeypatch.setattr(torch._inductor, "aoti_load_package", fake_load)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    path = tmp_path / "m.pt2"
    path.write_bytes(b"package")
    side = build_artifact_metadata({"object_type": "particle", "preprocess": {}}, "sha256:abc", ["heatmap", "offset"])
    side["torch_gpu"] = {"min_side": 64}
    path.with_name("m.pt2.json").write_text(json.dumps(side))
    graphs = CpuGraphs()
    made = TorchCudaBackend(path, graphs=graphs)
    made.load_calls, made.stand_in = calls, graphs
    return made


def test_package_is_loaded_single_threaded_for_graph_capture(backend):
    """The default AOTI runner queries a CUDA event inside run(), illegal during capture."""
    assert backend.load_calls == [{"run_single_threaded": True, "device_index": -1}]
    assert backend.min_side == 64 and backend.cuda_graphs


def test_partial_batch_replays_the_full_batch_graph(backend):
    for n, seed in ((4, 0), (2, 1), (4, 2), (1, 3)):      # a run of batch 4 ending on partial batches
        x = batch(n, seed=seed)
        out = backend.infer(x)
        assert out["heatmap"].shape == (n, 1, 16, 16)
        np.testing.assert_array_equal(out["heatmap"], reference(x)[0])
        np.testing.assert_array_equal(out["offset"], reference(x)[1])
    assert backend.stand_in.captured == [(4, 1, 16, 16)]  # captured once, never for the partial batches
    backend.infer(batch(2, 64, 96))                        # another shape: its own graph
    backend.infer(batch(6, seed=4))                         # a larger batch of the first shape: recaptured
    assert backend.stand_in.captured == [(4, 1, 16, 16), (2, 1, 16, 24), (6, 1, 16, 16)]
    assert sorted(backend._graphs) == [(1, 64, 64), (1, 64, 96)]


def test_failed_capture_falls_back_to_eager_with_a_warning(backend, caplog):
    def refuse(fn):
        raise RuntimeError("operation not permitted when stream is capturing")

    backend.graphs.capture = refuse
    x = batch(3)
    with caplog.at_level("WARNING", logger="epick.runtime"):
        out = backend.infer(x)
    np.testing.assert_array_equal(out["heatmap"], reference(x)[0])
    assert not backend.cuda_graphs and "capture failed" in caplog.text
