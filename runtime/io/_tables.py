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
        raise CoordinateError(path, problem, fix) from exc
