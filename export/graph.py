"""The exported graph: the trainer's network wrapped to the artifact contract (names, order, dtype).

Contract (docs/ARCHITECTURE.md): input ``image`` float32 [N, 1, H, W] (u8 / 255, H and W multiples
of 32); outputs ``heatmap`` (LOGITS) [N, 1, H/4, W/4], ``offset`` [N, 2, H/4, W/4] (x then y) and,
for vesicle models, ``size`` [N, 2, H/4, W/4]. ``PeaksInGraph`` is the measured alternative that
also applies sigmoid and the 3x3 max-pool inside the graph (benchmarks only; not the contract).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

INPUT_NAME = "image"
CONTRACT_OUTPUTS = ("heatmap", "offset", "size")


def output_names_of(network: nn.Module, n_outputs: int | None = None) -> tuple[str, ...]:
    """Names of the network's outputs in order: its ``output_names`` or the contract's first n."""
    names = getattr(network, "output_names", None)
    if names:
        return tuple(names)
    return CONTRACT_OUTPUTS[: n_outputs or 2]


class ContractGraph(nn.Module):
    """Runs ``network`` and returns its outputs as a tuple in contract order, float32.

    ``compute_dtype`` (e.g. torch.float16) casts the input to that dtype before the network, which
    must already hold weights of that dtype; outputs are cast back to float32 so every artifact has
    the same float32 interface.
    """

    def __init__(self, network: nn.Module, compute_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.network = network
        self.compute_dtype = compute_dtype
        self.names = output_names_of(network)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.network(image.to(self.compute_dtype))
        if isinstance(out, dict):
            out = tuple(out[name] for name in self.names)
        return tuple(t.float() for t in out)


class PeaksInGraph(nn.Module):
    """``ContractGraph`` plus sigmoid and the 3x3 max-pool: ``heatmap`` becomes the score where the
    cell is a 3x3 local maximum and 0 elsewhere (measured against doing it on the host)."""

    def __init__(self, graph: ContractGraph):
        super().__init__()
        self.contract = graph
        self.names = graph.names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, *rest = self.contract(image)
        pooled = F.max_pool2d(logits, 3, stride=1, padding=1)
        score = torch.sigmoid(logits) * (logits == pooled).to(logits.dtype)
        return (score, *rest)
