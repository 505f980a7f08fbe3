"""RELION STAR coordinate files: per-micrograph autopick files, particles.star, autopick.star index.

Coordinates: ``_rlnCoordinateX/Y`` are particle CENTRES in pixels of the micrograph as stored
(x = column, y = row, origin at the centre of the top-left pixel): exactly epick's convention, so
no conversion happens here.

What is written (one micrograph, ``NAME_autopick.star`` as RELION autopick writes it)::

    # diameter_px 108.0            (epick comment; RELION skips comment lines)
    data_
    loop_
    _rlnCoordinateX #1
    _rlnCoordinateY #2
    _rlnClassNumber #3             (dummy 0)
    _rlnAutopickFigureOfMerit #4   (the pick score)
    _rlnAnglePsi #5                (dummy -999: unknown)
    _rlnEpickRadius #6             (vesicles only: radius in pixels; RELION ignores unknown labels)

Fibers are written as RELION helical segment picks (the columns relion_autopick writes for
helical segments, see RELION src/autopicker.cpp and src/helix.cpp)::

    _rlnCoordinateX _rlnCoordinateY _rlnAutopickFigureOfMerit _rlnHelicalTubeID (1-based)
    _rlnAngleTiltPrior (90) _rlnAnglePsiPrior (-atan2(dy, dx) in degrees along the tube)
    _rlnHelicalTrackLengthAngst (distance along the tube from its first point in Angstrom = pixels
    x pixel size; the column is left out when the pixel size is unknown, never pixels under an
    Angstrom label) _rlnAnglePsiFlipRatio (0.5: polarity unknown)

Reading accepts: comment lines anywhere (``# diameter_px D`` sets the diameter), files with or
without the optional columns, RELION 3.1+ files with ``data_optics`` + ``data_particles``
(rows grouped by ``_rlnMicrographName`` into one Picks per micrograph), and the job-level
``autopick.star`` index (``_rlnMicrographName`` + ``_rlnMicrographCoordinates``), which reads
every file it lists.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import CoordinateError
from ..picks import Picks, micrograph_key
from ._tables import group_indices, number_column
from .atomic import atomic_write

RADIUS_LABEL = "rlnEpickRadius"
UNKNOWN_PSI = -999.0
BIMODAL_PSI_FLIP_RATIO = 0.5
_DIAMETER_COMMENT = re.compile(r"^\s*#\s*diameter_px\s+([-+0-9.eE]+)")
_PIXEL_SIZE_COMMENT = re.compile(r"^\s*#\s*pixel_size_A\s+([-+0-9.eE]+)")


def _comment_value(path: Path, pattern: re.Pattern) -> float | None:
    """The number in the first comment line matching ``pattern``, or None."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            match = pattern.match(line)
            if match:
                return float(match.group(1))
    return None


def _read_blocks(path: Path) -> dict:
    """All data blocks of a STAR file as {name: DataFrame or dict}, via the starfile library."""
    import starfile  # lazy: pulls in pandas

    try:
        return starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises many kinds on malformed text
        raise CoordinateError(path, f"not a readable STAR file ({exc})",
                              "check that it is a RELION STAR file with a data_ block and a loop_") from exc


def _column(df, label: str, dtype=np.float64, path: Path | str = "STAR file") -> np.ndarray | None:
    """A column as an array (a non-numeric cell is a CoordinateError naming its row), or None when
    the label is absent."""
    if label not in df.columns:
        return None
    return number_column(path, df[label], "_" + label).astype(dtype)


