"""Particle diameter estimate for particle-size-mode models: a scale search on a few micrographs.

A size-mode model was trained with every particle resampled to ``particle_px`` network pixels
(``PreprocessParams.particle_px``). When the user gives no diameter, each candidate diameter ``d``
(original pixels) is tried: the micrograph is preprocessed as if its particles were ``d`` pixels
across, the network runs, and the heatmap peaks are scored. At the right scale the network finds
many confident particle-shaped peaks; too coarse and the particles shrink below what it learnt,
too fine and only their sub-structure is left. The score of a scale is the summed confidence of
the peaks above ``PEAK_THRESHOLD`` per particle-sized area of the network image (``peak_density``),
so images of different sizes compare fairly. Candidates are a geometric grid of network widths
(coarse, factor sqrt(2)), refined once around the best (factor 2**(1/4)); the estimate is the
median over the micrographs searched. Everything runs through the picker's own backend.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PEAK_THRESHOLD = 0.3
NETWORK_WIDTHS = (160, 2560)   # range of network-image widths searched (pixels)
COARSE_STEP = math.sqrt(2.0)
FINE_STEP = 2.0 ** 0.25


@dataclass
class DiameterEstimate:
    """The estimated diameter (original pixels) and, per micrograph, the scores of every scale tried."""

    diameter: float
    per_micrograph: list[float] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)


def peak_density(scores: np.ndarray, network_shape: tuple[int, int], particle_px: float,
                 threshold: float = PEAK_THRESHOLD) -> float:
    """Summed peak confidence above ``threshold`` per particle-sized area (particle_px^2) of the image."""
    cells = network_shape[0] * network_shape[1] / float(particle_px) ** 2
    s = np.asarray(scores, dtype=np.float64)
    return float(s[s >= threshold].sum() / max(cells, 1.0))


def scale_score(picker, data: np.ndarray, diameter: float) -> dict:
    """Run ``picker``'s network on ``data`` preprocessed for particles of ``diameter`` px; the scale's score."""
    from .host_path import HostPipeline

    host = HostPipeline(picker.backend, picker.params.with_diameter(diameter), threshold=0.05, top_k=20000,
                        min_side=picker.min_side)
    item = host.prepare(data, None, "scale search", None, 0.0)
    ((peaks, _),) = host.peaks([item])
    my, mx = item.transform.network_shape
    inside = (peaks.x < mx - 0.5) & (peaks.y < my - 0.5)
    params = host.params
    score = peak_density(peaks.score[inside], (my, mx), params.particle_px)
    return {"diameter": float(diameter), "network_shape": [int(my), int(mx)], "score": score,
            "confident_peaks": int(np.sum(peaks.score[inside] >= PEAK_THRESHOLD))}


def candidate_diameters(width: int, particle_px: float, step: float = COARSE_STEP,
                        widths: tuple[int, int] = NETWORK_WIDTHS) -> list[float]:
    """Diameters (original px) whose network images span ``widths`` for a micrograph ``width`` px wide."""
    lo, hi = width * particle_px / widths[1], width * particle_px / widths[0]
    n = int(math.floor(math.log(hi / lo) / math.log(step))) + 1
    return [lo * step ** k for k in range(n)]


def search_one(picker, data: np.ndarray) -> tuple[float, list[dict]]:
    """Best diameter for one micrograph: coarse grid, then the best's two finer neighbours."""
    particle_px = picker.params.particle_px
    rows = [scale_score(picker, data, d) for d in candidate_diameters(data.shape[1], particle_px)]
    best = max(rows, key=lambda r: r["score"])
    rows += [scale_score(picker, data, best["diameter"] * f) for f in (1 / FINE_STEP, FINE_STEP)]
    best = max(rows, key=lambda r: r["score"])
    return best["diameter"], rows


def estimate_diameter(picker, sources, max_micrographs: int = 2) -> DiameterEstimate:
    """Estimate the particle diameter (original px) from the first ``max_micrographs`` of ``sources``
    (paths or 2-D arrays) with ``picker``'s size-mode model."""
    from .errors import EpickError
    from .io.micrograph import read_micrograph

    if not picker.params.size_mode:
        raise EpickError("the model is not a particle-size-mode model: it needs no diameter estimate")
    found, rows = [], []
    for k, source in enumerate(list(sources)[:max_micrographs]):
        data = source if isinstance(source, np.ndarray) else read_micrograph(source).data
        d, r = search_one(picker, data)
        found.append(d)
        rows += [dict(row, micrograph=k) for row in r]
    if not found:
        raise EpickError("no micrograph to estimate the particle diameter from")
    return DiameterEstimate(float(np.median(found)), found, rows)
