"""The torch-GPU artifact: an AOTInductor package (``.pt2``) for machines with CUDA torch but no TensorRT.

``torch.export`` traces the contract graph (dynamic batch, height and width = 32 * k), then
``torch._inductor.aoti_compile_and_package`` compiles it into one self-contained ``.pt2`` file that
``torch._inductor.aoti_load_package`` runs without the trainer's code. FP16: the weights are cast to
half and the graph casts the float32 input to half and the outputs back to float32, so the interface
is the same as the ONNX one. The sidecar ``OUT.pt2.json`` carries the artifact metadata plus
``"torch_gpu": {torch version, device, dtype, gpu name, compute capability, min_side, max_side,
max_batch}``: the package accepts H and W from 64 (not 32) to 16384, batch up to 1024.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any, Mapping

from epick.runtime.artifact import sidecar_path
from epick.runtime.backends.torch_cuda import load_torch_gpu  # noqa: F401  (the runtime loads packages)
from epick.runtime.errors import ModelFileError
from epick.runtime.io.atomic import atomic_path, atomic_write

from .graph import ContractGraph
from .onnx_export import MAX_BATCH, MAX_SIDE

log = logging.getLogger("epick.export")


MIN_SIDE = 64  # network pixels: at 32 the stride-32 level is 1 px and torch.export specialises on it


def _dims():
    """torch.export dynamic dims of the ``image`` input: batch, height = 32 * k, width = 32 * k (>= 64)."""
    from torch.export import Dim

    h32 = Dim("h32", min=MIN_SIDE // 32, max=MAX_SIDE // 32)
    w32 = Dim("w32", min=MIN_SIDE // 32, max=MAX_SIDE // 32)
    return {"image": {0: Dim("batch", min=1, max=MAX_BATCH), 2: 32 * h32, 3: 32 * w32}}


def contract_graph_for(network, device: str, fp16: bool) -> ContractGraph:
    """A copy of ``network`` in eval mode on ``device`` (half weights if ``fp16``) wrapped to the contract."""
    import torch

    dtype = torch.float16 if fp16 else torch.float32
    net = copy.deepcopy(network).eval().to(device=device, dtype=dtype)
    return ContractGraph(net, compute_dtype=dtype).eval()


def export_program(network, *, device: str = "cuda", fp16: bool = True,
                   example_hw: tuple[int, int] = (256, 320)):
    """``torch.export`` program of the contract graph with dynamic batch/height/width."""
    import torch

    graph = contract_graph_for(network, device, fp16)
    example = torch.rand(2, 1, *example_hw, device=device, dtype=torch.float32)
    with torch.no_grad():
        return torch.export.export(graph, (example,), dynamic_shapes=_dims(), strict=False)


def device_facts(device: str) -> dict[str, Any]:
    """Torch version, device and, for CUDA, GPU name and compute capability (stored in the sidecar)."""
    import torch

    facts: dict[str, Any] = {"torch_version": torch.__version__, "device": device}
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        major, minor = torch.cuda.get_device_capability(index)
        facts.update(gpu_name=torch.cuda.get_device_name(index), compute_capability=f"{major}.{minor}",
                     cuda_version=torch.version.cuda)
    return facts


def export_torch_gpu(network, out_path: str | Path, meta: Mapping[str, Any], *, device: str = "cuda",
                     fp16: bool = True) -> Path:
    """Compile ``network`` into an AOTInductor package at ``out_path`` (+ sidecar JSON); return the path.

    ``device="cuda", fp16=True`` is the deployable artifact; ``device="cpu", fp16=False`` exists so
    the machinery can be tested on a machine without a GPU.
    """
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelFileError(out_path, "torch has no CUDA device here, so no CUDA artifact can be compiled",
                             "run `epick export MODEL --torch-gpu OUT` on a machine with a CUDA GPU "
                             "and torch built for CUDA")
    program = export_program(network, device=device, fp16=fp16)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
    side = dict(meta)
    side["torch_gpu"] = {**device_facts(device), "dtype": "float16" if fp16 else "float32",
                         "format": "aoti-package",
                         "min_side": MIN_SIDE, "max_side": MAX_SIDE, "max_batch": MAX_BATCH}
    with atomic_write(sidecar_path(out_path)) as handle:
        json.dump(side, handle, indent=2, sort_keys=True)
    log.info("wrote %s and %s", out_path, sidecar_path(out_path).name)
    return out_path


