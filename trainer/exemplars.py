"""Exemplar set: about 200 labelled objects on 1-2 preprocessed micrographs that represent a dataset.

Choice (deterministic, not "the first files"): each labelled micrograph is described by its
object density (objects per network megapixel) and its image texture (mean absolute Laplacian of
the 8-bit image, a proxy for ice thickness / contrast). The micrograph closest to the dataset's
median in both (each normalised by its median) is taken; when it holds fewer than ``target``
objects, the next closest one is added (at most ``max_micrographs``). A micrograph with many more
objects than needed is cropped to a window (multiple of 32 pixels) around the densest contiguous
region holding about ``target`` objects, so the stored images stay small.

Exemplars are ``Sample`` objects (uint8 network image + centres in network pixels) with
``exemplar=True``; ``modelfile`` stores them inside the model file.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .data import Sample

TARGET_OBJECTS = 200
MAX_MICROGRAPHS = 2
WINDOW_MULTIPLE = 32


def texture(image: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian of an 8-bit image (grey levels)."""
    img = image.astype(np.float32)
    lap = 4 * img[1:-1, 1:-1] - img[:-2, 1:-1] - img[2:, 1:-1] - img[1:-1, :-2] - img[1:-1, 2:]
    return float(np.mean(np.abs(lap))) if lap.size else 0.0


def representativeness(samples: list[Sample]) -> np.ndarray:
    """Distance of each sample to the dataset median in (density, texture), each relative to its median."""
    density = np.array([s.count / (s.image.size / 1e6) for s in samples])
    tex = np.array([texture(s.image) for s in samples])
    d_med = max(float(np.median(density)), 1e-9)
    t_med = max(float(np.median(tex)), 1e-9)
    return np.abs(density / d_med - 1.0) + np.abs(tex / t_med - 1.0)


def crop_to_count(sample: Sample, target: int, multiple: int = WINDOW_MULTIPLE) -> Sample:
    """The smallest square window (side a multiple of ``multiple``) around the objects' median
    position holding at least ``target`` objects (or the whole micrograph)."""
    H, W = sample.image.shape
    if sample.count <= target:
        return replace(sample, image=sample.image.copy(), points=sample.points.copy(), exemplar=True,
                       window=[0, 0, W, H])
    cx, cy = np.median(sample.points[:, 0]), np.median(sample.points[:, 1])
    side = multiple
    while True:
        sh, sw = min(side, H), min(side, W)
        x0 = int(np.clip(round(cx - sw / 2), 0, W - sw))
        y0 = int(np.clip(round(cy - sh / 2), 0, H - sh))
        p = sample.points - (x0, y0)
        inside = (p[:, 0] >= -0.5) & (p[:, 0] < sw - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] < sh - 0.5)
        if inside.sum() >= target or (sh == H and sw == W):
            break
        side += multiple
    return replace(sample, image=sample.image[y0:y0 + sh, x0:x0 + sw].copy(), points=p[inside],
                   sizes=None if sample.sizes is None else sample.sizes[inside],
                   labelled=True, exemplar=True, window=[x0, y0, sw, sh])


def select_exemplars(samples: list[Sample], target: int = TARGET_OBJECTS,
                     max_micrographs: int = MAX_MICROGRAPHS) -> list[Sample]:
    """Exemplars of ONE dataset: representative micrograph(s) cropped to about ``target`` objects."""
    labelled = [s for s in samples if s.labelled and s.count > 0 and not s.exemplar]
    if not labelled:
        return []
    labelled.sort(key=lambda s: s.name)
    order = np.argsort(representativeness(labelled), kind="stable")
    chosen, total = [], 0
    for i in order[:max_micrographs]:
        need = target - total
        if need <= 0:
            break
        ex = crop_to_count(labelled[int(i)], need)
        chosen.append(ex)
        total += ex.count
    return chosen
