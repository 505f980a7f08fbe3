"""The one container for objects on one micrograph, used by readers, writers, evaluation and picking.

Coordinate convention (everywhere in epick unless a name says otherwise):
    x, y are in pixels of the ORIGINAL micrograph as read into a NumPy array ``image[y, x]``;
    x = column, y = row, origin at the centre of the top-left pixel, y grows downwards.
    A position is the object's CENTRE (box writers convert to corners themselves).
    This is RELION's convention for ``_rlnCoordinateX/Y``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

OBJECT_TYPES = ("particle", "vesicle", "fiber")   # what a model picks; the one list of them


def micrograph_key(name: str | Path) -> str:
    """Name used to pair micrographs with coordinate files: file stem without common pick suffixes."""
    stem = Path(str(name)).name
    for ext in (".mrcs", ".mrc", ".tiff", ".tif", ".png", ".jpeg", ".jpg", ".star", ".cbox", ".box",
                ".csv", ".txt", ".cs", ".thi", ".coord"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    for suffix in ("_autopick", "_manualpick", "_picks", "_epick", "_start_end"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


@dataclass
class Picks:
    """Objects on one micrograph: centres in original pixels, optional score, radius and fiber IDs.

    - ``score``: confidence in [0, 1] (1 for ground truth), one per object.
    - ``radius``: vesicle radius in original pixels, or None for particles/fibers.
    - ``tube_id``: fibers only, 1-based fiber (helical tube) ID per point; points of one tube are
      stored in order along the fiber.
    - ``shape``: (ny, nx) of the micrograph in pixels when known (formats with fractional or
      corner coordinates need it).
    - ``diameter``: particle box size in original pixels when known.
    - ``source``: the coordinate file these objects were read from, when read from one.
    """

    micrograph: str
    x: np.ndarray
    y: np.ndarray
    score: np.ndarray | None = None
    radius: np.ndarray | None = None
    tube_id: np.ndarray | None = None
    shape: tuple[int, int] | None = None
    diameter: float | None = None
    pixel_size: float | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float64).reshape(-1)
        self.y = np.asarray(self.y, dtype=np.float64).reshape(-1)
        if self.x.shape != self.y.shape:
            raise ValueError(f"x and y differ in length ({self.x.size} vs {self.y.size})")
        n = self.x.size
        if self.score is not None:
            self.score = np.asarray(self.score, dtype=np.float64).reshape(-1)
        if self.radius is not None:
            self.radius = np.asarray(self.radius, dtype=np.float64).reshape(-1)
        if self.tube_id is not None:
            self.tube_id = np.asarray(self.tube_id, dtype=np.int64).reshape(-1)
        for name in ("score", "radius", "tube_id"):
            arr = getattr(self, name)
            if arr is not None and arr.size != n:
                raise ValueError(f"{name} has {arr.size} values for {n} objects")

    def __len__(self) -> int:
        return int(self.x.size)

    @property
    def key(self) -> str:
        """Name that pairs this micrograph with files of other kinds (see micrograph_key)."""
        return micrograph_key(self.micrograph)

    def score_or(self, fill: float) -> np.ndarray:
        """``score``, or ``fill`` for every object when the source carried no scores."""
        return self.score if self.score is not None else np.full(len(self), float(fill), dtype=np.float64)

    def subset(self, index: np.ndarray) -> "Picks":
        """A copy with only the selected objects (boolean mask or integer index)."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return replace(self, x=self.x[index], y=self.y[index], score=pick(self.score),
                       radius=pick(self.radius), tube_id=pick(self.tube_id))

    @classmethod
    def empty(cls, micrograph: str, **kwargs) -> "Picks":
        """No objects on this micrograph."""
        return cls(micrograph, np.zeros(0), np.zeros(0), **kwargs)
