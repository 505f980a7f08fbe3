"""A folder of picks as one job: the picks of each micrograph, the formats and file names the job
uses, where its micrographs are, and a copy of the job keeping only picks above a score threshold.

Used by `epick view` (display, "Apply") and `epick filter` (the same copy from the command line).

- The job's files: the coordinate files in the folder and those its RELION ``autopick.star`` index
  lists (an `epick-relion` job keeps them in subfolders such as ``Movies/``).
- Each micrograph's picks come from its most informative file: one that carries scores, STAR first
  (see ``coordinates.find_coordinate_files``); a folder written by `epick pick --format star,box`
  therefore shows the STAR picks, with scores, once.
- ``write_filtered`` rewrites EVERY coordinate file of the job under the same path in a new folder,
  in that file's own format, holding the picks with ``score >= threshold`` (``.box`` files, which
  carry no score, get the scored picks of their micrograph); the RELION ``autopick.star`` index is
  rewritten to point at the new files. All writes are atomic; the job's own files are only read.

Coordinates are original-micrograph pixels, centre of pixel (see ``epick.runtime.picks``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import CoordinateError, EpickError
from .picks import Picks, micrograph_key

INDEX_NAME = "autopick.star"
APPLY_RECORD = "epick_filter.json"     # written into a filtered copy; marks a folder safe to overwrite
SCORE_EPS = 1e-9                       # scores equal to the threshold up to rounding are kept


def keep_mask(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of the objects kept at ``threshold``: ``score >= threshold`` (up to rounding)."""
    return np.asarray(scores, dtype=np.float64) >= float(threshold) - SCORE_EPS


def object_type(picks: Picks) -> str:
    """``fiber`` (tube IDs), ``vesicle`` (radii) or ``particle``."""
    if picks.tube_id is not None:
        return "fiber"
    if picks.radius is not None:
        return "vesicle"
    return "particle"


def listed_files(index_path: Path) -> list[tuple[str, Path]]:
    """(micrograph, coordinate file) pairs of a RELION ``autopick.star`` index, files resolved as
    ``read_picks`` resolves them (index folder, its parents, the working directory)."""
    import starfile

    from .io.star import _resolve_listed

    blocks = starfile.read(index_path, always_dict=True)
    for df in blocks.values():
        if hasattr(df, "columns") and {"rlnMicrographName", "rlnMicrographCoordinates"} <= set(df.columns):
            return [(str(m), _resolve_listed(str(c), index_path))
                    for m, c in zip(df["rlnMicrographName"], df["rlnMicrographCoordinates"])]
    raise CoordinateError(index_path, "is not a RELION coordinate index (no _rlnMicrographName/_rlnMicrographCoordinates)",
                          "remove it from the picks folder or fix it")


def _rank(path: Path, picks: Picks) -> tuple[int, int]:
    from .io.coordinates import _FOLDER_PREFERENCE

    suffix = path.suffix.lower()
    order = _FOLDER_PREFERENCE.index(suffix) if suffix in _FOLDER_PREFERENCE else len(_FOLDER_PREFERENCE)
    return (0 if picks.score is not None else 1, order)


def coordinate_files(folder: Path) -> list[Path]:
    """Every coordinate file directly in ``folder`` (by suffix), indexes left out, sorted."""
    from .io.coordinates import INDEX_NAMES, _SUFFIX_TO_FORMAT

    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in _SUFFIX_TO_FORMAT and not p.name.startswith(".")
                  and p.name not in INDEX_NAMES and p.name != APPLY_RECORD)


@dataclass
class Filtered:
    """What ``PickJob.write_filtered`` wrote: files, threshold, picks kept of picks before, micrographs."""

    files: list[Path]
    threshold: float
    picks_kept: int
    picks_before: int
    micrographs: int

    def counts(self) -> dict:
        """The numbers as a JSON-ready dict."""
        return {"threshold": self.threshold, "picks_kept": self.picks_kept, "picks_before": self.picks_before,
                "micrographs": self.micrographs, "files": len(self.files)}


