"""cryoSPARC ``.cs`` particle files, read and written with cryosparc-tools' ``Dataset``.

A ``.cs`` file is either a NumPy structured array (``np.save``; magic ``\\x93NUMPY``) or
cryosparc-tools' compressed stream (CSDAT; magic ``\\x95CSDAT``, what ``Dataset.save(...,
format=CSDAT_FORMAT)`` and recent cryoSPARC versions write). ``Dataset.load`` reads both without
pickle; a file whose strings are pickled Python objects is refused (loading it would run code).

Fields of the ``location`` slot (cryoSPARC's particle picks) that epick reads and writes:

- ``uid`` (u8): a random 64-bit ID per particle (cryoSPARC's own convention).
- ``location/micrograph_uid`` (u8): the ``uid`` of the exposure the particle lies on; cryoSPARC
  joins particles to exposures by it. Taken from the exposures when they are given
  (``exposures=``: the ``exposures.cs`` / ``*_exposures_accepted.cs`` of the job that made the
  micrographs), else a random ID per micrograph.
- ``location/exp_group_id`` (u4): the exposure group (the exposures' ``mscope_params/exp_group_id``,
  else 1).
- ``location/micrograph_path`` (str): the micrograph as cryoSPARC stores it, relative to the project
  directory (the exposures' ``micrograph_blob/path``), else the path epick read.
- ``location/micrograph_shape`` (u4 x 2): ``[ny, nx]`` in pixels.
- ``location/micrograph_psize_A`` (f4): pixel size in A (the exposures', else the micrograph's, else 0).
- ``location/center_x_frac``, ``location/center_y_frac`` (f4): the centre as a FRACTION of the
  micrograph width / height.
- ``pick_stats/ncc_score`` (f4): the pick score.

Fraction convention: ``x = center_x_frac * nx`` and ``y = center_y_frac * ny`` in the array frame
of the micrograph (x = column, y = row as stored; epick's frame). This is what cryosparc-tools'
examples do when they plot picks on ``project.download_mrc(...)`` data, and what pyem
(csparc2star) and REPIC do; none adds a half pixel, so neither do we. Fractions are float32: about
2e-4 px of rounding on a 4096-px micrograph.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import CoordinateError
from ..picks import Picks, micrograph_key
from ._tables import group_indices, number_column
from .atomic import atomic_path

CSDAT_MAGIC = b"\x95CSDAT"     # cryosparc.dataset.FORMAT_MAGIC_PREFIXES[CSDAT_FORMAT]
NPY_MAGIC = b"\x93NUMPY"
X_FRAC, Y_FRAC = "location/center_x_frac", "location/center_y_frac"
MIC_PATH, MIC_SHAPE, MIC_UID = "location/micrograph_path", "location/micrograph_shape", "location/micrograph_uid"
EXP_GROUP, MIC_PSIZE = "location/exp_group_id", "location/micrograph_psize_A"
SCORE = "pick_stats/ncc_score"
CS_FORMATS = ("numpy", "csdat")
# the fields of cryoSPARC's own picked-particle files (checked against a real one in
# tests/fixtures/cryosparc): min_dist_A, power, template_idx and angle_rad are written as 0
# (epick has no such values; cryoSPARC's Inspect Picks then filters on ncc_score only)
PARTICLE_FIELDS = [(MIC_UID, "<u8"), (EXP_GROUP, "<u4"), (MIC_PATH, "O"), (MIC_SHAPE, "<u4", (2,)),
                   (X_FRAC, "<f4"), (Y_FRAC, "<f4"), ("location/min_dist_A", "<f4"), (MIC_PSIZE, "<f4"),
                   (SCORE, "<f4"), ("pick_stats/power", "<f4"), ("pick_stats/template_idx", "<u4"),
                   ("pick_stats/angle_rad", "<f4")]


def is_cs_file(path: str | Path) -> bool:
    """True when the file starts with the NumPy or the CSDAT magic (the two .cs formats)."""
    with open(path, "rb") as handle:
        return handle.read(6) in (NPY_MAGIC, CSDAT_MAGIC)


def load_dataset(path: str | Path):
    """A .cs file (NumPy or CSDAT) as a cryosparc-tools Dataset, without pickle."""
    from cryosparc.dataset import Dataset

    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(6)
    if not head:
        raise CoordinateError(path, "is empty (0 bytes), not a cryoSPARC .cs file",
                              "export the particles from cryoSPARC again")
    if head not in (NPY_MAGIC, CSDAT_MAGIC):
        raise CoordinateError(path, "is not a cryoSPARC .cs file (neither NumPy nor CSDAT)",
                              "pass a .cs file exported from cryoSPARC")
    try:
        return Dataset.load(path)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise CoordinateError(path, f"cannot be read without pickle ({exc})",
                                  "its strings are Python objects (loading them could run code): re-save it "
                                  "with fixed-length byte strings, e.g. from a current cryoSPARC") from exc
        raise CoordinateError(path, f"is not a readable .cs file ({exc})", "export it from cryoSPARC again") from exc
    except Exception as exc:   # truncated or damaged stream
        raise CoordinateError(path, f"is not a readable .cs file ({type(exc).__name__}: {exc})",
                              "export it from cryoSPARC again") from exc


def _text(values) -> np.ndarray:
    """Strings from a Dataset string column (bytes or str)."""
    return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values])


def read_cs(path: str | Path) -> list[Picks]:
    """Read a cryoSPARC particles .cs: one Picks per micrograph, centres in pixels, shape set."""
    path = Path(path)
    data = load_dataset(path)
    fields = set(data.fields())
    missing = [f for f in (X_FRAC, Y_FRAC, MIC_PATH, MIC_SHAPE) if f not in fields]
    if missing:
        raise CoordinateError(path, f"lacks the particle location fields {missing}",
                              "use a .cs file with a 'location' slot (e.g. picked or extracted particles)")
    mics = _text(data[MIC_PATH])
    shapes_all = np.asarray(data[MIC_SHAPE], dtype=np.int64).reshape(-1, 2)
    xs_all, ys_all = number_column(path, data[X_FRAC], X_FRAC), number_column(path, data[Y_FRAC], Y_FRAC)
    scores_all = number_column(path, data[SCORE], SCORE) if SCORE in fields else None
    out = []
    for mic, rows in group_indices(mics):
        shapes = np.unique(shapes_all[rows], axis=0)
        if shapes.shape[0] != 1:
            raise CoordinateError(path, f"gives micrograph {mic} more than one shape {shapes.tolist()}",
                                  "fix location/micrograph_shape")
        ny, nx = (int(v) for v in shapes[0])
        score = None if scores_all is None else scores_all[rows]
        psize = None
        if MIC_PSIZE in fields:
            value = float(np.asarray(data[MIC_PSIZE])[rows[0]])
            psize = value if value > 0 else None
        out.append(Picks(str(mic), xs_all[rows] * nx, ys_all[rows] * ny, score=score, shape=(ny, nx),
                         pixel_size=psize))
    return out


# cryoSPARC names motion-corrected micrographs '<uid digits>_<movie stem>_patch_aligned_doseweighted.mrc'
_CS_PREFIX = re.compile(r"^\d{6,}_")
_CS_SUFFIX = re.compile(r"(_patch_aligned_doseweighted|_patch_aligned|_rigid_aligned_doseweighted|_rigid_aligned"
                        r"|_aligned_doseweighted|_aligned|_doseweighted)$")


def exposure_keys(path: str) -> set[str]:
    """Names under which a picked micrograph may refer to a cryoSPARC exposure file ``path``."""
    key = micrograph_key(path)
    bare = _CS_SUFFIX.sub("", _CS_PREFIX.sub("", key))
    return {key, bare, _CS_PREFIX.sub("", key), re.sub(r"\.frames$", "", bare)}


class Exposures:
    """The exposures of a cryoSPARC job (micrograph_blob slot), found by micrograph name."""

    def __init__(self, source):
        """``source``: an exposures .cs file, or a cryosparc-tools Dataset (an External job's input)."""
        self.path = Path(source) if isinstance(source, (str, Path)) else Path("exposures")
        data = load_dataset(self.path) if isinstance(source, (str, Path)) else source
        fields = set(data.fields())
        if "micrograph_blob/path" not in fields:
            raise CoordinateError(self.path, "has no micrograph_blob/path: not an exposures .cs",
                                  "pass the exposures .cs of the job that made the micrographs "
                                  "(e.g. J3_exposures_accepted.cs or exposures.cs)")
        self.rows: dict[str, int] = {}
        paths = _text(data["micrograph_blob/path"])
        for i, p in enumerate(paths):
            for key in exposure_keys(p):
                self.rows.setdefault(key, i)
        self.uid = np.asarray(data["uid"], dtype=np.uint64)
        self.paths = paths
        self.shape = np.asarray(data["micrograph_blob/shape"], dtype=np.int64).reshape(-1, 2) \
            if "micrograph_blob/shape" in fields else None
        self.psize = np.asarray(data["micrograph_blob/psize_A"], dtype=np.float64) \
            if "micrograph_blob/psize_A" in fields else None
        self.group = np.asarray(data["mscope_params/exp_group_id"], dtype=np.int64) \
            if "mscope_params/exp_group_id" in fields else None

    def find(self, micrograph: str) -> int | None:
        """Row of the exposure of ``micrograph`` (a path or name), or None."""
        for key in sorted(exposure_keys(micrograph)):
            if key in self.rows:
                return self.rows[key]
        return None


def particles_dataset(picks_list: Sequence[Picks], *, exposures: Exposures | None = None,
                      seed: int | None = None, where: str | Path = "particles.cs"):
    """A cryosparc-tools Dataset of particle picks (``location`` and ``pick_stats`` slots)."""
    from cryosparc.dataset import Dataset

    n = sum(len(p) for p in picks_list)
    data = Dataset.allocate(n, PARTICLE_FIELDS)
    rng = np.random.default_rng(seed)
    data["uid"] = rng.integers(1, 2**63, size=n, dtype=np.uint64)
    start = 0
    for picks in picks_list:
        stop = start + len(picks)
        uid, group, path, shape, psize = rng.integers(1, 2**63, dtype=np.uint64), 1, picks.micrograph, picks.shape, \
            picks.pixel_size
        if exposures is not None:
            row = exposures.find(picks.micrograph)
            if row is None:
                raise CoordinateError(exposures.path, f"has no exposure for micrograph {picks.micrograph}",
                                      "pass the exposures of the job whose micrographs were picked")
            uid, path = exposures.uid[row], str(exposures.paths[row])
            if exposures.group is not None:
                group = int(exposures.group[row])
            if exposures.shape is not None:
                shape = tuple(int(v) for v in exposures.shape[row])
            if exposures.psize is not None:
                psize = float(exposures.psize[row])
        if shape is None:
            raise CoordinateError(where, f"cs writing needs the shape of micrograph {picks.micrograph}",
                                  "pass --micrographs DIR so the sizes can be read from the micrographs")
        ny, nx = shape
        data[MIC_UID][start:stop] = uid
        data[EXP_GROUP][start:stop] = group
        data[MIC_PATH][start:stop] = path
        data[MIC_SHAPE][start:stop] = (ny, nx)
        data[MIC_PSIZE][start:stop] = psize or 0.0
        data[X_FRAC][start:stop] = picks.x / nx
        data[Y_FRAC][start:stop] = picks.y / ny
        data[SCORE][start:stop] = picks.score_or(1.0)
        start = stop
    return data


def write_cs(picks_list: Sequence[Picks], path: str | Path, *, seed: int | None = None,
             exposures: Exposures | str | Path | None = None, cs_format: str = "numpy") -> Path:
    """Write many micrographs' picks as one cryoSPARC particles .cs file (atomically).

    ``cs_format``: "numpy" (readable by every cryoSPARC and by numpy) or "csdat" (cryosparc-tools'
    compressed stream). ``exposures``: an exposures .cs whose uid, path, shape, pixel size and
    exposure group the particles take.
    """
    from cryosparc.dataset import CSDAT_FORMAT, NUMPY_FORMAT

    path = Path(path)
    if cs_format not in CS_FORMATS:
        raise CoordinateError(path, f"unknown .cs format {cs_format!r}", f"choose one of {CS_FORMATS}")
    if exposures is not None and not isinstance(exposures, Exposures):
        exposures = Exposures(exposures)
    data = particles_dataset(picks_list, exposures=exposures, seed=seed, where=path)
    with atomic_path(path) as tmp:
        data.save(tmp, format=CSDAT_FORMAT if cs_format == "csdat" else NUMPY_FORMAT)
    return path
