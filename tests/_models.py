"""Tiny ONNX models that honour the network contract, for runtime tests that must not wait on the
trainer: input ``image`` [N,1,H,W] (u8/255), outputs ``heatmap`` logits [N,1,H/4,W/4], ``offset``
[N,2,H/4,W/4] and optional ``size``, with the ``epick`` JSON metadata the export step writes.

``blob_detector``: a fixed stride-4 filter whose logits peak on dark round blobs (so simulated
particles are picked); ``random``: a few random convolutions (any peaks; for equality checks).
"""
from __future__ import annotations

import warnings
from pathlib import Path


def _blob_module(size_head: bool):
    import torch
    from torch import nn

    class BlobNet(nn.Module):
        """Average 4x4 cells, smooth with a Gaussian, darker = higher logit; offsets at cell centres."""

        def __init__(self):
            super().__init__()
            self.pool = nn.AvgPool2d(4)
            self.smooth = nn.Conv2d(1, 1, 5, padding=2, bias=True, padding_mode="replicate")
            g = torch.exp(-((torch.arange(5) - 2.0) ** 2) / 2.0)
            k = (g[:, None] * g[None, :]) / (g.sum() ** 2)
            with torch.no_grad():
                self.smooth.weight.copy_(-40.0 * k[None, None])
                self.smooth.bias.fill_(18.0)

        def forward(self, image):
            heat = self.smooth(self.pool(image))
            offset = torch.full_like(heat, 0.5).repeat(1, 2, 1, 1)
            if size_head:
                return heat, offset, torch.full_like(heat, 12.0).repeat(1, 2, 1, 1)
            return heat, offset

    return BlobNet()


def _random_module(size_head: bool, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class RandomNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
            self.heat = nn.Conv2d(8, 1, 1)
            self.off = nn.Conv2d(8, 2, 1)
            self.size = nn.Conv2d(8, 2, 1)

        def forward(self, image):
            f = self.body(image)
            out = (self.heat(f), torch.sigmoid(self.off(f)))
            return out + (torch.relu(self.size(f)) * 10,) if size_head else out

    return RandomNet().eval()


def make_onnx(path: str | Path, *, kind: str = "blob_detector", object_type: str = "particle",
              target_width: int = 256, diameter: float | None = 24.0, seed: int = 0,
              extra_meta: dict | None = None, module=None, in_channels: int = 1,
              dynamic: bool = True) -> Path:
    """Write a tiny contract-conforming ONNX model with ``epick`` metadata; return its path.

    ``module`` (a torch module), ``in_channels`` and ``dynamic=False`` (fixed 64 x 64 input) make
    models that break the contract, for the checks done at load."""
    import onnx
    import torch

    size_head = object_type == "vesicle"
    if module is None:
        module = _blob_module(size_head) if kind == "blob_detector" else _random_module(size_head, seed)
    names = ["heatmap", "offset"] + (["size"] if size_head else [])
    path = Path(path)
    dummy = torch.zeros(1, in_channels, 64, 64)
    dyn = {"image": {0: "n", 2: "h", 3: "w"}, **{n: {0: "n", 2: "h4", 3: "w4"} for n in names}}
    dyn = dyn if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # constant-folding notes of the TorchScript exporter
        torch.onnx.export(module, (dummy,), str(path), input_names=["image"], output_names=names,
                          dynamic_axes=dyn, opset_version=17, dynamo=False)
    from epick.export.artifact_metadata import build_artifact_metadata, encode_metadata_props

    model = onnx.load(str(path))
    model_meta = {"object_type": object_type, "particle_diameter": diameter,
                  "preprocess": {"target_width": target_width}, **(extra_meta or {})}
    blob = build_artifact_metadata(model_meta, f"sha256:test-{kind}-{seed}", names)
    del model.metadata_props[:]
    for key, value in encode_metadata_props(blob).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def blob_micrograph(shape: tuple[int, int] = (512, 640), n: int = 12, *, sigma: float = 6.0, seed: int = 0,
                    margin: int = 40):
    """A float32 micrograph of ``n`` dark Gaussian blobs (sd ``sigma`` px) on noise, and their centres
    (x, y) in pixels, at least 4 sigma apart. A stand-in until a test needs the project's simulator."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ny, nx = shape
    centres: list[tuple[float, float]] = []
    while len(centres) < n:
        x, y = rng.uniform(margin, nx - margin), rng.uniform(margin, ny - margin)
        if all((x - a) ** 2 + (y - b) ** 2 > (6 * sigma) ** 2 for a, b in centres):
            centres.append((x, y))
    yy, xx = np.mgrid[:ny, :nx]
    image = rng.normal(0.0, 0.5, shape)
    for x, y in centres:
        image -= 3.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return image.astype(np.float32), np.array(centres)
