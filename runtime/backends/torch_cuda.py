"""torch-CUDA backend: runs the export step's torch-GPU artifact (AOTInductor package or torch.export
program, FP16) with CUDA graphs. torch is imported only when this backend is asked for.

The package (written by ``epick.export.torch_gpu``) and its sidecar ``<artifact>.json`` are loaded
by ``load_torch_gpu``; its interface is the ONNX one (float32 in, float32 out, FP16 inside).
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
_MAX_GRAPHS = 4   # network input (H, W) whose CUDA graphs and static buffers stay alive
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



def load_torch_gpu(path: str | Path, device_index: int = -1, *, run_single_threaded: bool = False):
    """Load a ``.pt2`` package and its checked sidecar: ``(callable image -> outputs, sidecar dict)``.

    ``run_single_threaded=True`` loads the runner that CUDA graphs can capture (no event query inside
    ``run``); it must then be called from one thread at a time.
    """
    import torch

    from ..artifact import read_sidecar

    sidecar = read_sidecar(path)
    try:
        runner = torch._inductor.aoti_load_package(str(path), run_single_threaded=run_single_threaded,
                                                   device_index=device_index)
    except Exception as exc:  # torch raises RuntimeError / ValueError kinds from C++
        facts = sidecar.get("torch_gpu", {})
        raise ModelFileError(path, f"torch cannot load this package ({exc}); it was built with torch "
                             f"{facts.get('torch_version')} for {facts.get('device')}",
                             "rebuild it here: epick export MODEL --torch-gpu OUT.pt2") from exc
    return runner, sidecar


class CudaGraphs:
    """How ``_GraphRunner`` allocates, captures and synchronises on CUDA (tests pass a CPU stand-in
    with the same four members to run the runner's logic without a GPU)."""

    device = "cuda"

    def pinned(self, shape: tuple):
        """A pinned host float32 tensor of ``shape``."""
        import torch

        return torch.empty(shape, dtype=torch.float32).pin_memory()

    def capture(self, fn):
        """Warm ``fn`` up twice on a side stream (allocations, autotuning), then capture one call in a
        CUDA graph; ``(replay, outputs of the captured call)``."""
        import torch

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()
        return graph.replay, out

    def synchronize(self) -> None:
        """Wait for all queued GPU work."""
        import torch

        torch.cuda.synchronize()


class _GraphRunner:
    """A CUDA graph captured for one input shape, with static input/output tensors and a pinned buffer.

    The static tensors are made outside inference mode even when the first call comes from
    ``infer_device`` (which runs inside ``torch.inference_mode``): an inference tensor as static
    input would make a later host ``infer`` of the same shape fail ("Inplace update to inference
    tensor outside InferenceMode"). Capture runs under ``no_grad``, which is all the program needs.
    """

    def __init__(self, program, shape: tuple, names, graphs: CudaGraphs | None = None):
        import torch

        self.names = names
        self.graphs = graphs or CudaGraphs()
        self.batch = int(shape[0])
        with torch.inference_mode(False), torch.no_grad():
            self.host_in = self.graphs.pinned(shape)
            self.static_in = torch.zeros(shape, dtype=torch.float32, device=self.graphs.device)
            self._replay, self.static_out = self.graphs.capture(lambda: program(self.static_in))

    def _outputs(self, n: int):
        """The first ``n`` rows of each static output (views; a partial batch uses part of the graph)."""
        out = self.static_out
        if isinstance(out, dict):
            return {k: v[:n] for k, v in out.items() if v is not None}
        return [v[:n] for v in (out if isinstance(out, (tuple, list)) else [out])]

    def replay(self, x):
        """Copy the device batch ``x`` ([n <= batch, 1, H, W]) into the static input and replay on the
        current stream; the first n rows of the static outputs (overwritten by the next replay).
        Rows past n hold stale inputs: the network treats batch rows independently (eval mode)."""
        n = int(x.shape[0])
        self.static_in[:n].copy_(x)
        self._replay()
        return self._outputs(n)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        n = len(images)
        self.host_in.numpy()[:n] = images
        self.static_in[:n].copy_(self.host_in[:n], non_blocking=True)
        self._replay()
        values = self._outputs(n)
        self.graphs.synchronize()
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

    def __init__(self, path: str | Path, *, cuda_graphs: bool = True, graphs: CudaGraphs | None = None):
        import torch

        path = Path(path)
        if not path.exists():
            raise ModelFileError(path, "torch-GPU artifact not found", "check the --model path")
        if not torch.cuda.is_available():
            raise ModelFileError(path, "the torch-GPU artifact needs CUDA, and torch sees no GPU",
                                 "pick with the ONNX file instead (--model MODEL.onnx)")
        # run_single_threaded: the default runner records and queries a CUDA event inside run() to
        # hand its buffers between threads, which is illegal while a CUDA graph is being captured
        # (capture would fail and graphs stay off); this backend is single-threaded anyway
        self.program, sidecar = load_torch_gpu(path, run_single_threaded=True)
        super().__init__(path, ArtifactMetadata.from_blob(sidecar, path))
        self.output_names = list(self.metadata.outputs)
        self.min_side = sidecar_min_side(sidecar)
        self.cuda_graphs = cuda_graphs
        self.graphs = graphs or CudaGraphs()
        self._graphs: dict[tuple, _GraphRunner] = {}
        self.name = "torch-cuda"

    def _eager(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(images).to(self.graphs.device)
            out = self.program(x)
        if isinstance(out, dict):
            return outputs_by_name({k: v.float().cpu().numpy() for k, v in out.items()})
        out = out if isinstance(out, (tuple, list)) else [out]
        return outputs_by_name([v.float().cpu().numpy() for v in out], self.output_names)

    def _runner_for(self, shape: tuple) -> _GraphRunner | None:
        """The CUDA graph serving input ``shape`` [N, 1, H, W], or None when running eagerly.

        One graph per (H, W), captured for the largest N seen so far: a smaller batch (the partial
        last batch of a run) replays it on its first N rows instead of capturing another graph.
        """
        if not self.cuda_graphs:
            return None
        key = tuple(shape[1:])
        runner = self._graphs.get(key)
        if runner is not None and runner.batch >= shape[0]:
            return runner
        self._graphs.pop(key, None)        # a larger batch of this shape: free the smaller graph first
        try:
            while len(self._graphs) >= _MAX_GRAPHS:
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = _GraphRunner(self.program, tuple(shape), self.output_names, self.graphs)
        except Exception as exc:  # capture is unsupported by some programs: run eagerly
            log.warning("CUDA graph capture failed for %s (%s); running eagerly from now on", shape, exc)
            self.cuda_graphs = False
        return self._graphs.get(key)

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
