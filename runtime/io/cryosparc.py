"""cryoSPARC ``.cs`` particle files: a NumPy structured array saved with ``np.save``.

Read without pickle (``allow_pickle=False``). Fields used:

- ``uid`` (u8): a random 64-bit ID per particle (cryoSPARC's own convention).
- ``location/micrograph_uid`` (u8), ``location/micrograph_path`` (fixed-length bytes, ``S``).
- ``location/micrograph_shape`` (u4 x 2): ``[ny, nx]`` of the micrograph in pixels.
- ``location/center_x_frac``, ``location/center_y_frac`` (f4): the centre as a FRACTION of the
  micrograph width / height.
- ``pick_stats/ncc_score`` (f4, optional): pick score.

Fraction convention: ``x = center_x_frac * nx`` and ``y = center_y_frac * ny`` in the array frame
of the micrograph (x = column, y = row as stored; epick's frame). This is what cryoSPARC's own
cryosparc-tools examples do when they plot picks on ``project.download_mrc(...)`` data, and what
pyem (csparc2star) and REPIC do; none adds a half pixel, so neither do we. (pyem additionally flips
y by default to undo a flip between motion-correction programs; that is a property of the
micrographs, not of the file, and is not done here.) Fractions are float32: about 2e-4 px of
rounding on a 4096-px micrograph.

Writing needs each micrograph's shape (``Picks.shape``; ``epick convert --micrographs DIR``
reads it from the micrographs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import CoordinateError
from ..picks import Picks
from ._tables import group_indices
from .atomic import atomic_path

_CSDAT_MAGIC = b"\x94CSDAT"
_NPY_MAGIC = b"\x93NUMPY"
X_FRAC, Y_FRAC = "location/center_x_frac", "location/center_y_frac"
MIC_PATH, MIC_SHAPE, MIC_UID = "location/micrograph_path", "location/micrograph_shape", "location/micrograph_uid"
SCORE = "pick_stats/ncc_score"


def is_cs_file(path: str | Path) -> bool:
    """True when the file starts with NumPy's .npy magic (how .cs files are stored)."""
    with open(path, "rb") as handle:
        return handle.read(6) == _NPY_MAGIC


def _load(path: Path) -> np.ndarray:
    """The structured array of a .cs file, refusing pickled content."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    if head == _CSDAT_MAGIC:
        raise CoordinateError(path, "is a compressed cryosparc-tools dataset (CSDAT), not a NumPy .cs file",
                              "export it from cryoSPARC as a .cs file or save it with "
                              "Dataset.save(path, format=NUMPY_FORMAT)")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise CoordinateError(path, f"cannot be read without pickle ({exc})",
                              "re-save the .cs with fixed-length byte strings (dtype 'S'), not Python objects") from exc
    except OSError as exc:
        raise CoordinateError(path, f"is not a NumPy .cs file ({exc})", "pass a cryoSPARC particles .cs file") from exc
    if data.dtype.names is None:
        raise CoordinateError(path, "holds a plain array, not cryoSPARC's structured array",
                              "pass a cryoSPARC particles .cs file")
    return data


def read_cs(path: str | Path) -> list[Picks]:
    """Read a cryoSPARC particles .cs: one Picks per micrograph, centres in pixels, shape set."""
    path = Path(path)
    data = _load(path)
    missing = [f for f in (X_FRAC, Y_FRAC, MIC_PATH, MIC_SHAPE) if f not in data.dtype.names]
    if missing:
        raise CoordinateError(path, f"lacks the particle location fields {missing}",
                              "use a .cs file with a 'location' slot (e.g. picked or extracted particles)")
    mics = np.asarray([m.decode() if isinstance(m, bytes) else str(m) for m in data[MIC_PATH]])
    out = []
    for mic, rows in group_indices(mics):
        sel = data[rows]
        shapes = np.unique(np.asarray(sel[MIC_SHAPE], dtype=np.int64).reshape(-1, 2), axis=0)
        if shapes.shape[0] != 1:
            raise CoordinateError(path, f"gives micrograph {mic} more than one shape {shapes.tolist()}",
                                  "fix location/micrograph_shape")
        ny, nx = (int(v) for v in shapes[0])
        score = np.asarray(sel[SCORE], dtype=np.float64) if SCORE in data.dtype.names else None
        out.append(Picks(str(mic), np.asarray(sel[X_FRAC], dtype=np.float64) * nx,
                         np.asarray(sel[Y_FRAC], dtype=np.float64) * ny, score=score, shape=(ny, nx)))
    return out


def write_cs(picks_list: Sequence[Picks], path: str | Path, *, seed: int | None = None) -> Path:
    """Write many micrographs' picks as one cryoSPARC particles .cs file (atomically)."""
    path = Path(path)
    for picks in picks_list:
        if picks.shape is None:
            raise CoordinateError(path, f"cs writing needs the shape of micrograph {picks.micrograph}",
                                  "pass --micrographs DIR so the sizes can be read from the micrographs")
    n = sum(len(p) for p in picks_list)
    longest = max([len(p.micrograph.encode()) for p in picks_list] + [1])
    dtype = [("uid", "<u8"), (MIC_UID, "<u8"), (MIC_PATH, f"S{longest}"), (MIC_SHAPE, "<u4", (2,)),
             (X_FRAC, "<f4"), (Y_FRAC, "<f4"), (SCORE, "<f4")]
    data = np.zeros(n, dtype=dtype)
    rng = np.random.default_rng(seed)
    data["uid"] = rng.integers(0, 2**63, size=n, dtype=np.uint64)
    start = 0
    for picks in picks_list:
        stop = start + len(picks)
        ny, nx = picks.shape
        block = data[start:stop]
        block[MIC_UID] = rng.integers(0, 2**63, dtype=np.uint64)
        block[MIC_PATH] = picks.micrograph.encode()
        block[MIC_SHAPE] = (ny, nx)
        block[X_FRAC] = picks.x / nx
        block[Y_FRAC] = picks.y / ny
        block[SCORE] = picks.scores
        start = stop
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, data, allow_pickle=False)
    return path
