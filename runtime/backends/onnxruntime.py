"""ONNX Runtime backend: CPU, or CUDA when onnxruntime-gpu is installed AND the session really got it."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from .base import Backend, check_input_batch, outputs_by_name
from .metadata import ArtifactMetadata

log = logging.getLogger("epick.runtime")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


class OnnxRuntimeBackend(Backend):
    """One ``onnxruntime.InferenceSession``; ``session.run`` is thread-safe, so this backend is too.

    ``device``: ``"cpu"``, ``"cuda"`` (refused when the session does not actually get the CUDA
    provider) or ``"auto"`` (CUDA when the session gets it, else CPU). ``threads``: intra-op threads
    (None = ONNX Runtime's default, i.e. all cores).
    """

    thread_safe = True

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(path, "ONNX file not found", "check the --model path")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        providers = [CPU] if device == "cpu" else [CUDA, CPU]
        providers = [p for p in providers if p in ort.get_available_providers()] or [CPU]
        try:
            session = ort.InferenceSession(os.fspath(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
            raise ModelFileError(path, f"ONNX Runtime cannot load this file ({type(exc).__name__}: {exc})",
                                 "re-export the model with `epick export MODEL --onnx OUT.onnx`") from exc
        actual = session.get_providers()   # what the session really runs on, not what is available
        if device == "cuda" and CUDA not in actual:
            raise ModelFileError(path, "ONNX Runtime did not get the CUDA provider for this session",
                                 "install onnxruntime-gpu matching your CUDA, or use --backend onnxruntime-cpu")
        props = session.get_modelmeta().custom_metadata_map or {}
        super().__init__(path, ArtifactMetadata.from_props(props, path))
        self.session = session
        self.providers = actual
        self.name = "onnxruntime-cuda" if CUDA in actual else "onnxruntime-cpu"
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelFileError(path, f"expected one network input, found {len(inputs)}",
                                 "re-export with `epick export`")
        self.input_name = inputs[0].name
        self.output_names = [o.name for o in session.get_outputs()]
        if not {"heatmap", "offset"} <= set(self.output_names):
            raise ModelFileError(path, f"outputs {self.output_names} lack 'heatmap' and 'offset'",
                                 "re-export with `epick export`, which names the outputs")
        batch_dim = inputs[0].shape[0]
        self.max_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        log.debug("onnxruntime session on %s for %s", actual, path)

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the session on a float32 [N, 1, H, W] batch."""
        images = check_input_batch(images, self.path)
        values = self.session.run(self.output_names, {self.input_name: images})
        return outputs_by_name(values, self.output_names)

    def close(self) -> None:
        """Drop the session (ONNX Runtime frees its memory when the object goes)."""
        self.session = None
