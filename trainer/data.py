"""Training data: micrographs + coordinate files -> preprocessed samples -> augmented batches.

Micrographs are read with ``epick.runtime.io.micrograph.read_micrograph`` and preprocessed with
``epick.runtime.preprocess.preprocess`` (the very function the picker uses); coordinates come from
``epick.runtime.io.coordinates.read_picks`` (any supported format) and are mapped to network-image
pixels with the preprocessing ``Transform``. Files are paired by ``micrograph_key`` (stem).

A ``Sample`` holds one preprocessed micrograph and its objects in network pixels; batches are
made of random crops (``augment``) turned into dense targets (``targets``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from epick.runtime.errors import CoordinateError, EpickError
from epick.runtime.picks import OBJECT_TYPES, Picks, micrograph_key

from .augment import augment
from .targets import make_targets

FIBER_SPACING_FRACTION = 0.25  # fibers: points every quarter of the fiber width along the polyline


@dataclass
class Sample:
    """One preprocessed micrograph with its labelled objects, all in network-image pixels.

    - ``image``: uint8 [H, W] network image (not padded).
    - ``points``: float64 [n, 2] centres (x, y); for fibers, points sampled along each polyline.
    - ``sizes``: float64 [n, 2] diameters (x then y) for vesicles, else None.
    - ``labelled``: False for a micrograph used as a negative (no objects expected on it).
    - ``exemplar``: True for exemplar images of an old dataset (distillation applies to them).
    - ``diameter``: object diameter in network pixels (sets the heatmap splat), or None.
    - ``scale``: original micrograph pixels per network pixel (``Transform.scale_x``).
    - ``window``: exemplars only, the crop ``[x0, y0, width, height]`` in network pixels.
    """

    name: str
    dataset: str
    image: np.ndarray
    points: np.ndarray
    sizes: np.ndarray | None = None
    labelled: bool = True
    exemplar: bool = False
    diameter: float | None = None
    scale: float = 1.0
    window: list[int] | None = None

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        if self.sizes is not None:
            self.sizes = np.asarray(self.sizes, dtype=np.float64).reshape(-1, 2)

    @property
    def count(self) -> int:
        """Number of labelled objects."""
        return int(self.points.shape[0])


def pair_micrographs(micrographs: Sequence[Path], picks: Sequence[Picks], *, allow_unlabelled: bool = False,
                     source: str = "coordinates") -> list[tuple[Path, Picks | None]]:
    """Pair micrograph files with Picks by ``micrograph_key``.

    Coordinates of a micrograph that is not given raise ``CoordinateError``; micrographs without
    coordinates raise too, unless ``allow_unlabelled`` (they become negatives), and so do two
    micrograph files with the same key (``a.mrc`` and ``a.jpg``). A coordinate file with zero
    objects is an explicit negative.
    """
    by_key: dict[str, Path] = {}
    for path in micrographs:
        key, path = micrograph_key(path), Path(path)
        if key in by_key and by_key[key] != path:   # coordinates name micrographs by key: ambiguous
            raise CoordinateError(path, f"has the same name ({key!r}) as micrograph {by_key[key]}, so coordinates "
                                  "cannot tell which of the two they belong to",
                                  f"give only one of them (for example a pattern such as '{path.parent}/*{path.suffix}'), "
                                  "or rename one")
        by_key[key] = path
    labels: dict[str, Picks] = {}
    for p in picks:
        if p.key not in by_key:
            known = ", ".join(sorted(by_key)[:5]) + (" ..." if len(by_key) > 5 else "")
            raise CoordinateError(p.source or p.micrograph,
                                  f"has coordinates for micrograph {p.key!r}, which is not among the micrographs given",
                                  f"name coordinate files after their micrographs (micrographs: {known})")
        if p.key in labels:
            merged = labels[p.key]
            labels[p.key] = Picks(merged.micrograph, np.r_[merged.x, p.x], np.r_[merged.y, p.y],
                                  radius=None if merged.radius is None or p.radius is None else np.r_[merged.radius, p.radius],
                                  shape=merged.shape, diameter=merged.diameter)
        else:
            labels[p.key] = p
    missing = sorted(k for k in by_key if k not in labels)
    if missing and not allow_unlabelled:
        raise CoordinateError(by_key[missing[0]], f"has no coordinates in {source} ({len(missing)} micrograph(s) "
                              f"unlabelled: {', '.join(missing[:5])})",
                              "give its coordinate file, or pass --unlabelled-negatives to train on it as a negative")
    return [(by_key[k], labels.get(k)) for k in sorted(by_key)]


def read_all_picks(coordinate_files: Sequence[Path], diameter: float | None = None) -> list[Picks]:
    """Every Picks of every coordinate file (any supported format), the file path in ``source``."""
    from epick.runtime.io.coordinates import read_picks

    out = []
    for path in coordinate_files:
        for p in read_picks(path, diameter=diameter):
            p.source = p.source or str(path)
            out.append(p)
    return out


def fiber_points(picks: Picks, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``spacing`` pixels along each fiber polyline (points grouped by ``tube_id``, in order)."""
    ids = picks.tube_id if picks.tube_id is not None else np.ones(len(picks), dtype=np.int64)
    xs, ys = [], []
    for tube in np.unique(ids):
        px, py = picks.x[ids == tube], picks.y[ids == tube]
        if px.size < 2:
            xs.append(px)
            ys.append(py)
            continue
        seg = np.hypot(np.diff(px), np.diff(py))
        along = np.r_[0.0, np.cumsum(seg)]
        n = max(2, int(np.floor(along[-1] / max(spacing, 1e-6))) + 1)
        t = np.linspace(0.0, along[-1], n)
        xs.append(np.interp(t, along, px))
        ys.append(np.interp(t, along, py))
    return np.concatenate(xs) if xs else np.zeros(0), np.concatenate(ys) if ys else np.zeros(0)


