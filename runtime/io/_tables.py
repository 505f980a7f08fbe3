"""Small helpers shared by the coordinate format modules (star, box, csvfmt, cryosparc, thi)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CoordinateError


def number_text(value: float) -> str:
    """A number as short as it can be written exactly: ``657`` for 657.0, else repr (``657.25``)."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def group_indices(labels) -> list[tuple[object, np.ndarray]]:
    """(label, row indices) per distinct label, labels in first-seen order, rows in file order.

    Linear-logarithmic in the number of rows (a particles file may hold millions of rows over
    thousands of micrographs).
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    uniques, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse.reshape(-1), minlength=uniques.size))[:-1]
    groups = np.split(order, bounds)
    return [(uniques[k].item() if hasattr(uniques[k], "item") else uniques[k], groups[k])
            for k in np.argsort(first, kind="stable")]


def text_column(path: Path, rows: list[list[str]], index: int, problem: str, fix: str) -> np.ndarray:
    """Column ``index`` of split text rows as float64; a missing or non-numeric cell raises
    ``CoordinateError(path, problem, fix)``."""
    try:
        return np.asarray([float(r[index]) for r in rows], dtype=np.float64)
    except (ValueError, IndexError) as exc:
        row = next(i for i, r in enumerate(rows) if not _is_number_cell(r, index))
        cell = repr(rows[row][index]) if index < len(rows[row]) else "missing"
        raise CoordinateError(path, f"{problem} (data row {row + 1}: {cell})", fix) from exc


def _is_number_cell(row: list[str], index: int) -> bool:
    try:
        float(row[index])
        return True
    except (ValueError, IndexError):
        return False


def number_column(path: Path, values, label: str) -> np.ndarray:
    """A table column (any array-like) as float64; a non-numeric cell raises one CoordinateError
    naming the column and its first bad row (1-based)."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        cells = list(values)
        row = next((i for i, v in enumerate(cells) if not _is_number_cell([v], 0)), 0)
        raise CoordinateError(path, f"column {label} holds {cells[row]!r} in data row {row + 1}, not a number",
                              "fix or remove that row") from exc


def nonfinite_problem(picks) -> str | None:
    """Why a Picks holds an unusable value (NaN or Inf coordinate, score or radius; row 1-based), or None."""
    for label in ("x", "y", "score", "radius"):
        values = getattr(picks, label, None)
        if values is None or not np.size(values):
            continue
        values = np.asarray(values, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            return (f"micrograph {picks.micrograph}, row {int(bad[0]) + 1}: {label} is {float(values[bad[0]])} "
                    f"({bad.size} row(s) with NaN/Inf {label})")
    return None
