"""torch-CUDA backend: runs the export step's torch-GPU artifact (AOTInductor package or torch.export
program, FP16) with CUDA graphs. torch is imported only when this backend is asked for.

The package and its sidecar ``<artifact>.json`` are loaded by the export step's
``epick.export.torch_gpu.load_torch_gpu``; its interface is the ONNX one (float32 in, float32 out,
FP16 inside).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from .base import Backend, check_input_batch, device_batch_pointer, outputs_by_name
from .metadata import ArtifactMetadata

log = logging.getLogger("epick.runtime")

TORCH_GPU_SUFFIXES = (".pt2",)
_MAX_GRAPHS = 4   # input shapes whose CUDA graphs and static buffers stay alive
PACKAGE_MIN_SIDE = 64   # network pixels: torch.export's guard in packages whose sidecar predates min_side


def sidecar_min_side(sidecar: dict) -> int:
    """Smallest network input H and W a torch-GPU package accepts, from its sidecar (network pixels)."""
    facts = sidecar.get("torch_gpu") or {}
    return int(facts.get("min_side") or PACKAGE_MIN_SIDE)


def device_outputs(call, images, stream: int | None, names) -> dict:
    """Run ``call(x)`` on a device batch viewed as a torch CUDA tensor (zero-copy through
    ``__cuda_array_interface__``), enqueued on the raw CUDA stream ``stream`` (None: torch's current
    stream, synchronised before returning); float32 C-contiguous CUDA tensors by output name."""
    import torch

    x = torch.as_tensor(images, device="cuda")
    target = torch.cuda.ExternalStream(stream) if stream is not None else torch.cuda.current_stream()
    with torch.cuda.stream(target), torch.inference_mode():
        out = call(x)
        if not isinstance(out, dict):
            out = dict(zip(names or ("heatmap", "offset", "size"), out if isinstance(out, (tuple, list)) else [out]))
        out = {k: v.float().contiguous() for k, v in out.items() if v is not None}
    if "heatmap" not in out or "offset" not in out:
        raise ValueError(f"network outputs {sorted(out)} lack 'heatmap' and 'offset'")
    if stream is None:
        target.synchronize()
    return out


def torch_cuda_available() -> bool:
    """True when torch imports and sees a CUDA device (imports torch: call only when it may be used)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


class _GraphRunner:
    """A CUDA graph captured for one input shape, with static input/output tensors and pinned buffers."""

    def __init__(self, program, shape: tuple, names):
        import torch

        self.names = names
        self.host_in = torch.empty(shape, dtype=torch.float32).pin_memory()
        self.static_in = torch.zeros(shape, dtype=torch.float32, device="cuda")
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(2):   # warm-up outside the graph (allocations, autotuning)
                program(self.static_in)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.static_out = program(self.static_in)

    def replay(self, x):
        """Copy the device batch ``x`` into the static input and replay on the current stream; the
        static outputs (overwritten by the next replay)."""
        self.static_in.copy_(x)
        self.graph.replay()
        return self.static_out

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        self.host_in.numpy()[...] = images
        self.static_in.copy_(self.host_in.to("cuda", non_blocking=True))
        self.graph.replay()
        out = self.static_out
        values = out if isinstance(out, dict) else list(out if isinstance(out, (tuple, list)) else [out])
        torch.cuda.synchronize()
        if isinstance(values, dict):
            return outputs_by_name({k: v.float().cpu().numpy() for k, v in values.items()})
        return outputs_by_name([v.float().cpu().numpy() for v in values], self.names)


class TorchCudaBackend(Backend):
    """torch-GPU artifact on CUDA, one CUDA graph per input shape (eager when capture fails).

    Not thread-safe: graphs share static buffers. ``infer_device`` runs on device batches (the GPU
    picking path); the package accepts H and W from ``min_side`` (sidecar, 64) up.
    """

    thread_safe = False
    device_io = True

    def __init__(self, path: str | Path, *, cuda_graphs: bool = True):
        import torch

        path = Path(path)
        if not path.exists():
            raise ModelFileError(path, "torch-GPU artifact not found", "check the --model path")
        if not torch.cuda.is_available():
            raise ModelFileError(path, "the torch-GPU artifact needs CUDA, and torch sees no GPU",
                                 "pick with the ONNX file instead (--model MODEL.onnx)")
        from epick.export.torch_gpu import load_torch_gpu

        self.program, sidecar = load_torch_gpu(path)
        super().__init__(path, ArtifactMetadata.from_blob(sidecar, path))
        self.output_names = list(self.metadata.outputs)
        self.min_side = sidecar_min_side(sidecar)
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[tuple, _GraphRunner] = {}
        self.name = "torch-cuda"

    def _eager(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(images).pin_memory().to("cuda", non_blocking=True)
            out = self.program(x)
        if isinstance(out, dict):
            return outputs_by_name({k: v.float().cpu().numpy() for k, v in out.items()})
        out = out if isinstance(out, (tuple, list)) else [out]
        return outputs_by_name([v.float().cpu().numpy() for v in out], self.output_names)

    def _runner_for(self, shape: tuple) -> _GraphRunner | None:
        """The CUDA graph for this input shape (captured on first use), or None when running eagerly."""
        if self.cuda_graphs and shape not in self._graphs:
            try:
                if len(self._graphs) >= _MAX_GRAPHS:
                    self._graphs.pop(next(iter(self._graphs)))
                self._graphs[shape] = _GraphRunner(self.program, shape, self.output_names)
            except Exception as exc:  # capture is unsupported by some programs: run eagerly
                log.warning("CUDA graph capture failed for %s (%s); running eagerly", shape, exc)
                self.cuda_graphs = False
        return self._graphs.get(shape)

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run a float32 [N, 1, H, W] batch; replays the CUDA graph captured for this shape."""
        images = check_input_batch(images, self.path)
        runner = self._runner_for(tuple(images.shape))
        return runner(images) if runner is not None else self._eager(images)

    def infer_device(self, images, stream: int | None = None) -> dict:
        """Device float32 [N, 1, H, W] batch -> CUDA tensors by name (see ``Backend.infer_device``);
        graph outputs are static buffers, valid until the next call."""
        _, shape = device_batch_pointer(images, self.path)

        def call(x):
            runner = self._runner_for(shape)   # captured inside the stream context, on first use
            return runner.replay(x) if runner is not None else self.program(x)

        return device_outputs(call, images, stream, self.output_names)

    def close(self) -> None:
        """Drop graphs and the program (torch frees CUDA memory)."""
        self._graphs.clear()
        self.program = None