def _picks_from_table(df, micrograph: str, path: Path, *, diameter: float | None,
                      pixel_size: float | None) -> Picks:
    """One Picks from a coordinate table (a DataFrame holding rlnCoordinateX/Y)."""
    if "rlnCoordinateX" not in df.columns or "rlnCoordinateY" not in df.columns:
        raise CoordinateError(path, "has no _rlnCoordinateX/_rlnCoordinateY columns",
                              "pass a RELION coordinate or particles STAR file")
    score = _column(df, "rlnAutopickFigureOfMerit", path=path)
    if score is not None and score.size and np.all(score == UNKNOWN_PSI):
        score = None  # manual picks carry -999 as "no figure of merit"
    tube = _column(df, "rlnHelicalTubeID", path=path)
    if tube is not None:
        if not np.isfinite(tube).all():
            raise CoordinateError(path, "column _rlnHelicalTubeID holds a NaN/Inf tube ID", "fix or remove that row")
        tube = tube.astype(np.int64)
    return Picks(micrograph, _column(df, "rlnCoordinateX", path=path), _column(df, "rlnCoordinateY", path=path),
                 score=score, radius=_column(df, RADIUS_LABEL, path=path), tube_id=tube,
                 diameter=diameter, pixel_size=pixel_size)


def _optics_pixel_size(blocks: dict) -> float | None:
    """Micrograph pixel size (A/px) from a data_optics block, when it has one."""
    optics = blocks.get("optics")
    if optics is None or not hasattr(optics, "columns") or "rlnMicrographPixelSize" not in optics.columns:
        return None
    values = np.unique(np.asarray(optics["rlnMicrographPixelSize"], dtype=np.float64))
    return float(values[0]) if values.size == 1 else None


def read_micrograph_star(path: str | Path) -> list[tuple[str, float | None]]:
    """(rlnMicrographName exactly as written, pixel size in A/px or None) per row of a RELION
    micrograph list (``micrographs_ctf.star``, ``corrected_micrographs.star``, a Select job's
    ``micrographs.star``): RELION 3.1+ with ``data_optics`` (pixel size per ``rlnOpticsGroup``) or
    a 3.0 file with one table."""
    path = Path(path)
    blocks = _read_blocks(path)
    tables = [df for name, df in blocks.items() if hasattr(df, "columns") and name != "optics"]
    table = next((df for df in tables if "rlnMicrographName" in df.columns
                  and "rlnCoordinateX" not in df.columns and "rlnMicrographCoordinates" not in df.columns), None)
    if table is None:
        raise CoordinateError(path, "is not a RELION micrograph list (no table with _rlnMicrographName)",
                              "pass micrographs_ctf.star or corrected_micrographs.star of a RELION job")
    names = [str(v) for v in table["rlnMicrographName"]]
    sizes: dict[int, float] = {}
    optics = blocks.get("optics")
    if optics is not None and hasattr(optics, "columns") and "rlnMicrographPixelSize" in optics.columns:
        groups = optics["rlnOpticsGroup"] if "rlnOpticsGroup" in optics.columns else range(1, len(optics) + 1)
        sizes = {int(g): float(a) for g, a in zip(groups, optics["rlnMicrographPixelSize"])}
    if "rlnOpticsGroup" in table.columns:
        pixel = [sizes.get(int(g)) for g in table["rlnOpticsGroup"]]
    else:
        single = next(iter(sizes.values())) if len(sizes) == 1 else None
        pixel = [single] * len(names)
    return list(zip(names, pixel))


def is_micrograph_star(path: str | Path) -> bool:
    """True for a .star file that lists micrographs (rlnMicrographName) but holds no coordinates."""
    path = Path(path)
    if path.suffix.lower() != ".star" or not path.is_file():
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        labels = {ln.split()[0] for ln in handle if ln.lstrip().startswith("_rln")}
    return ("_rlnMicrographName" in labels and "_rlnCoordinateX" not in labels
            and "_rlnMicrographCoordinates" not in labels)


def expand_micrograph_lists(items) -> list[str]:
    """``items`` with every RELION micrograph list (micrographs_ctf.star, ...) replaced by the
    micrographs it names, resolved like an index's paths (working directory or project folder)."""
    out: list[str] = []
    for item in items:
        if is_micrograph_star(item):
            for name, _ in read_micrograph_star(item):
                listed = Path(name)
                if listed.is_absolute() or listed.exists():
                    out.append(str(listed))
                else:
                    out.append(str(_resolve_listed(name, Path(item))))
        else:
            out.append(str(item))
    return out


