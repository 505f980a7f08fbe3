"""Validation during training: run the network on held-out samples and compute AP with the runtime.

Inference uses the runtime's own pieces (``pad_to_multiple``, ``network_input``, ``find_peaks``),
and AP comes from ``epick.runtime.evaluate.evaluate``. Everything stays in network-image pixels
(picks and truth are compared in the same frame, with the diameter in network pixels).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from epick.runtime.peaks import NetworkPeaks, find_peaks
from epick.runtime.picks import Picks

from .data import Sample

VAL_THRESHOLD = 0.05  # low score threshold: AP integrates over all thresholds above it
VAL_TOP_K = 2000


@torch.no_grad()
def predict_peaks(network: torch.nn.Module, image: np.ndarray, device: str | torch.device = "cpu", *,
                  threshold: float = VAL_THRESHOLD, top_k: int = VAL_TOP_K) -> NetworkPeaks:
    """Peaks of one uint8 network image [H, W] (padded to 32 here; peaks in the padding dropped)."""
    from epick.runtime.preprocess import network_input, pad_to_multiple

    H, W = image.shape
    x = torch.from_numpy(network_input(pad_to_multiple(image, 32))[None, None]).to(device)
    was_training = network.training
    network.eval()
    outs = [o[0].float().cpu().numpy() for o in network(x)]
    network.train(was_training)
    size = outs[2] if len(outs) > 2 else None
    peaks = find_peaks(outs[0][0], outs[1], size, threshold=threshold, top_k=top_k)
    keep = (peaks.x < W - 0.5) & (peaks.y < H - 0.5)
    return NetworkPeaks(peaks.x[keep], peaks.y[keep], peaks.score[keep],
                        None if peaks.size is None else peaks.size[keep],
                        None if peaks.index is None else peaks.index[keep])


def peaks_to_picks(name: str, peaks: NetworkPeaks, diameter: float | None) -> Picks:
    """Network-pixel peaks as Picks (network-pixel frame)."""
    return Picks(name, peaks.x, peaks.y, score=peaks.score, diameter=diameter)


def truth_picks(sample: Sample) -> Picks:
    """A sample's labels as Picks in its network-pixel frame."""
    return Picks(sample.name, sample.points[:, 0], sample.points[:, 1], diameter=sample.diameter)


def evaluate_samples(network: torch.nn.Module, samples: Sequence[Sample], device: str | torch.device = "cpu",
                     *, threshold: float = VAL_THRESHOLD, default_diameter: float = 20.0) -> dict:
    """AP/AR per dataset and their means: ``{"ap", "ar", "recall", "datasets": {name: evaluate(...)}}``."""
    from epick.runtime.evaluate import evaluate

    per = {}
    for name in sorted({s.dataset for s in samples}):
        group = [s for s in samples if s.dataset == name and s.labelled]
        if not group:
            continue
        picks = [peaks_to_picks(s.name, predict_peaks(network, s.image, device, threshold=threshold), s.diameter)
                 for s in group]
        diam = float(np.mean([s.diameter or default_diameter for s in group]))
        per[name] = evaluate(picks, [truth_picks(s) for s in group], diameter=diam)
    mean = lambda key: (float(np.mean([m[key] for m in per.values() if m[key] is not None]))  # noqa: E731
                        if any(m[key] is not None for m in per.values()) else None)
    return {"ap": mean("ap"), "ar": mean("ar"), "recall": mean("recall"), "precision": mean("precision"),
            "datasets": per}
