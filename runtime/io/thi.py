"""EPicker ``.thi`` coordinate files (read only), as the original EPicker (thuem/EPicker) writes them.

Per micrograph (lib/mrc_utils/thi.py and fiber.py there), a bracketed header line naming the
columns, one object per line, then ``[End]``::

    [Particle Coordinates: X Y Value]          x<TAB>y<TAB>score
    [Vesicle Coordinates: X Y Radius Value]    x<TAB>y<TAB>radius<TAB>score
    [Helix Coordinates: X Y Group Value]       x y tube_id 1.0     (points in order along each tube)

X, Y are centres in pixels of the original micrograph (EPicker scales its 1024-wide network
coordinates by nx / 1024), column/row as stored: epick's convention. Radius is in the same pixels.

``merge_results.thi`` (written by EPicker's pick.py) is an index: a bracketed header that may span
several lines, then ``MICROGRAPH_PATH THI_PATH`` per line; reading it reads every listed file
(relative paths resolved against the index's folder) and names each Picks by its micrograph.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CoordinateError
from ..picks import Picks, micrograph_key
from ._tables import text_column


def _header_and_rows(path: Path) -> tuple[str, list[list[str]]]:
    """The bracketed header text (lower case, may span lines) and the data rows before [End]."""
    header, rows, in_header = [], [], False
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            text = line.strip()
            if not text:
                continue
            if in_header or (text.startswith("[") and not header):
                header.append(text)
                in_header = not text.endswith("]")
                continue
            if text.lower().startswith("[end"):
                break
            rows.append(text.split())
    if not header:
        raise CoordinateError(path, "has no [... Coordinates: ...] header line",
                              "pass a .thi file written by EPicker")
    return " ".join(header).lower(), rows


def _column(path: Path, rows: list[list[str]], index: int) -> np.ndarray:
    return text_column(path, rows, index, f"a row lacks a number in column {index + 1}",
                       "check the file is a complete EPicker .thi file")


def read_thi(path: str | Path) -> list[Picks]:
    """Read an EPicker .thi file (particles, vesicles or helices) or a merge_results.thi index."""
    path = Path(path)
    header, rows = _header_and_rows(path)
    name = micrograph_key(path.name)
    if "micrograph" in header and "path" in header:
        return _read_index(path, rows)
    if "helix" in header:
        return [Picks(name, _column(path, rows, 0), _column(path, rows, 1),
                      tube_id=_column(path, rows, 2).astype(np.int64))]
    if "vesicle" in header:
        return [Picks(name, _column(path, rows, 0), _column(path, rows, 1),
                      radius=_column(path, rows, 2), score=_column(path, rows, 3))]
    if "particle" in header:
        return [Picks(name, _column(path, rows, 0), _column(path, rows, 1), score=_column(path, rows, 2))]
    raise CoordinateError(path, f"has an unknown header {header!r}",
                          "expected [Particle|Vesicle|Helix Coordinates: ...] as EPicker writes")


def _read_index(path: Path, rows: list[list[str]]) -> list[Picks]:
    """Read each .thi a merge_results.thi lists, naming the Picks by the micrograph path."""
    out = []
    for row in rows:
        if len(row) < 2:
            raise CoordinateError(path, f"index line {' '.join(row)!r} lacks the .thi path",
                                  "each line is 'MICROGRAPH_PATH THI_PATH'")
        listed = Path(row[1])
        if not listed.is_absolute() and not listed.exists():
            listed = path.parent / listed
        if not listed.exists():
            listed = path.parent / Path(row[1]).name  # index moved together with its .thi files
        for picks in read_thi(listed):
            picks.micrograph = row[0]
            out.append(picks)
    return out
