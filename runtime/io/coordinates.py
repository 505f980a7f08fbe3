"""Read and write coordinate files in every common format; the one entry point for the rest of epick.

Formats (name: suffixes, module):

- ``star``:  .star                       RELION (``star.py``)
- ``box``:   .box                        EMAN / crYOLO / e2helixboxer (``box.py``)
- ``csv``:   .csv, .txt, .tsv, .coord    plain x,y[,score] per micrograph (``csvfmt.py``)
- ``topaz``: .txt/.tsv/.csv with an ``image_name`` header: Topaz table, many micrographs (``csvfmt.py``)
- ``cs``:    .cs                         cryoSPARC particles (``cryosparc.py``)
- ``thi``:   .thi                        EPicker (read only, ``thi.py``)
- ``cbox``:  .cbox                       crYOLO (read only, ``cbox.py``; filaments as fibers)
- ``startend``: NAME_start_end.star      RELION / crYOLO helix start-end pairs (write only, fibers, ``cbox.py``)

Every reader returns centres in original-micrograph pixels (epick's convention, see
``epick.runtime.picks``); corner and fraction formats convert inside their module.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from ..errors import CoordinateError
from ..picks import Picks, micrograph_key
from ._tables import nonfinite_problem
from .star import write_autopick_index  # re-exported: used by `epick pick`

__all__ = ["FORMATS", "READ_FORMATS", "WRITE_FORMATS", "SUFFIXES", "MULTI_MICROGRAPH_FORMATS", "INDEX_NAMES",
           "detect_format", "read_picks", "write_picks", "write_autopick_index", "find_coordinate_files"]

READ_FORMATS = ("star", "box", "csv", "topaz", "cs", "thi", "cbox")
WRITE_FORMATS = ("star", "box", "csv", "topaz", "cs", "startend")
FORMATS = READ_FORMATS
MULTI_MICROGRAPH_FORMATS = ("topaz", "cs")  # one file holds many micrographs
SUFFIXES = {"star": ".star", "box": ".box", "csv": ".csv", "topaz": ".txt", "cs": ".cs", "thi": ".thi",
            "cbox": ".cbox", "startend": "_start_end.star"}
# job-level indexes list the per-micrograph files beside them: inside a folder they are skipped so
# no micrograph is read twice (name one explicitly to read through it)
INDEX_NAMES = ("autopick.star", "manualpick.star", "merge_results.thi")
# a folder holding RELION_INDEX_NAMES and one of RELION_JOB_MARKERS (or no coordinate files of its
# own) is a RELION AutoPick / ManualPick / External job: it is read through its index
RELION_INDEX_NAMES = ("autopick.star", "manualpick.star")
RELION_JOB_MARKERS = ("job.star", "note.txt", "RELION_JOB_EXIT_SUCCESS", "RELION_OUTPUT_NODES.star")
# one table per run written by `epick pick` beside its per-micrograph files (runtime/io/job_tables.py)
JOB_TABLE_NAMES = ("particles.star", "picks_topaz.txt", "particles.cs")
_SUFFIX_TO_FORMAT = {".star": "star", ".box": "box", ".cs": "cs", ".thi": "thi", ".cbox": "cbox",
                     ".csv": "csv", ".txt": "csv", ".tsv": "csv", ".coord": "csv"}


def _sniff(path: Path) -> str | None:
    """Format from the file's first bytes, or None when they say nothing."""
    from .cryosparc import is_cs_file
    from .csvfmt import is_topaz_table

    if is_cs_file(path):
        return "cs"
    with open(path, "rb") as handle:
        head = handle.read(4096).decode("utf-8", errors="replace")
    body = [ln.strip() for ln in head.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not body:
        return None
    if "data_cryolo" in body[:50]:
        return "cbox"
    if body[0].startswith("data_") or any(ln.startswith("_rln") for ln in body[:50]):
        return "star"
    if body[0].startswith("["):
        return "thi"
    if is_topaz_table(path):
        return "topaz"
    return None


def detect_format(path: str | Path) -> str:
    """The format of an existing coordinate file: by content where it is telling, else by suffix."""
    path = Path(path)
    if not path.is_file():
        raise CoordinateError(path, "does not exist or is not a file", "check the path")
    sniffed = _sniff(path)
    if sniffed is not None:
        return sniffed
    by_suffix = _SUFFIX_TO_FORMAT.get(path.suffix.lower())
    if by_suffix is None:
        raise CoordinateError(path, "is of an unknown coordinate format",
                              f"use one of the suffixes {sorted(_SUFFIX_TO_FORMAT)}")
    return by_suffix


def format_for_output(path: str | Path, fmt: str | None) -> str:
    """The format to write: ``fmt`` if given, else from the output suffix."""
    if fmt is not None:
        if fmt not in WRITE_FORMATS:
            raise CoordinateError(path, f"cannot write format {fmt!r}", f"choose one of {WRITE_FORMATS}")
        return fmt
    by_suffix = _SUFFIX_TO_FORMAT.get(Path(path).suffix.lower())
    if by_suffix is None or by_suffix not in WRITE_FORMATS:
        raise CoordinateError(path, "output format cannot be told from the suffix",
                              f"pass fmt= one of {WRITE_FORMATS}")
    return by_suffix


def read_picks(path: str | Path, *, shape: tuple[int, int] | None = None,
               diameter: float | None = None) -> list[Picks]:
    """Read a coordinate file of any supported format into one Picks per micrograph.

    ``shape`` (ny, nx) and ``diameter`` (px) fill in what the file does not carry.
    """
    path = Path(path)
    fmt = detect_format(path)
    try:
        picks_list = _read_format(path, fmt, diameter)
    except (CoordinateError, OSError):
        raise
    except Exception as exc:   # a reader met a value it did not expect: one line, never a traceback
        raise CoordinateError(path, f"cannot be read as {fmt} ({type(exc).__name__}: {exc})",
                              "check that the file is complete and of that format") from exc
    for picks in picks_list:
        problem = nonfinite_problem(picks)
        if problem:
            raise CoordinateError(path, problem, "coordinates, scores and radii must be finite numbers; "
                                  "fix or remove those rows")
        for what in ("diameter", "pixel_size"):
            value = getattr(picks, what, None)
            if value is not None and not (math.isfinite(float(value)) and float(value) > 0):
                raise CoordinateError(path, f"gives micrograph {picks.micrograph} a {what} of {value}",
                                      "it must be a positive number; fix the file")
        if picks.shape is None and shape is not None:
            picks.shape = (int(shape[0]), int(shape[1]))
        if picks.diameter is None and diameter is not None:
            picks.diameter = float(diameter)
    return picks_list


def _read_format(path: Path, fmt: str, diameter: float | None) -> list[Picks]:
    """The reader of ``fmt`` applied to ``path``."""
    if fmt == "star":
        from .star import read_star
        picks_list = read_star(path)
    elif fmt == "box":
        from .box import read_box
        picks_list = read_box(path, diameter=diameter)
    elif fmt in ("csv", "topaz"):
        from .csvfmt import read_csv
        picks_list = read_csv(path)
    elif fmt == "cs":
        from .cryosparc import read_cs
        picks_list = read_cs(path)
    elif fmt == "cbox":
        from .cbox import read_cbox
        picks_list = read_cbox(path, diameter=diameter)
    else:
        from .thi import read_thi
        picks_list = read_thi(path)
    return picks_list


def write_picks(picks: Picks | Sequence[Picks], path: str | Path, fmt: str | None = None, *,
                diameter: float | None = None) -> Path:
    """Write picks to ``path`` (atomically) in ``fmt`` (default: from the suffix).

    Per-micrograph formats (star, box, csv) take one Picks; topaz and cs take one or many.
    ``diameter`` (px) overrides Picks.diameter (box writing needs one of them).
    """
    path = Path(path)
    fmt = format_for_output(path, fmt)
    many = [picks] if isinstance(picks, Picks) else list(picks)
    for one in many:   # never write a NaN/Inf row
        problem = nonfinite_problem(one)
        if problem:
            raise CoordinateError(path, f"not written: {problem}", "coordinates must be finite numbers")
    if fmt in MULTI_MICROGRAPH_FORMATS:
        if fmt == "cs":
            from .cryosparc import write_cs
            return write_cs(many, path)
        from .csvfmt import write_topaz
        return write_topaz(many, path)
    if len(many) != 1:
        raise CoordinateError(path, f"{fmt} holds one micrograph but {len(many)} were given",
                              "write one file per micrograph (epick convert does this)")
    one = many[0]
    if fmt == "star":
        from .star import write_star
        return write_star(one, path, diameter=diameter)
    if fmt == "box":
        from .box import write_box
        return write_box(one, path, diameter=diameter)
    if fmt == "startend":
        from .cbox import write_start_end
        return write_start_end(one, path)
    from .csvfmt import write_csv
    return write_csv(one, path)


# a folder written by `epick pick --format star,box,cs,csv` holds each micrograph in several formats:
# inside a folder only the first of these per micrograph is read (star keeps scores and diameter)
_FOLDER_PREFERENCE = (".star", ".cs", ".cbox", ".csv", ".tsv", ".txt", ".coord", ".box", ".thi")


def _one_format_per_micrograph(found: list[Path]) -> list[Path]:
    """Of files in one folder, one per micrograph key: the format earliest in _FOLDER_PREFERENCE."""
    best: dict[str, Path] = {}
    for path in found:
        key = micrograph_key(path.name)
        rank = _FOLDER_PREFERENCE.index(path.suffix.lower())
        if key not in best or rank < _FOLDER_PREFERENCE.index(best[key].suffix.lower()):
            best[key] = path
    kept = set(best.values())
    return [p for p in found if p in kept]


def find_coordinate_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files given, plus the coordinate files (by suffix) inside folders given, sorted per folder;
    index files (INDEX_NAMES) inside folders are skipped, and a micrograph with files in several
    formats in one folder is read once (STAR first, then .cs, CSV/Topaz, .box, .thi). A RELION job
    folder is read through its autopick.star / manualpick.star; epick pick's job tables are skipped
    where the per-micrograph files are beside them."""
    out: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            index = next((item / n for n in RELION_INDEX_NAMES if (item / n).is_file()), None)
            if index is not None and any((item / m).exists() for m in RELION_JOB_MARKERS):
                out.append(index)   # a RELION job folder: its coordinate files lie in subfolders
                continue
            found = sorted(p for p in item.iterdir()
                           if p.is_file() and p.suffix.lower() in _SUFFIX_TO_FORMAT and not p.name.startswith(".")
                           and p.name not in INDEX_NAMES)
            if any(p.name not in JOB_TABLE_NAMES for p in found):   # epick pick's job tables repeat them
                found = [p for p in found if p.name not in JOB_TABLE_NAMES]
            if not found and index is not None:
                out.append(index)
                continue
            if not found:
                raise CoordinateError(item, "holds no coordinate files",
                                      f"expected files ending in {sorted(_SUFFIX_TO_FORMAT)}")
            out.extend(_one_format_per_micrograph(found))
        elif item.is_file():
            out.append(item)
        else:
            raise CoordinateError(item, "does not exist", "check the path")
    return out