def _resolve_listed(path_text: str, index_path: Path) -> Path:
    """A path listed in an index: relative to the index's folder, one of its parents (RELION
    project dir), or the working directory; absolute paths as they are."""
    listed = Path(path_text)
    if listed.is_absolute():
        return listed
    for base in (index_path.parent, *index_path.parent.parents, Path.cwd()):
        if (base / listed).exists():
            return base / listed
    raise CoordinateError(index_path, f"lists {path_text}, which is not found relative to the index "
                          "folder, its parent folders or the working directory",
                          "run from the RELION project folder or fix the paths in the index")


def read_star(path: str | Path) -> list[Picks]:
    """Read a RELION STAR coordinate file (per-micrograph, particles.star or autopick.star index)."""
    path = Path(path)
    blocks = _read_blocks(path)
    diameter = _comment_value(path, _DIAMETER_COMMENT)
    pixel_size = _optics_pixel_size(blocks) or _comment_value(path, _PIXEL_SIZE_COMMENT)
    tables = {name: df for name, df in blocks.items() if hasattr(df, "columns")}
    for df in tables.values():
        if "rlnMicrographCoordinates" in df.columns and "rlnMicrographName" in df.columns:
            return _read_index_table(df, path)
    for df in tables.values():
        if "rlnCoordinateX" not in df.columns:
            continue
        if "rlnMicrographName" in df.columns:
            out = []
            for mic, rows in group_indices(np.asarray(df["rlnMicrographName"], dtype=str)):
                out.append(_picks_from_table(df.iloc[rows], str(mic), path, diameter=diameter,
                                             pixel_size=pixel_size))
            return out
        return [_picks_from_table(df, micrograph_key(path.name), path, diameter=diameter,
                                  pixel_size=pixel_size)]
    raise CoordinateError(path, "has no coordinate table (no loop_ with _rlnCoordinateX/Y)",
                          "pass a RELION coordinate, particles or autopick.star index file")


def _read_index_table(df, index_path: Path) -> list[Picks]:
    """Read every coordinate file an autopick.star index lists; name each Picks by its micrograph."""
    out = []
    for mic, coords in zip(df["rlnMicrographName"], df["rlnMicrographCoordinates"]):
        for picks in read_star(_resolve_listed(str(coords), index_path)):
            picks.micrograph = str(mic)
            out.append(picks)
    return out


def _fmt(value: float) -> str:
    """A float as RELION writes coordinates (%12.6f)."""
    return f"{value:12.6f}"


def fiber_geometry(picks: Picks) -> tuple[np.ndarray, np.ndarray]:
    """Per point of each tube: in-plane direction psi (degrees, atan2(dy, dx) towards the next
    point; the last point uses the previous segment) and distance from the tube's first point (px)."""
    psi = np.zeros(len(picks))
    track = np.zeros(len(picks))
    for _, idx in group_indices(picks.tube_id):
        x, y = picks.x[idx], picks.y[idx]
        if idx.size > 1:
            seg = np.degrees(np.arctan2(np.diff(y), np.diff(x)))
            psi[idx] = np.append(seg, seg[-1])
            track[idx] = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    return psi, track