def picks_to_network(picks: Picks | None, transform, object_type: str, diameter: float | None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Centres [n, 2] (and vesicle sizes [n, 2]) of ``picks`` in network pixels via ``transform``."""
    if picks is None or len(picks) == 0:
        return np.zeros((0, 2)), (np.zeros((0, 2)) if object_type == "vesicle" else None)
    x, y = picks.x, picks.y
    if object_type == "fiber":
        width = diameter or picks.diameter or 20.0
        x, y = fiber_points(picks, FIBER_SPACING_FRACTION * width)
    u, v = transform.to_network(x, y)
    sizes = None
    if object_type == "vesicle":
        if picks.radius is None:
            raise CoordinateError(picks.source or picks.micrograph, "vesicle training needs a radius per object",
                                  "use a coordinate format that stores radii (STAR with _rlnRadius, or CSV x,y,radius)")
        sizes = np.stack([2 * picks.radius / transform.scale_x, 2 * picks.radius / transform.scale_y], axis=1)
    return np.stack([u, v], axis=1), sizes


def load_sample(micrograph: Path, picks: Picks | None, params, *, dataset: str, object_type: str = "particle",
                diameter: float | None = None) -> Sample:
    """Read and preprocess one micrograph (the runtime's ``preprocess``; in the particle-size mode at
    the scale its ``diameter``, original pixels, sets) and map its picks to network pixels."""
    from epick.runtime.io.micrograph import read_micrograph
    from epick.runtime.preprocess import preprocess

    mic = read_micrograph(micrograph)
    diameter = diameter or (picks.diameter if picks is not None else None)
    if params.size_mode and not diameter:
        raise CoordinateError(micrograph, "has no particle diameter, which the particle-size mode needs to scale it",
                              "give the diameter in original pixels with --diameter (or a '# diameter_px' line in its STAR file)")
    u8, transform = preprocess(mic.data, params.with_diameter(diameter))
    points, sizes = picks_to_network(picks, transform, object_type, diameter)
    return Sample(name=micrograph_key(micrograph), dataset=dataset, image=u8, points=points, sizes=sizes,
                  labelled=picks is not None, diameter=None if diameter is None else diameter / transform.scale_x,
                  scale=float(transform.scale_x))


def load_dataset(micrographs, coordinates, params, *, dataset: str, object_type: str = "particle",
                 diameter: float | None = None, allow_unlabelled: bool = False, progress: bool = True) -> list[Sample]:
    """Samples of one dataset from micrograph paths/folders/globs and coordinate files/folders."""
    from tqdm import tqdm

    from epick.runtime.io.coordinates import find_coordinate_files
    from epick.runtime.io.micrograph import find_micrographs

    if object_type not in OBJECT_TYPES:
        raise EpickError(f"unknown object type {object_type!r}; choose one of {', '.join(OBJECT_TYPES)}")
    mics = find_micrographs(micrographs)
    coords = find_coordinate_files([coordinates] if isinstance(coordinates, (str, Path)) else list(coordinates))
    pairs = pair_micrographs(mics, read_all_picks(coords, diameter), allow_unlabelled=allow_unlabelled,
                             source=", ".join(str(c) for c in coords[:3]))
    return [load_sample(m, p, params, dataset=dataset, object_type=object_type, diameter=diameter)
            for m, p in tqdm(pairs, desc=f"read {dataset}", unit="mic", disable=not progress)]


def split_validation(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``fraction`` of the labelled micrographs of each dataset (at least one when a dataset
    has three or more); the choice depends only on ``seed`` and the names."""
    if fraction <= 0:
        return list(samples), []
    train, val = [], []
    for name in sorted({s.dataset for s in samples}):
        group = sorted((s for s in samples if s.dataset == name), key=lambda s: s.name)
        labelled = [s for s in group if s.labelled and not s.exemplar]
        n_val = int(round(fraction * len(labelled)))
        if n_val == 0 and len(labelled) >= 3:
            n_val = 1
        rng = np.random.default_rng([seed, len(group)])
        held = {labelled[i].name for i in rng.permutation(len(labelled))[:n_val]}
        for s in group:
            (val if s.name in held and s.labelled and not s.exemplar else train).append(s)
    return train, val


@dataclass
class Batch:
    """A training batch as float32 arrays: image [B,1,H,W] (u8/255) and dense targets [B,C,h,w]."""

    image: np.ndarray
    heatmap: np.ndarray
    offset: np.ndarray
    size: np.ndarray
    mask: np.ndarray
    exemplar: np.ndarray  # bool [B]


def make_batch(samples: Sequence[Sample], crop: tuple[int, int], diameter: float,
               rng: np.random.Generator, origins: Sequence[tuple[int, int] | None] | None = None,
               appearance: Sequence[str] = (), zoom: tuple[float, float] = (1.0, 1.0)) -> Batch:
    """Augment each sample (crop at its origin (y0, x0) in ``origins``, or at random, then flips and
    quarter turns, and for samples of the datasets named in ``appearance`` ("*": all) blur / noise /
    quantisation; each crop rescaled by a log-uniform factor in ``zoom``) and stack images and targets.

    The splat radius comes from each sample's ``diameter`` (network pixels), else ``diameter``, times
    the crop's zoom.
    """
    from epick.runtime.preprocess import network_input

    images, heats, offs, sizes, masks = [], [], [], [], []
    origins = list(origins) if origins is not None else [None] * len(samples)
    for s, origin in zip(samples, origins):
        jitter = "*" in appearance or s.dataset in appearance
        a = augment(s.image, s.points, s.sizes, crop, rng, origin=origin, appearance_jitter=jitter, zoom=zoom)
        t = make_targets(a.points, a.image.shape, (s.diameter or diameter) * a.zoom, a.sizes)
        images.append(network_input(a.image)[None])
        heats.append(t.heatmap)
        offs.append(t.offset)
        sizes.append(t.size)
        masks.append(t.mask)
    return Batch(np.stack(images), np.stack(heats), np.stack(offs), np.stack(sizes), np.stack(masks),
                 np.array([s.exemplar for s in samples], dtype=bool))
