"""Model-file backend: a trainer ``.epick`` model run by torch on CUDA (when available) or CPU.

For development and checks; the lean path is an exported artifact. The runtime finds this class
through the ``epick.backends`` entry point ``model`` (setup.py), so it never imports the trainer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from epick.runtime.backends.base import Backend, check_input_batch, device_batch_pointer, outputs_by_name
from epick.runtime.backends.metadata import ArtifactMetadata
from epick.runtime.errors import ModelFileError


class TorchModelBackend(Backend):
    """Runs ``epick.trainer.modelfile.load_model(path)``'s module in eval mode; not thread-safe."""

    thread_safe = False

    def __init__(self, path: str | Path, device: str = "auto"):
        try:
            import torch
            from .modelfile import load_model
        except ImportError as exc:
            raise ModelFileError(path, f"a model file needs torch and the trainer ({exc})",
                                 "pip install 'epick[train]', or export it: epick export MODEL --onnx M.onnx") from exc
        module, meta = load_model(path)
        outputs = ["heatmap", "offset"] + (["size"] if dict(meta).get("object_type") == "vesicle" else [])
        super().__init__(path, ArtifactMetadata.from_model_file(dict(meta), path, outputs))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.name = f"torch-{self.device.type}"
        self.device_io = self.device.type == "cuda"

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the module on a float32 [N, 1, H, W] batch."""
        import torch

        images = check_input_batch(images, self.path)
        with torch.inference_mode():
            out = self.module(torch.from_numpy(images).to(self.device))
        if isinstance(out, dict):
            return outputs_by_name({k: v.float().cpu().numpy() for k, v in out.items() if v is not None})
        return outputs_by_name([v.float().cpu().numpy() for v in out if v is not None])

    def infer_device(self, images, stream: int | None = None) -> dict:
        """Device float32 [N, 1, H, W] batch -> CUDA tensors by name (eager; see ``Backend.infer_device``)."""
        from epick.runtime.backends.torch_cuda import device_outputs

        if not self.device_io:
            return super().infer_device(images, stream)
        device_batch_pointer(images, self.path)
        return device_outputs(self.module, images, stream, None)

    def close(self) -> None:
        """Drop the module."""
        self.module = None
