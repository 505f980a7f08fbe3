"""The JSON API of `epick view`, as plain methods (the HTTP server in ``server.py`` only routes).

    GET  /api/job                         job summary, score histogram (with TP per bin under --truth)
    GET  /api/micrographs?threshold=T     one row per micrograph: picks at T (and TP, truth)
    GET  /api/picks/KEY?threshold=T       picks of one micrograph with score >= T, truth and matching
    GET  /api/image/KEY?width=W           the micrograph as a display JPEG (see display.py)
    POST /api/apply {"threshold", "out"}  write the filtered copy (pickjob.write_filtered), return
                                          the files and the equivalent `epick filter` command

Matching with --truth uses ``evaluate.match`` once per micrograph on all picks. The match is greedy
from the highest score down, so the picks above any threshold T are matched exactly as a match of
those picks alone would match them: a pick is a true positive at T when it is one overall and its
score >= T, a truth is missed at T when its matched pick's score is below T. The page therefore
moves the threshold without asking the server. Particles match by box IoU >= 0.5 (the particle
diameter); vesicles and fibers by centre distance (``match_radius``).
Coordinates are original-micrograph pixels, centre of pixel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import EpickError
from ..picks import Picks
from ..pickjob import SCORE_EPS, PickJob, keep_mask, object_type
from .display import DEFAULT_WIDTH, ImageCache

BINS = 100                   # score histogram bins over [0, 1]; the slider moves in steps of 1 / BINS
DEFAULT_DIAMETER_PX = 20.0   # circle size when neither the picks nor --diameter give one


class NotFound(EpickError):
    """A request for a micrograph or file the job does not have (HTTP 404)."""


def score_bin(scores: np.ndarray) -> np.ndarray:
    """Histogram bin of each score: floor(score * BINS) (up to rounding), 1.0 in the last bin."""
    return np.clip(np.floor(np.asarray(scores, dtype=np.float64) * BINS + BINS * SCORE_EPS), 0, BINS - 1).astype(np.int64)


def _floats(values: np.ndarray | None, digits: int = 2) -> list | None:
    return None if values is None else np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def _picks_json(picks: Picks) -> dict:
    # scores at full precision: the page compares them with the threshold as the server does
    return {"x": _floats(picks.x), "y": _floats(picks.y), "score": picks.score_or(1.0).tolist(),
            "radius": _floats(picks.radius),
            "tube_id": None if picks.tube_id is None else picks.tube_id.tolist()}


@dataclass
class Matched:
    """One micrograph's matching: per pick its truth index (-1: FP), per truth the matched pick's score
    (-1: missed at every threshold)."""

    pick_to_truth: np.ndarray
    truth_score: np.ndarray


class ViewerApi:
    """The state behind `epick view`: a loaded PickJob, its micrographs, optional truth."""

    def __init__(self, job: PickJob, *, micrographs: dict[str, Path] | None = None,
                 truth: dict[str, Picks] | None = None, diameter: float | None = None,
                 match_radius: float | None = None, cache: ImageCache | None = None,
                 announce: Callable[[dict], None] | None = None):
        self.job = job
        self.micrographs = micrographs or {}
        self.truth = truth
        self.diameter = diameter or job.diameter or self._truth_diameter()   # circles drawn
        self.match_diameter = diameter or self._truth_diameter() or self.diameter  # as `epick eval` does
        self.object_type = job.object_type
        self.match_radius = match_radius
        self.cache = cache or ImageCache()
        self.matched: dict[str, Matched] = {}
        if truth is not None:
            self._match_all()
        self.apply_log: list[dict] = []
        self.announce = announce      # called with each apply result (the command prints it)

    # ------------------------------------------------------------------ set-up
    @classmethod
    def open(cls, picks_dir: str | Path, *, micrographs: str | Path | None = None, truth: str | Path | None = None,
             diameter: float | None = None, match_radius: float | None = None, progress: bool = False,
             announce: Callable[[dict], None] | None = None) -> "ViewerApi":
        """Load a picks folder (and the micrographs and truth folders when given)."""
        job = PickJob.load(picks_dir, diameter=diameter, progress=progress)
        truth_picks = None
        if truth is not None:
            truth_job = PickJob.load(truth, diameter=diameter, progress=progress)
            truth_picks = truth_job.picks
            if not set(truth_picks) & set(job.picks):
                raise EpickError(f"no micrograph of {truth} pairs with the picks in {picks_dir} by name; "
                                 "name the truth files after their micrographs, e.g. MICROGRAPH.star")
        return cls(job, micrographs=job.micrograph_paths(micrographs), truth=truth_picks, diameter=diameter,
                   match_radius=match_radius, announce=announce)

    def _truth_diameter(self) -> float | None:
        if not self.truth:
            return None
        found = {float(t.diameter) for t in self.truth.values() if t.diameter is not None}
        return found.pop() if len(found) == 1 else None

    def _radius_for(self, truth: Picks) -> float | None:
        """Centre distance for matching vesicles and fibers (None: particles match by box IoU)."""
        if self.object_type == "particle":
            return None
        if self.match_radius is not None:
            return float(self.match_radius)
        if self.object_type == "vesicle" and truth.radius is not None and len(truth):
            return 0.5 * float(np.median(truth.radius))
        return 0.5 * float(self.diameter or DEFAULT_DIAMETER_PX)

    def match_rule(self) -> str | None:
        """How picks were matched with the truth, in words (None without truth)."""
        if not self.matched:
            return None
        if self.object_type == "particle":
            return f"box IoU >= 0.5 at diameter {self.match_diameter:g} px"
        if self.match_radius is None and self.object_type == "vesicle":
            return "centre distance <= half the median true radius"
        return f"centre distance <= {self._radius_for(Picks.empty('')):g} px"

    def _match_all(self) -> None:
        from ..evaluate import match

        if self.object_type == "particle" and not self.match_diameter:
            raise EpickError("matching picks with the truth needs the particle diameter; pass --diameter PX")
        for key, picks in self.job.picks.items():
            truth = self.truth.get(key)
            if truth is None:
                continue
            m = match(picks, truth, self.match_diameter, radius=self._radius_for(truth))
            score = np.full(len(truth), -1.0)
            hit = m.truth_to_pick >= 0
            score[hit] = picks.score_or(1.0)[m.truth_to_pick[hit]]
            self.matched[key] = Matched(m.pick_to_truth, score)

    # ------------------------------------------------------------------ API
    def _picks(self, key: str) -> Picks:
        try:
            return self.job.picks[key]
        except KeyError:
            raise NotFound(f"no micrograph {key!r} in {self.job.folder}") from None

    def job_info(self) -> dict:
        """Summary of the job and the histogram of all scores (``tp``: true positives per bin)."""
        counts = np.zeros(BINS, dtype=np.int64)
        tp = np.zeros(BINS, dtype=np.int64)
        paired = np.zeros(BINS, dtype=np.int64)     # picks on micrographs that have truth
        lowest = 1.0
        for key, picks in self.job.picks.items():
            bins = score_bin(picks.score_or(1.0))
            counts += np.bincount(bins, minlength=BINS)
            if len(picks):
                lowest = min(lowest, float(picks.score_or(1.0).min()))
            if key in self.matched:
                tp += np.bincount(bins[self.matched[key].pick_to_truth >= 0], minlength=BINS)
                paired += np.bincount(bins, minlength=BINS)
        n_truth = sum(len(self.truth[k]) for k in self.matched) if self.truth else 0
        start = math.floor(lowest * BINS + BINS * SCORE_EPS) / BINS if self.job.has_scores else 0.0
        folder = self.job.folder.resolve()
        return {
            "folder": str(self.job.folder), "formats": self.job.formats(), "object_type": self.object_type,
            "diameter": self.diameter, "diameter_known": self.diameter is not None,
            "match": self.match_rule(),
            "n_micrographs": len(self.job.picks), "n_picks": int(counts.sum()), "has_scores": self.job.has_scores,
            "has_truth": bool(self.matched), "n_truth": int(n_truth),
            "histogram": {"bins": BINS, "counts": counts.tolist(), "tp": tp.tolist() if self.matched else None,
                          "paired": paired.tolist() if self.matched else None},
            "threshold": start,
            "apply_out": str(folder.parent / f"{folder.name}_t{{threshold}}"),
        }

    def micrographs_at(self, threshold: float) -> list[dict]:
        """One row per micrograph: picks at ``threshold``, total, truth and TP counts, image known."""
        rows = []
        for key, picks in self.job.picks.items():
            keep = keep_mask(picks.score_or(1.0), threshold)
            row = {"key": key, "name": Path(picks.micrograph).name, "n": int(keep.sum()), "total": len(picks),
                   "image": key in self.micrographs}
            if key in self.matched:
                row["tp"] = int(np.count_nonzero(keep & (self.matched[key].pick_to_truth >= 0)))
                row["n_truth"] = len(self.truth[key])
            rows.append(row)
        return rows

    def picks_at(self, key: str, threshold: float = 0.0) -> dict:
        """Picks of micrograph ``key`` with score >= ``threshold`` (with ``tp`` flags and the truth)."""
        picks = self._picks(key)
        keep = keep_mask(picks.score_or(1.0), threshold)
        shape = picks.shape
        if shape is None and key in self.micrographs:
            from ..io.micrograph import read_micrograph_shape

            shape = picks.shape = tuple(int(v) for v in read_micrograph_shape(self.micrographs[key]))
        if shape is None:     # neither file nor picks say: a frame around the picks
            shape = (int(np.max(picks.y, initial=0) + 64), int(np.max(picks.x, initial=0) + 64))
        out = {"key": key, "name": Path(picks.micrograph).name, "shape": list(shape), "threshold": threshold,
               "object_type": object_type(picks) if len(picks) else self.object_type,
               "diameter": picks.diameter or self.diameter or DEFAULT_DIAMETER_PX,
               "total": len(picks), "picks": _picks_json(picks.subset(keep)), "image": key in self.micrographs}
        if key in self.matched:
            m = self.matched[key]
            out["picks"]["tp"] = (m.pick_to_truth[keep] >= 0).tolist()
            out["truth"] = {**_picks_json(self.truth[key]), "matched_score": m.truth_score.tolist()}
        return out

    def image(self, key: str, width: int = DEFAULT_WIDTH) -> bytes:
        """The display JPEG of micrograph ``key``."""
        self._picks(key)
        if key not in self.micrographs:
            raise NotFound(f"no micrograph file found for {key!r}; pass --micrographs DIR")
        return self.cache.jpeg(self.micrographs[key], width)

    def apply(self, threshold: float, out: str | Path | None = None) -> dict:
        """Write the picks with score >= ``threshold`` to ``out`` (see PickJob.write_filtered)."""
        from ..commands.filter import command_line

        threshold = float(threshold)
        if not 0.0 < threshold <= 1.0:            # as `epick filter --threshold`
            raise EpickError(f"threshold must lie in (0, 1], got {threshold}")
        if not out:
            folder = self.job.folder.resolve()
            out = folder.parent / f"{folder.name}_t{threshold:.2f}"
        out = Path(out).expanduser()
        if not out.is_absolute():
            out = self.job.folder.resolve().parent / out
        done = self.job.write_filtered(threshold, out)
        command = command_line(self.job.folder.resolve(), threshold, out,
                               self.diameter if "box" in self.job.formats() else None)
        result = {"out": str(out), "files": len(done.files), **done.counts(), "command": command,
                  "pick_hint": f"to pick new micrographs at this threshold: epick pick ... --threshold {threshold:g}"}
        self.apply_log.append(result)
        if self.announce is not None:
            self.announce(result)
        return result

    def app(self):
        """The HTTP routes of this API (see the module docstring) and the viewer page."""
        from .server import App, Reply

        def number(params: dict, name: str, default: float) -> float:
            return float(params.get(name, default))

        return App(get={
            "/api/job": lambda _, q: Reply.json(self.job_info()),
            "/api/micrographs": lambda _, q: Reply.json(self.micrographs_at(number(q, "threshold", 0.0))),
            "/api/picks/": lambda key, q: Reply.json(self.picks_at(key, number(q, "threshold", 0.0))),
            "/api/image/": lambda key, q: Reply(self.image(key, int(number(q, "width", DEFAULT_WIDTH))),
                                                "image/jpeg", cache=True),
        }, post={
            "/api/apply": lambda _, body: Reply.json(self.apply(body["threshold"], body.get("out"))),
        }, pages={"/": "index.html"})
