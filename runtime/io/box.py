"""EMAN .box coordinate files (also what crYOLO, RELION and e2helixboxer read and write).

Convention (checked against RELION's readers in src/preprocessing.cpp / src/helix.cpp and
crYOLO's writer): each line is ``x<TAB>y<TAB>w<TAB>h`` where (x, y) is the box CORNER
``centre - size / 2`` in the SAME image frame as the centre (same axes as RELION's
``_rlnCoordinateX/Y``: x = column, y = row of the image as stored; no y flip). EMAN's own
documentation calls the corner "lower left" because EMAN displays row 0 at the bottom; the numbers
are the same. So:

    reading:  centre = corner + size / 2      (the original EPicker read corners as centres: wrong)
    writing:  corner = round(centre - size / 2), size = round(size): INTEGERS, as EMAN, crYOLO and
              e2helixboxer write them (Topaz's reader raises on decimals and RELION reads the
              columns with integer conversion, which truncated up to 1.8 px). Written then read,
              a centre moves by at most 0.5 px (corner and centre use the same rounded size).

Helical tubes (EMAN2 e2helixboxer / crYOLO filament output, as RELION's
convertEmanHelicalTubeCoordsToMetaDataTable reads them): two lines per straight tube,
``x y w w -1`` (start box) then ``x y w w -2`` (end box), corners as above. epick fibers are
polylines: each straight piece between consecutive vertices is written as one start/end pair; on
reading, pairs whose start equals the previous pair's end are chained back into one tube. A tube
of a single point has no straight piece and is not written. Helix boxes all use the one box size.

Vesicles: each row's box is the vesicle's bounding square (w = h = 2 * radius). On reading, boxes
of different sizes in one file are read as vesicles (radius = w / 2); equal sizes as particles
(diameter = w).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CoordinateError
from ..picks import Picks, micrograph_key
from ._tables import group_indices
from .atomic import atomic_write

HELIX_START, HELIX_END = -1, -2
_CHAIN_TOLERANCE_PX = 1e-6


def _load_rows(path: Path) -> np.ndarray:
    """The numeric rows of a box file as a 2-D float array (blank lines and # comments skipped)."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                rows.append([float(v) for v in text.split()])
            except ValueError as exc:
                raise CoordinateError(path, f"line {number} is not numbers: {line.strip()!r}",
                                      "a .box file holds 'x y w h' per line") from exc
    if not rows:
        return np.zeros((0, 4))
    widths = {len(r) for r in rows}
    if len(widths) != 1 or min(widths) < 4:
        raise CoordinateError(path, f"rows have {sorted(widths)} columns; a .box file has 4 (x y w h) "
                              "or 5 (x y w h tag)", "check the file is an EMAN/crYOLO box file")
    return np.asarray(rows, dtype=np.float64)


def _read_helices(rows: np.ndarray, path: Path, name: str) -> Picks:
    """Start/end pairs (-1/-2 tags) to fiber polylines, chaining pairs that share an endpoint."""
    tags = rows[:, 4].astype(int)
    if rows.shape[0] % 2 or np.any(tags[0::2] != HELIX_START) or np.any(tags[1::2] != HELIX_END):
        raise CoordinateError(path, "helix boxes must come in start (-1) / end (-2) line pairs",
                              "check the file was written by e2helixboxer or crYOLO")
    cx = rows[:, 0] + rows[:, 2] / 2.0
    cy = rows[:, 1] + rows[:, 3] / 2.0
    xs, ys, tubes = [], [], []
    tube = 0
    for i in range(0, rows.shape[0], 2):
        joins = (tube > 0 and abs(cx[i] - xs[-1]) <= _CHAIN_TOLERANCE_PX
                 and abs(cy[i] - ys[-1]) <= _CHAIN_TOLERANCE_PX)
        if not joins:
            tube += 1
            xs.append(cx[i]), ys.append(cy[i]), tubes.append(tube)
        xs.append(cx[i + 1]), ys.append(cy[i + 1]), tubes.append(tube)
    return Picks(name, xs, ys, tube_id=tubes, diameter=float(rows[0, 2]))


def read_box(path: str | Path, *, diameter: float | None = None) -> list[Picks]:
    """Read an EMAN .box file: box corners to centres (particles, vesicles or helix start/end)."""
    path = Path(path)
    rows = _load_rows(path)
    name = micrograph_key(path.name)
    if rows.shape[0] == 0:
        return [Picks.empty(name, diameter=diameter)]
    if rows.shape[1] >= 5 and set(rows[:, 4].astype(int).tolist()) <= {HELIX_START, HELIX_END} \
            and np.all(rows[:, 4] == np.round(rows[:, 4])):
        return [_read_helices(rows, path, name)]
    w, h = rows[:, 2], rows[:, 3]
    x, y = rows[:, 0] + w / 2.0, rows[:, 1] + h / 2.0
    if np.all(w == w[0]) and np.all(h == h[0]):
        return [Picks(name, x, y, diameter=float(w[0]) if diameter is None else diameter)]
    return [Picks(name, x, y, radius=(w + h) / 4.0, diameter=diameter)]


def box_size_for(picks: Picks, diameter: float | None, path: Path) -> float | None:
    """The box size to write: ``diameter``, else Picks.diameter; vesicles may go without one."""
    size = diameter if diameter is not None else picks.diameter
    if size is None and picks.radius is None:
        raise CoordinateError(path, "box writing needs the particle size",
                              "pass --diameter PX (or diameter=PX)")
    return None if size is None else float(size)


def _corner(centre: float, size: int) -> str:
    """The integer box corner for a centre and an integer box size (pixels)."""
    return str(int(np.floor(centre - size / 2.0 + 0.5)))


def box_text(picks: Picks, size: float | None) -> str:
    """The text of a .box file: one integer corner box per object, or start/end pairs for fibers."""
    lines = []
    if picks.tube_id is not None:
        w = max(1, int(round(size)))
        for _, idx in group_indices(picks.tube_id):
            for a, b in zip(idx[:-1], idx[1:]):
                for k, tag in ((a, HELIX_START), (b, HELIX_END)):
                    lines.append("\t".join([_corner(picks.x[k], w), _corner(picks.y[k], w), str(w), str(w), str(tag)]))
        return "\n".join(lines) + ("\n" if lines else "")
    sizes = 2.0 * picks.radius if picks.radius is not None else np.full(len(picks), size)
    for x, y, s in zip(picks.x, picks.y, sizes):
        w = max(1, int(round(s)))
        lines.append("\t".join([_corner(x, w), _corner(y, w), str(w), str(w)]))
    return "\n".join(lines) + ("\n" if lines else "")


def write_box(picks: Picks, path: str | Path, *, diameter: float | None = None) -> Path:
    """Write one micrograph's picks as an EMAN .box file (corner = centre - size/2, atomically)."""
    path = Path(path)
    size = box_size_for(picks, diameter, path)
    if picks.tube_id is not None and size is None:
        raise CoordinateError(path, "helix box writing needs the tube box size", "pass --diameter PX")
    with atomic_write(path) as handle:
        handle.write(box_text(picks, size))
    return path