@dataclass
class PickJob:
    """The picks of a folder, one ``Picks`` per micrograph key (best file of each), in name order."""

    folder: Path
    picks: dict[str, Picks]
    source: dict[str, Path]                       # key -> the file its picks came from
    index: list[tuple[str, Path]] = field(default_factory=list)   # autopick.star: (micrograph, file)
    files: list[Path] = field(default_factory=list)               # every coordinate file of the job

    @classmethod
    def load(cls, folder: str | Path, *, diameter: float | None = None, progress: bool = False) -> "PickJob":
        """Read every coordinate file in ``folder`` (``diameter`` px fills in a missing box size)."""
        from tqdm import tqdm

        from .io.coordinates import read_picks

        folder = Path(folder)
        if not folder.is_dir():
            raise CoordinateError(folder, "is not a folder", "pass the --out folder of `epick pick`")
        index_path = folder / INDEX_NAME
        index = listed_files(index_path) if index_path.is_file() else []
        unique = {path.resolve(): path for path in reversed(coordinate_files(folder) + [p for _, p in index])}
        files = sorted(unique.values(), key=lambda path: path.resolve())
        if not files:
            raise CoordinateError(folder, "holds no coordinate files",
                                  "pass the --out folder of `epick pick` (.star, .box, .cs or .csv files)")
        picks: dict[str, Picks] = {}
        source: dict[str, Path] = {}
        for path in tqdm(files, desc="reading picks", unit="file", disable=not progress or len(files) < 20):
            for one in read_picks(path, diameter=diameter):
                key = one.key
                if key not in picks or _rank(path, one) < _rank(source[key], picks[key]):
                    if key in picks:       # keep what only the other file knew (cs: the shape)
                        one.shape = one.shape or picks[key].shape
                        one.pixel_size = one.pixel_size or picks[key].pixel_size
                    picks[key], source[key] = one, path
                else:
                    picks[key].shape = picks[key].shape or one.shape
                    picks[key].pixel_size = picks[key].pixel_size or one.pixel_size
        return cls(folder, dict(sorted(picks.items())), source, index, files)

    @property
    def object_type(self) -> str:
        """The object type of the job (from its first micrograph with objects)."""
        for picks in self.picks.values():
            if len(picks):
                return object_type(picks)
        return object_type(next(iter(self.picks.values())))

    @property
    def diameter(self) -> float | None:
        """The particle diameter (px) the files carry, when they agree."""
        found = {round(float(p.diameter), 6) for p in self.picks.values() if p.diameter is not None}
        return found.pop() if len(found) == 1 else None

    @property
    def has_scores(self) -> bool:
        """True when the picks carry scores (a threshold means something)."""
        return all(p.score is not None for p in self.picks.values())

    def formats(self) -> list[str]:
        """The coordinate formats of the job's files (e.g. ``["box", "star"]``)."""
        from .io.coordinates import detect_format

        return sorted({detect_format(p) for p in self.files})

    def micrograph_paths(self, micrographs: str | Path | None = None) -> dict[str, Path]:
        """Micrograph file per key: from ``micrographs`` (a folder), else the autopick.star index,
        else the micrograph names in the picks (absolute or relative to the job folder)."""
        from .io.micrograph import find_micrographs

        found: dict[str, Path] = {}
        if micrographs is not None:
            folder = Path(micrographs)
            if not folder.is_dir():
                raise EpickError(f"{folder}: --micrographs needs a folder of micrographs")
            return {micrograph_key(p.name): p for p in find_micrographs([folder])}
        candidates = [m for m, _ in self.index] + [p.micrograph for p in self.picks.values()]
        for name in candidates:
            key = micrograph_key(name)
            if key in found or key not in self.picks:
                continue
            for base in (Path(), self.folder, *self.folder.parents):
                path = base / name
                if path.is_file():
                    found[key] = path
                    break
        return found

    def write_filtered(self, threshold: float, out: str | Path) -> "Filtered":
        """Copy the job into ``out`` keeping picks with score >= ``threshold``; say what was written.

        ``out`` must not be the job folder; an existing non-empty ``out`` is refused unless an
        earlier filtered copy wrote it (it holds ``epick_filter.json``).
        """
        from .io.coordinates import detect_format, read_picks, write_picks

        if not 0.0 < float(threshold) <= 1.0:     # as `epick filter --threshold` (0 would keep everything)
            raise EpickError(f"threshold must lie in (0, 1], got {threshold}")
        if not self.has_scores:
            raise CoordinateError(self.folder, "holds picks without scores, so a threshold cannot select among them",
                                  "filter the STAR/.cs/.csv output of `epick pick`, which carries scores")
        out = Path(out)
        if out.resolve() == self.folder.resolve():
            raise EpickError(f"{out}: the filtered copy must go to a new folder, not the picks folder itself")
        if out.is_dir() and any(out.iterdir()) and not (out / APPLY_RECORD).is_file():
            raise EpickError(f"{out}: folder exists and is not empty; choose a new output folder")
        kept = {key: p.subset(keep_mask(p.score_or(1.0), threshold)) for key, p in self.picks.items()}
        copies: dict[Path, Path] = {}
        for path in self.files:
            fmt = detect_format(path)
            target = out / self._relative(path)
            if fmt == "thi":               # EPicker .thi is read-only: its copy is a STAR file
                fmt, target = "star", target.with_name(f"{micrograph_key(path.name)}.star")
            originals = read_picks(path)
            rewritten = [self._rewrite(kept[o.key], o) for o in originals]
            copies[path.resolve()] = write_picks(rewritten if len(rewritten) != 1 else rewritten[0], target, fmt)
        written: list[Path] = list(copies.values())
        if self.index:
            from .io.coordinates import write_autopick_index

            written.append(write_autopick_index(out, [(mic, copies[path.resolve()]) for mic, path in self.index]))
        from .io.atomic import atomic_write

        result = Filtered(written, float(threshold), int(sum(len(p) for p in kept.values())),
                          int(sum(len(p) for p in self.picks.values())), len(kept))
        with atomic_write(out / APPLY_RECORD) as handle:
            json.dump({"source": os.fspath(self.folder.resolve()), **result.counts()}, handle, indent=1)
        return result

    def _relative(self, path: Path) -> Path:
        """Where a job file goes inside a copy: its path below the job folder (RELION jobs keep
        per-micrograph files in subfolders), else its name."""
        try:
            return path.resolve().relative_to(self.folder.resolve())
        except ValueError:
            return Path(path.name)

    @staticmethod
    def _rewrite(kept: Picks, original: Picks) -> Picks:
        """The kept picks, named and sized as in the file being rewritten (box size, shape, path)."""
        return replace(kept, micrograph=original.micrograph,
                       shape=kept.shape or original.shape,
                       diameter=kept.diameter if kept.diameter is not None else original.diameter)