def star_text(picks: Picks, *, diameter: float | None = None) -> str:
    """The text of a per-micrograph RELION autopick STAR file for these picks."""
    diameter = diameter if diameter is not None else picks.diameter
    scores = picks.score_or(1.0)
    lines = ["", "# version 30001"]
    if diameter is not None:
        lines.append(f"# diameter_px {float(diameter)!r}")
    if picks.pixel_size is not None:
        lines.append(f"# pixel_size_A {float(picks.pixel_size)!r}")
    lines += ["", "data_", "", "loop_"]
    if picks.tube_id is not None:
        psi, track_px = fiber_geometry(picks)
        has_track = picks.pixel_size is not None and picks.pixel_size > 0
        labels = ["rlnCoordinateX", "rlnCoordinateY", "rlnAutopickFigureOfMerit", "rlnHelicalTubeID",
                  "rlnAngleTiltPrior", "rlnAnglePsiPrior"] + (["rlnHelicalTrackLengthAngst"] if has_track else []) \
            + ["rlnAnglePsiFlipRatio"]
        track = track_px * (picks.pixel_size if has_track else 0.0)
        rows = [f"{_fmt(x)} {_fmt(y)} {_fmt(s)} {t:12d} {_fmt(90.0)} {_fmt(-p)} "
                + (f"{_fmt(L)} " if has_track else "") + _fmt(BIMODAL_PSI_FLIP_RATIO)
                for x, y, s, t, p, L in zip(picks.x, picks.y, scores, picks.tube_id, psi, track)]
    else:
        labels = ["rlnCoordinateX", "rlnCoordinateY", "rlnClassNumber", "rlnAutopickFigureOfMerit",
                  "rlnAnglePsi"]
        radius = picks.radius
        if radius is not None:
            labels.append(RADIUS_LABEL)
        rows = []
        for i, (x, y, s) in enumerate(zip(picks.x, picks.y, scores)):
            row = f"{_fmt(x)} {_fmt(y)} {0:12d} {_fmt(s)} {UNKNOWN_PSI:12.5f}"
            if radius is not None:
                row += f" {_fmt(radius[i])}"
            rows.append(row)
    lines += [f"_{label} #{i + 1} " for i, label in enumerate(labels)]
    lines += rows
    lines.append("")
    return "\n".join(lines) + "\n"


def write_star(picks: Picks, path: str | Path, *, diameter: float | None = None) -> Path:
    """Write one micrograph's picks as a RELION autopick STAR file (atomically)."""
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(star_text(picks, diameter=diameter))
    return path


def star_string(text: str, source: str | Path = "STAR file") -> str:
    """``text`` as one STAR value: as it is, or in quotes when it holds whitespace or starts like a
    keyword, a comment or a quote (RELION and the starfile library read quoted values)."""
    if any(ord(ch) < 32 or ch == "\x7f" for ch in text):
        raise CoordinateError(source, f"{text!r} holds a line break or control character, which a STAR file "
                              "cannot hold", "rename the file")
    needs = (not text or any(ch.isspace() for ch in text) or "#" in text or text[0] in "'\"$_;"
             or text.lower().startswith(("data_", "loop_", "save_", "global_", "stop_")))
    if not needs:
        return text
    quote = "'" if '"' in text else '"'
    if quote in text:
        raise CoordinateError(source, f"{text!r} holds spaces and both kinds of quotes, which a STAR value "
                              "cannot hold", "rename the file")
    return f"{quote}{text}{quote}"


def write_autopick_index(out_dir: str | Path, entries: Iterable[tuple[str | Path, str | Path]],
                         name: str = "autopick.star") -> Path:
    """Write RELION's job-level coordinate index ``out_dir/autopick.star``.

    ``entries``: (micrograph path, coordinate STAR path) pairs, written as given (quoted when they
    hold spaces, see :func:`star_string`); RELION expects
    both relative to the project directory, and ``read_star`` resolves them relative to the index
    folder, its parents or the working directory.
    """
    out = Path(out_dir) / name
    lines = ["", "# version 30001", "", "data_coordinate_files", "", "loop_",
             "_rlnMicrographName #1 ", "_rlnMicrographCoordinates #2 "]
    for mic, coords in entries:
        lines.append(f"{star_string(str(mic), out)} {star_string(str(coords), out)}")
    with atomic_write(out) as handle:
        handle.write("\n".join(lines) + "\n\n")
    return out
