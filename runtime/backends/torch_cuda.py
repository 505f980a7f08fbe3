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
from .base import Backend, check_input_batch, outputs_by_name
from .metadata import ArtifactMetadata

log = logging.getLogger("epick.runtime")

TORCH_GPU_SUFFIXES = (".pt2",)
_MAX_GRAPHS = 4   # input shapes whose CUDA graphs and static buffers stay alive


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

    Not thread-safe: graphs share static buffers.
    """

    thread_safe = False

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

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run a float32 [N, 1, H, W] batch; replays the CUDA graph captured for this shape."""
        images = check_input_batch(images, self.path)
        shape = tuple(images.shape)
        if self.cuda_graphs and shape not in self._graphs:
            try:
                if len(self._graphs) >= _MAX_GRAPHS:
                    self._graphs.pop(next(iter(self._graphs)))
                self._graphs[shape] = _GraphRunner(self.program, shape, self.output_names)
            except Exception as exc:  # capture is unsupported by some programs: run eagerly
                log.warning("CUDA graph capture failed for %s (%s); running eagerly", shape, exc)
                self.cuda_graphs = False
        runner = self._graphs.get(shape)
        return runner(images) if runner is not None else self._eager(images)

    def close(self) -> None:
        """Drop graphs and the program (torch frees CUDA memory)."""
        self._graphs.clear()
        self.program = None
