"""Topaz coordinate tables and plain CSV coordinate files.

Topaz (``topaz extract`` output, one file for many micrographs; what ``topaz train`` reads)::

    image_name<TAB>x_coord<TAB>y_coord<TAB>score
    mic_0001<TAB>1270<TAB>181<TAB>3.52

``image_name`` is the micrograph file name without extension; x_coord/y_coord are particle
centres in pixels of the image (column, row: epick's convention); the score is Topaz's logit
(any real number; kept as it is). Files without a score column are accepted.

Plain CSV (one micrograph per file): comma-, tab- or space-separated ``x,y[,score]`` with or
without a header. With a header, the columns are found by name (x/y/score, also x_coord/y_coord,
and epick's optional radius / tube_id columns). Centres in pixels, epick convention.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import CoordinateError
from ..picks import Picks, micrograph_key
from .atomic import atomic_write
from ._tables import number_text, text_column

TOPAZ_HEADER = ("image_name", "x_coord", "y_coord", "score")
_ALIASES = {"x": "x", "x_coord": "x", "coordinatex": "x", "rlncoordinatex": "x",
            "y": "y", "y_coord": "y", "coordinatey": "y", "rlncoordinatey": "y",
            "score": "score", "confidence": "score", "fom": "score",
            "radius": "radius", "tube_id": "tube_id", "image_name": "image_name",
            "micrograph": "image_name"}


def _split(line: str) -> list[str]:
    """Fields of one line: comma- or tab-separated, else whitespace-separated."""
    for sep in ("\t", ","):
        if sep in line:
            return [f.strip() for f in line.split(sep)]
    return line.split()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_table(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    """(header names or None, data rows) of a delimited text file; blank and # lines skipped."""
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        lines = [ln.rstrip("\r\n") for ln in handle]
    rows = [_split(ln) for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if rows and not all(_is_number(v) for v in rows[0]):
        header = [_ALIASES.get(v.strip().lower(), v.strip().lower()) for v in rows[0]]
        return header, rows[1:]
    return None, rows


def is_topaz_table(path: str | Path) -> bool:
    """True when the file's first non-comment line is a Topaz header (image_name, x_coord, ...)."""
    try:
        header, _ = _read_table(Path(path))
    except OSError:
        return False
    return header is not None and "image_name" in header


def _numbers(path: Path, rows: list[list[str]], col: int, what: str) -> np.ndarray:
    return text_column(path, rows, col, f"column {what} has a missing or non-numeric value",
                       "every row needs x and y numbers")


def read_csv(path: str | Path) -> list[Picks]:
    """Read a plain CSV or a Topaz table; Topaz tables give one Picks per image_name."""
    path = Path(path)
    header, rows = _read_table(path)
    if header is None:
        header = ["x", "y", "score", "radius", "tube_id"][: len(rows[0]) if rows else 2]
    for needed in ("x", "y"):
        if needed not in header:
            raise CoordinateError(path, f"has no {needed} column (header: {header})",
                                  "use a header x,y[,score] or Topaz's image_name x_coord y_coord score")
    cols = {name: header.index(name) for name in ("x", "y", "score", "radius", "tube_id") if name in header}

    def picks_of(name: str, sel: list[list[str]]) -> Picks:
        get = {k: _numbers(path, sel, c, k) for k, c in cols.items()}
        return Picks(name, get["x"], get["y"], score=get.get("score"), radius=get.get("radius"),
                     tube_id=None if "tube_id" not in get else get["tube_id"].astype(np.int64))

    if "image_name" not in header:
        return [picks_of(micrograph_key(path.name), rows)]
    col = header.index("image_name")
    groups: dict[str, list[list[str]]] = {}
    for r in rows:
        groups.setdefault(r[col], []).append(r)
    return [picks_of(name, sel) for name, sel in groups.items()]


def write_topaz(picks_list: Sequence[Picks], path: str | Path) -> Path:
    """Write many micrographs' picks as one Topaz table (image_name = micrograph key)."""
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write("\t".join(TOPAZ_HEADER) + "\n")
        for picks in picks_list:
            name = picks.key
            for x, y, s in zip(picks.x, picks.y, picks.score_or(1.0)):
                handle.write(f"{name}\t{number_text(x)}\t{number_text(y)}\t{number_text(s)}\n")
    return path


def write_csv(picks: Picks, path: str | Path) -> Path:
    """Write one micrograph's picks as plain CSV with header x,y,score[,radius][,tube_id]."""
    path = Path(path)
    names = ["x", "y", "score"]
    columns = [picks.x, picks.y, picks.score_or(1.0)]
    if picks.radius is not None:
        names.append("radius"), columns.append(picks.radius)
    if picks.tube_id is not None:
        names.append("tube_id"), columns.append(picks.tube_id)
    with atomic_write(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        for row in zip(*columns):
            writer.writerow([number_text(v) for v in row])
    return path
