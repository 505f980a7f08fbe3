"""Tiny ONNX models that honour the network contract, for runtime tests that must not wait on the
trainer: input ``image`` [N,1,H,W] (u8/255), outputs ``heatmap`` logits [N,1,H/4,W/4], ``offset``
[N,2,H/4,W/4] and optional ``size``, with the ``epick`` JSON metadata the export step writes.

``blob_detector``: a fixed stride-4 filter whose logits peak on dark round blobs (so simulated
particles are picked); ``random``: a few random convolutions (any peaks; for equality checks).
``make_model_file``: a narrow-network ``.epick`` file written by the trainer's own writer (the
session fixture ``narrow_export`` in conftest.py exports one of them to ONNX once per test run).
"""
from __future__ import annotations

import warnings
from pathlib import Path

SPREAD_GAIN = 200.0   # make_model_file: scale of the heatmap head's last layer (random weights)
FOLLOW_GAIN = 0.1     # make_model_file(follows_image=True): scale and shift of the (Kaiming)
FOLLOW_SHIFT = 4.0    # heatmap head's last layer


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
    from epick.runtime.artifact import build_artifact_metadata, encode_metadata_props

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


def make_model_file(path: Path, *, seed: int = 0, with_size: bool = False, follows_image: bool = False) -> Path:
    """A narrow-network model file written by the trainer's own writer (random weights, seeded).

    Default: random weights with non-trivial BatchNorm statistics (so folding them into convolutions
    is exercised) and the heatmap head scaled by SPREAD_GAIN (logits over a trained network's range,
    about -8..+4, instead of 0.04 around the -2.19 prior). ``follows_image``: Kaiming weights make
    the heatmap follow the image (the default's ranked peaks are as close as 1e-7 in score); its
    head is scaled by FOLLOW_GAIN and shifted by FOLLOW_SHIFT (logits about 0.5..2 on micrographs).
    """
    import torch

    from epick.trainer.modelfile import build_metadata, save_model
    from epick.trainer.network import NetworkConfig, build_detector

    torch.manual_seed(seed)
    config = NetworkConfig.narrow(with_size=with_size)
    network = build_detector(config)
    with torch.no_grad():
        for module in network.modules():
            if follows_image and isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        if follows_image:
            network.heatmap[-1].weight.mul_(FOLLOW_GAIN)
            network.heatmap[-1].bias.add_(FOLLOW_SHIFT)
        else:
            network.heatmap[-1].weight.mul_(SPREAD_GAIN)
    meta = build_metadata(config, object_type="vesicle" if with_size else "particle",
                          preprocess={"target_width": 1024}, particle_diameter=108.0, diameter_network=27.0,
                          history=[])
    return save_model(path, network, meta)


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
