"""One coordinate table for a whole picking job, beside the per-micrograph files.

    jobstar -> OUT/particles.star    one RELION STAR, ``_rlnMicrographName`` on every row: what
                                     Topaz (``topaz convert``/``train --train-targets``), pyem and
                                     cryoSPARC's STAR import read
    topaz   -> OUT/picks_topaz.txt   Topaz's table ``image_name x_coord y_coord score``
    jobcs   -> OUT/particles.cs      cryoSPARC particles (cryosparc-tools Dataset), with the
                                     exposures' uids and paths when ``exposures`` is given

The tables are rebuilt from the job's per-micrograph STAR files (which are always written with
them), so micrographs picked by an earlier run (``--skip-existing``, ``--watch`` restarts) are in
them too; picks of this run are kept in memory and not read back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import CoordinateError
from ..picks import Picks
from .atomic import atomic_write

JOB_FILES = {"jobstar": "particles.star", "topaz": "picks_topaz.txt", "jobcs": "particles.cs"}


def job_star_text(picks_list: Sequence[Picks]) -> str:
    """One STAR table of many micrographs' picks: rlnMicrographName + centres + figure of merit
    (+ rlnHelicalTubeID for fibers, + epick's radius for vesicles), RELION's %12.6f numbers."""
    from .star import RADIUS_LABEL, star_string

    fibers = any(p.tube_id is not None for p in picks_list)
    vesicles = any(p.radius is not None for p in picks_list)
    labels = ["rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY", "rlnAutopickFigureOfMerit",
              "rlnClassNumber", "rlnAnglePsi"] + (["rlnHelicalTubeID"] if fibers else []) \
        + ([RADIUS_LABEL] if vesicles else [])
    lines = ["", "# version 30001"]
    diameters = {p.diameter for p in picks_list if p.diameter is not None}
    if len(diameters) == 1:
        lines.append(f"# diameter_px {float(diameters.pop())!r}")
    sizes = {p.pixel_size for p in picks_list if p.pixel_size is not None}
    if len(sizes) == 1:
        lines.append(f"# pixel_size_A {float(sizes.pop())!r}")
    lines += ["", "data_particles", "", "loop_"] + [f"_{label} #{i + 1} " for i, label in enumerate(labels)]
    for picks in picks_list:
        name = star_string(picks.micrograph, picks.micrograph)
        tubes = picks.tube_id if picks.tube_id is not None else np.zeros(len(picks), dtype=np.int64)
        radius = picks.radius if picks.radius is not None else np.zeros(len(picks))
        for i, (x, y, s) in enumerate(zip(picks.x, picks.y, picks.score_or(1.0))):
            row = f"{name} {x:12.6f} {y:12.6f} {s:12.6f} {0:12d} {-999.0:12.5f}"
            if fibers:
                row += f" {int(tubes[i]):12d}"
            if vesicles:
                row += f" {radius[i]:12.6f}"
            lines.append(row)
    return "\n".join(lines) + "\n\n"


def write_job_star(picks_list: Sequence[Picks], path: str | Path) -> Path:
    """Write many micrographs' picks as one STAR table with rlnMicrographName (atomically)."""
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(job_star_text(picks_list))
    return path


class JobTables:
    """Job-level tables of a picking run, rewritten from the per-micrograph picks when they change."""

    def __init__(self, out_dir: str | Path, formats: Sequence[str], *, exposures: str | Path | None = None):
        unknown = [f for f in formats if f not in JOB_FILES]
        if unknown:
            raise CoordinateError(out_dir, f"unknown job-level format(s) {unknown}", f"choose from {list(JOB_FILES)}")
        self.out_dir = Path(out_dir)
        self.formats = list(formats)
        self.exposures = None
        if exposures is not None:
            from .cryosparc import Exposures

            self.exposures = Exposures(exposures)
        self.picks: dict[str, Picks] = {}
        self.dirty = True

    def add(self, name: str, micrograph: str, picks: Picks) -> None:
        """Remember the picks of micrograph file ``name`` (``micrograph``: the path to record)."""
        self.picks[name] = Picks(micrograph, picks.x, picks.y, score=picks.score, radius=picks.radius,
                                 tube_id=picks.tube_id, shape=picks.shape, diameter=picks.diameter,
                                 pixel_size=picks.pixel_size)
        self.dirty = True

    def _all(self, index: Mapping[str, tuple[str, str]]) -> list[Picks]:
        """Every indexed micrograph's picks (read from its STAR file when not picked by this run)."""
        from .micrograph import read_micrograph_shape
        from .star import read_star

        out = []
        for name in sorted(index):
            micrograph, star = index[name]
            if name not in self.picks:
                [picks] = read_star(star)
                if picks.shape is None and "jobcs" in self.formats and Path(micrograph).is_file():
                    picks.shape = read_micrograph_shape(micrograph)
                self.add(name, micrograph, picks)
            out.append(self.picks[name])
        return out

    def write(self, index: Mapping[str, tuple[str, str]]) -> list[Path]:
        """Write the tables for the micrographs of ``index`` (name -> (micrograph, STAR file))."""
        if not self.dirty and all(name in self.picks for name in index):
            return []
        picks_list = self._all(index)
        written = []
        for fmt in self.formats:
            path = self.out_dir / JOB_FILES[fmt]
            if fmt == "jobstar":
                written.append(write_job_star(picks_list, path))
            elif fmt == "topaz":
                from .csvfmt import write_topaz

                written.append(write_topaz(picks_list, path))
            else:
                from .cryosparc import write_cs

                written.append(write_cs(picks_list, path, exposures=self.exposures))
        self.dirty = False
        return written
