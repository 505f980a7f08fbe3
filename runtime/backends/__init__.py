"""Inference backends and the choice between them.

``open_backend(artifact, backend="auto")`` returns a :class:`Backend`. Names:

- ``onnxruntime`` (CUDA when the session really gets it, else CPU), ``onnxruntime-cpu``,
  ``onnxruntime-cuda``: an ``.onnx`` file.
- ``tensorrt``: an ``.engine``/``.plan`` file (or an ``.onnx`` whose engine sits beside it).
- ``torch-cuda``: the export step's torch-GPU artifact (``.pt2``) with CUDA graphs.
- ``torch``: a trainer model file (``.epick``) through torch (CUDA when available, else CPU).
- ``auto``: TensorRT if it imports and a GPU exists (engine given, or fresh engine beside the ONNX
  file), else torch-CUDA for a torch-GPU artifact when torch sees CUDA, else ONNX Runtime CUDA if
  the session really gets it, else ONNX Runtime CPU. The choice is logged and kept in
  ``backend.name``. Nothing here imports torch unless a torch backend is chosen.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from ..errors import ModelFileError
from .base import Backend
from .metadata import ArtifactMetadata

__all__ = ["Backend", "ArtifactMetadata", "BACKENDS", "artifact_kind", "open_backend"]

log = logging.getLogger("epick.runtime")

MODEL_SUFFIXES = (".epick",)          # trainer model files (run by the backend registered as "model")
ENTRY_POINT_GROUP = "epick.backends"  # where other epick packages register backends (setup.py)

BACKENDS = ("auto", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt", "torch-cuda", "torch")


def artifact_kind(path: str | Path) -> str:
    """``onnx``, ``tensorrt``, ``torch-gpu`` or ``model`` from the suffix (or file content)."""
    from .tensorrt import ENGINE_SUFFIXES
    from .torch_cuda import TORCH_GPU_SUFFIXES

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "tensorrt"
    if suffix in TORCH_GPU_SUFFIXES:
        return "torch-gpu"
    if suffix in MODEL_SUFFIXES:
        return "model"
    if not path.exists():
        raise ModelFileError(path, "model not found", "check the --model path")
    head = path.read_bytes()[:16] if path.is_file() else b""
    if len(head) > 9 and head[8:9] == b"{":   # safetensors: u64 header length, then JSON
        return "model"
    if head[:2] == b"PK":                     # zip: torch.export / AOTInductor package
        return "torch-gpu"
    raise ModelFileError(path, f"cannot tell what kind of model {path.name!r} is",
                         "use an .onnx, .engine, .pt2 (torch-GPU) or .epick (model) file")


def registered_backend(kind: str, path: str | Path) -> Callable[..., Backend]:
    """The backend class registered for artifact ``kind`` in the ``epick.backends`` entry-point group.

    The runtime imports no other epick package: the trainer registers ``model`` (``.epick`` files run
    by torch) through setup.py, and it loads only when such a file is picked. ModelFileError naming
    ``path`` and the install command when nothing is registered or it cannot be imported.
    """
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == kind]
    fix = "pip install 'epick[train]', or export it: epick export MODEL --onnx MODEL.onnx"
    if not found:
        raise ModelFileError(path, f"no installed backend runs {kind} files (epick's {ENTRY_POINT_GROUP} "
                             "entry points lack it)", fix)
    try:
        return found[0].load()
    except ImportError as exc:
        raise ModelFileError(path, f"a model file needs torch and the trainer ({exc})", fix) from exc


def open_backend(artifact: str | Path, backend: str = "auto", *, threads: int | None = None) -> Backend:
    """Open ``artifact`` on the named backend (see the module docstring); log which one runs."""
    if backend not in BACKENDS:
        raise ModelFileError(artifact, f"unknown backend {backend!r}", f"choose one of {', '.join(BACKENDS)}")
    path = Path(artifact)
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in (".onnx", ".engine", ".plan", ".pt2",
                                                                              ".epick"))[:5]
        raise ModelFileError(path, "is a folder, not a model file",
                             f"give one of the model files in it: {', '.join(inside)}" if inside
                             else "give a .onnx, .engine, .pt2 or .epick file")
    if not path.exists():
        raise ModelFileError(path, "no such model file", "check the --model path")
    kind = artifact_kind(path)
    chosen = _open(path, kind, backend, threads)
    log.info("backend: %s (%s)", chosen.name, path.name)
    return chosen


def _open(path: Path, kind: str, backend: str, threads: int | None) -> Backend:
    if kind == "tensorrt":
        _need(backend, ("auto", "tensorrt"), path, kind)
        from .tensorrt import TensorRTBackend, tensorrt_available

        if not tensorrt_available():
            raise ModelFileError(path, "a TensorRT engine needs tensorrt, cuda-python and a CUDA GPU, "
                                 "and this machine lacks one of them",
                                 "install 'epick[gpu]' and tensorrt on a GPU machine, or pick with the ONNX file")
        return TensorRTBackend(path)
    if kind == "torch-gpu":
        _need(backend, ("auto", "torch-cuda"), path, kind)
        from .torch_cuda import TorchCudaBackend, torch_cuda_available

        if not torch_cuda_available():
            raise ModelFileError(path, "the torch-GPU artifact needs torch with CUDA and a GPU",
                                 "pick with the ONNX file instead (--model MODEL.onnx)")

        return TorchCudaBackend(path)
    if kind == "model":
        _need(backend, ("auto", "torch"), path, kind)
        return registered_backend("model", path)(path)
    # ONNX
    _need(backend, ("auto", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt"), path, kind)
    from .onnxruntime import OnnxRuntimeBackend

    if backend in ("auto", "tensorrt"):
        engine = _engine_beside(path, required=backend == "tensorrt")
        if engine is not None:
            return engine
    device = {"onnxruntime-cpu": "cpu", "onnxruntime-cuda": "cuda"}.get(backend, "auto")
    return OnnxRuntimeBackend(path, device=device, threads=threads)


def _engine_beside(onnx_path: Path, required: bool) -> Backend | None:
    """A TensorRT backend for ``<model>.engine`` next to the ONNX file, or None (auto falls back)."""
    from .tensorrt import TensorRTBackend, tensorrt_available

    engine = onnx_path.with_suffix(".engine")
    if not tensorrt_available():
        if required:
            raise ModelFileError(onnx_path, "TensorRT or a CUDA GPU is not available here",
                                 "install tensorrt and cuda-python ('epick[gpu]'), or use --backend onnxruntime")
        return None
    if not engine.is_file():
        if required:
            raise ModelFileError(onnx_path, f"no TensorRT engine {engine.name} beside the ONNX file",
                                 f"build it: epick export MODEL --tensorrt {engine}")
        log.info("no TensorRT engine beside %s; build one with `epick export --tensorrt` for speed", onnx_path.name)
        return None
    try:
        from epick.runtime.artifact import read_onnx_metadata

        backend = TensorRTBackend(engine)
        onnx_hash = read_onnx_metadata(onnx_path)["model_hash"]
        if backend.metadata.model_hash != onnx_hash:
            backend.close()
            raise ModelFileError(engine, f"was built from model {backend.metadata.model_hash}, "
                                 f"not from {onnx_path.name} ({onnx_hash})",
                                 f"rebuild it: epick export MODEL --tensorrt {engine}")
        return backend
    except ModelFileError as exc:
        if required:
            raise
        log.warning("not using TensorRT: %s", exc)
        return None


def _need(backend: str, allowed: tuple[str, ...], path: Path, kind: str) -> None:
    if backend not in allowed:
        raise ModelFileError(path, f"a {kind} artifact cannot run on backend {backend!r}",
                             f"use --backend {' or '.join(allowed)}")
