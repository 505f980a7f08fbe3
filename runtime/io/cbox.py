"""crYOLO ``.cbox`` files (read), and RELION/crYOLO start-end STAR files for filaments (write).

CBOX (crYOLO >= 1.8, and napari-boxmanager) is a STAR file: ``data_global`` (format version),
``data_cryolo`` with one row per box and, for tomograms, ``data_cryolo_include``::

    _CoordinateX _CoordinateY [_CoordinateZ] _Width _Height [_Depth] _EstWidth _EstHeight
    _Confidence _NumBoxes _Angle [_filamentid]

``_CoordinateX/Y`` are the box CORNER as in EMAN .box files (centre = corner + size / 2; what
napari-boxmanager's reader computes), in pixels of the micrograph; missing values are ``<NA>``.
``_Confidence`` is the pick score; ``_EstWidth/_EstHeight`` crYOLO's estimate of the particle
size, kept as the diameter when the file has no box size; ``_filamentid`` numbers the filament
each box belongs to (boxes of a filament in order along it): read as fiber tube IDs (1-based).
Z (tomograms) is not used: epick picks 2-D micrographs.

Start-end STAR (crYOLO's STAR_START_END output; what RELION's manual picking writes for helices
and its Extract reads as ``MicrographCoordsGroup.star.relion.helixstartend``): per micrograph one
table ``_rlnCoordinateX _rlnCoordinateY`` with two rows per straight tube, its start then its end
(centres). An epick fiber polyline is written as one start-end pair per straight piece between
consecutive points, as the EMAN helix .box writer does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CoordinateError
from ..picks import Picks, micrograph_key
from ._tables import group_indices
from .atomic import atomic_write


def is_cbox(path: str | Path) -> bool:
    """True when the file holds a ``data_cryolo`` block (crYOLO's CBOX)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        head = handle.read(8192)
    return any(line.strip() == "data_cryolo" for line in head.splitlines())


def _column(df, name: str) -> np.ndarray | None:
    """A numeric column (``<NA>`` -> NaN), or None when absent or entirely missing."""
    if name not in df.columns:
        return None
    import pandas as pd

    values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)
    return None if values.size and np.all(np.isnan(values)) else values


def read_cbox(path: str | Path, *, diameter: float | None = None) -> list[Picks]:
    """Read a crYOLO .cbox file: box corners to centres, confidence as score, filaments as fibers."""
    import starfile

    path = Path(path)
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:
        raise CoordinateError(path, f"not a readable CBOX/STAR file ({exc})", "check it was written by crYOLO") from exc
    table = blocks.get("cryolo")
    name = micrograph_key(path.name)
    if table is None or not hasattr(table, "columns"):
        if "cryolo" in blocks:   # an empty data_cryolo block: no picks
            return [Picks.empty(name, diameter=diameter)]
        raise CoordinateError(path, "has no data_cryolo table", "pass a .cbox file written by crYOLO")
    x, y = _column(table, "CoordinateX"), _column(table, "CoordinateY")
    if x is None or y is None or np.isnan(x).any() or np.isnan(y).any():
        raise CoordinateError(path, "has missing _CoordinateX/_CoordinateY values", "pass a .cbox file written by crYOLO")
    width, height = _column(table, "Width"), _column(table, "Height")
    est = _column(table, "EstWidth")
    if width is None or np.isnan(width).any():
        raise CoordinateError(path, "has no box size (_Width)", "pass a .cbox file written by crYOLO")
    height = width if height is None or np.isnan(height).any() else height
    cx, cy = x + width / 2.0, y + height / 2.0
    score = _column(table, "Confidence")
    if score is not None:
        score = np.nan_to_num(score, nan=1.0)
    size = float(np.median(width)) if diameter is None else diameter
    if diameter is None and est is not None and np.isfinite(est).all() and len(set(width.tolist())) > 1:
        size = float(np.median(est))
    fid = _column(table, "filamentid")
    if fid is not None:
        if np.isnan(fid).any():
            raise CoordinateError(path, "has boxes without a _filamentid", "pass a complete crYOLO filament .cbox")
        ids = np.zeros(fid.size, dtype=np.int64)
        for tube, (_, rows) in enumerate(group_indices(fid.astype(np.int64)), 1):
            ids[rows] = tube
        order = np.argsort(ids, kind="stable")
        return [Picks(name, cx[order], cy[order], score=None if score is None else score[order],
                      tube_id=ids[order], diameter=size)]
    return [Picks(name, cx, cy, score=score, diameter=size)]


def start_end_text(picks: Picks) -> str:
    """A per-micrograph start-end STAR: two rows (start, end centre) per straight tube piece."""
    if picks.tube_id is None:
        raise ValueError("start-end files hold filaments: these picks have no tube IDs")
    lines = ["", "# version 30001", "", "data_", "", "loop_", "_rlnCoordinateX #1 ", "_rlnCoordinateY #2 "]
    for _, idx in group_indices(picks.tube_id):
        for a, b in zip(idx[:-1], idx[1:]):
            lines.append(f"{picks.x[a]:12.6f} {picks.y[a]:12.6f}")
            lines.append(f"{picks.x[b]:12.6f} {picks.y[b]:12.6f}")
    return "\n".join(lines) + "\n\n"


def write_start_end(picks: Picks, path: str | Path) -> Path:
    """Write one micrograph's fibers as a RELION/crYOLO start-end STAR file (atomically)."""
    path = Path(path)
    if picks.tube_id is None:
        raise CoordinateError(path, "start-end STAR files hold filaments, and these picks are not fibers",
                              "use --to star for particles")
    with atomic_write(path) as handle:
        handle.write(start_end_text(picks))
    return path
