"""Exponential moving average of a network's weights, validated and kept instead of the raw weights.

``WeightAverage`` holds a frozen copy of the network whose floating-point state (weights and
BatchNorm running statistics) follows the trained network after every optimisation step:
``avg = d * avg + (1 - d) * current`` with ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates,
so the first steps are not averaged with the random initial weights for long (the warm-up of
timm's ``ModelEmaV2``). Integer buffers (BatchNorm's batch counter) are copied.
"""
from __future__ import annotations

import copy

import torch


class WeightAverage:
    """The running average of ``network`` (``module``, eval mode) with ``decay`` per update."""

    def __init__(self, network: torch.nn.Module, decay: float, updates: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"weight-average decay must lie in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = int(updates)
        self.module = copy.deepcopy(network).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def rate(self) -> float:
        """The decay of the next update (warm-up: small while few updates were made)."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, network: torch.nn.Module) -> None:
        """Move the average towards ``network``'s current state."""
        d = self.rate()
        current = network.state_dict()
        for key, avg in self.module.state_dict().items():
            value = current[key].detach()
            if avg.dtype.is_floating_point:
                avg.mul_(d).add_(value.to(avg.dtype), alpha=1.0 - d)
            else:
                avg.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged state (tensors of ``module``)."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        """Restore an average saved in a checkpoint."""
        self.module.load_state_dict(state)
        self.updates = int(updates)
