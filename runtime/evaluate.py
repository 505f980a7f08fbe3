"""Evaluation of picks against ground truth: matching, precision/recall/F1, AP, AR, complexity, forgetting.

Coordinates are centres in original-micrograph pixels (see ``epick.runtime.picks``); the particle
``diameter`` and the matching ``radius`` are in the same pixels.

Matching (one-to-one, greedy by descending score)
    Picks are visited from the highest score down (ties keep file order). A pick takes the best
    still-unmatched truth among its candidates and becomes a true positive (TP); a pick with no
    candidate left is a false positive (FP); truths never taken are false negatives (FN).

    * Box mode (default): both objects are squares of side ``d = diameter``. For a centre offset
      (dx, dy) the intersection is ``I = max(0, d - |dx|) * max(0, d - |dy|)`` and
      ``IoU = I / (2 d^2 - I)``. A candidate needs IoU >= 0.5, i.e. I >= 2/3 d^2, which forces
      ``max(|dx|, |dy|) <= d / 3``; the best candidate is the one with the highest IoU.
      Example: an offset of 0.6 d along x gives IoU = 0.4 / 1.6 = 0.25 (no match); 0.2 d gives
      0.8 / 1.2 = 0.67 (match).
    * Radius mode (``radius=r``): a candidate lies within Euclidean centre distance <= r; the best
      is the nearest.

    Candidate pairs come from a KD-tree query (scipy.spatial.cKDTree), so thousands of picks per
    micrograph take milliseconds.

Average precision (AP), per micrograph
    Picks are sorted by descending score and cumulative TP/FP give precision and recall at every
    score threshold. Picks with EQUAL scores cannot be separated by a threshold, so the curve is
    only sampled after the last pick of each tied group (ground truth with all scores 1 gives one
    point). Precision is made monotone non-increasing from the right (the interpolated precision
    of VOC 2010+/COCO "all-point" interpolation) and AP = sum over recall steps of
    ``(R_k - R_{k-1}) * P_interp(R_k)`` with R_0 = 0. AP therefore lies in [0, 1] and is at most
    the final recall.

Empty micrographs (no value is invented; undefined values are ``None``)
    * no truth and no picks: every ratio is None; skipped from the AP/AR means; adds nothing to
      the pooled counts.
    * no truth but picks: precision 0, F1 0, recall and AP None (excluded from the AP/AR means);
      its picks count as FP in the pooled precision.
    * truth but no picks: recall 0, AP 0, F1 0, precision None (0 / 0).

Dataset level
    ``precision``, ``recall`` and ``f1`` pool TP/FP/FN over all micrographs; ``ap`` is the mean of
    the per-micrograph AP, ``ar`` the mean of the per-micrograph recall (the paper's AP and AR);
    ``complexity = 100 / 10**(ap + ar)`` (in [1, 100]); ``forgetting`` is the mean drop of AP and
    of AR over the old datasets after learning a new one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import EpickError
from .picks import Picks

IOU_THRESHOLD = 0.5
_IOU_TOLERANCE = 1e-9  # IoU exactly 0.5 (offset d/3) still matches despite rounding


@dataclass
class Match:
    """Result of matching one micrograph's picks to its truth (indices into the inputs)."""

    pick_to_truth: np.ndarray  # int64 [n_picks]: matched truth index, -1 for a false positive
    truth_to_pick: np.ndarray  # int64 [n_truth]: matched pick index, -1 for a false negative
    order: np.ndarray  # int64 [n_picks]: pick indices by descending score (ties in input order)

    @property
    def tp(self) -> int:
        """Number of true positives."""
        return int(np.count_nonzero(self.pick_to_truth >= 0))

    @property
    def fp(self) -> int:
        """Number of false positives."""
        return int(self.pick_to_truth.size - self.tp)

    @property
    def fn(self) -> int:
        """Number of false negatives (truths no pick matched)."""
        return int(np.count_nonzero(self.truth_to_pick < 0))


def box_iou(dx: np.ndarray, dy: np.ndarray, diameter: float) -> np.ndarray:
    """IoU of two equal squares of side ``diameter`` whose centres differ by (dx, dy) pixels."""
    d = float(diameter)
    inter = np.maximum(0.0, d - np.abs(dx)) * np.maximum(0.0, d - np.abs(dy))
    return inter / (2.0 * d * d - inter)


def _score_order(picks: Picks) -> np.ndarray:
    """Pick indices by descending score; equal scores keep their input order."""
    return np.argsort(-picks.score_or(1.0), kind="stable")


def _candidate_pairs(picks: Picks, truth: Picks, diameter: float | None,
                     radius: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (pick, truth, quality) pairs that may match; higher quality is a better match."""
    from scipy.spatial import cKDTree

    if radius is not None:
        reach, norm = float(radius), 2.0
    else:
        reach, norm = float(diameter) / 3.0 * (1.0 + 1e-9), np.inf
    pick_tree = cKDTree(np.column_stack([picks.x, picks.y]))
    truth_tree = cKDTree(np.column_stack([truth.x, truth.y]))
    pairs = pick_tree.sparse_distance_matrix(truth_tree, reach, p=norm, output_type="ndarray")
    pi = pairs["i"].astype(np.int64)
    ti = pairs["j"].astype(np.int64)
    if radius is not None:
        dist = np.hypot(picks.x[pi] - truth.x[ti], picks.y[pi] - truth.y[ti])
        keep = dist <= radius
        return pi[keep], ti[keep], -dist[keep]
    iou = box_iou(picks.x[pi] - truth.x[ti], picks.y[pi] - truth.y[ti], diameter)
    keep = iou >= IOU_THRESHOLD - _IOU_TOLERANCE
    return pi[keep], ti[keep], iou[keep]


def match(picks: Picks, truth: Picks, diameter: float | None = None, *,
          radius: float | None = None) -> Match:
    """Match picks to truth one-to-one, greedy by descending score (box IoU >= 0.5, or ``radius``).

    ``diameter`` and ``radius`` are in original-micrograph pixels; give ``diameter`` for box mode
    or ``radius`` for centre-distance mode.
    """
    if radius is None and (diameter is None or not diameter > 0):
        raise ValueError(f"match needs a positive particle diameter in pixels (got {diameter!r}) or a radius")
    if radius is not None and not radius > 0:
        raise ValueError(f"match radius must be positive pixels (got {radius!r})")
    order = _score_order(picks)
    pick_to_truth = np.full(len(picks), -1, dtype=np.int64)
    truth_to_pick = np.full(len(truth), -1, dtype=np.int64)
    if len(picks) == 0 or len(truth) == 0:
        return Match(pick_to_truth, truth_to_pick, order)
    pi, ti, quality = _candidate_pairs(picks, truth, diameter, radius)
    rank = np.empty(len(picks), dtype=np.int64)
    rank[order] = np.arange(len(picks))
    # visit pairs pick by pick (score order), best quality first, lower truth index on ties
    visit = np.lexsort((ti, -quality, rank[pi]))
    for p, t in zip(pi[visit].tolist(), ti[visit].tolist()):
        if pick_to_truth[p] < 0 and truth_to_pick[t] < 0:
            pick_to_truth[p] = t
            truth_to_pick[t] = p
    return Match(pick_to_truth, truth_to_pick, order)


def average_precision(scores: np.ndarray, is_tp: np.ndarray, n_truth: int) -> float | None:
    """Area under the interpolated precision-recall curve (see module docstring); None without truth."""
    if n_truth == 0:
        return None
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hits = np.asarray(is_tp, dtype=bool)[order]
    ctp = np.cumsum(hits)
    cfp = np.cumsum(~hits)
    sorted_scores = scores[order]
    # sample the curve after the last pick of each group of equal scores (one threshold each)
    last_of_group = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    ctp, cfp = ctp[last_of_group], cfp[last_of_group]
    precision = ctp / (ctp + cfp)
    recall = ctp / n_truth
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * precision))


def _ratio(num: int, den: int) -> float | None:
    return num / den if den > 0 else None


def micrograph_metrics(picks: Picks, truth: Picks, diameter: float | None = None, *,
                       radius: float | None = None) -> dict:
    """One micrograph's row: counts, precision, recall, F1 and AP (None where undefined)."""
    return _metrics_and_hits(picks, truth, diameter, radius=radius)[0]


def _metrics_and_hits(picks: Picks, truth: Picks, diameter: float | None, *,
                      radius: float | None) -> tuple[dict, np.ndarray]:
    """``micrograph_metrics``'s row and, per pick, whether it matched a truth object."""
    m = match(picks, truth, diameter, radius=radius)
    tp, fp, fn = m.tp, m.fp, m.fn
    hits = m.pick_to_truth >= 0
    row = {
        "micrograph": truth.key,
        "n_truth": len(truth),
        "n_picks": len(picks),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "ap": average_precision(picks.score_or(1.0), hits, len(truth)),
    }
    return row, hits


def best_f1(scores: Sequence[np.ndarray], hits: Sequence[np.ndarray], n_truth: int) -> dict:
    """The score threshold whose picks (score >= it) have the best F1 pooled over micrographs.

    ``scores`` and ``hits`` hold each micrograph's pick scores and whether each pick matched (from one
    match of all its picks: greedy matching by score makes every threshold's matches a prefix of
    it). Returns ``best_f1``, ``best_threshold`` (a pick score), ``precision_at_best`` and
    ``recall_at_best``; all None without picks or truth.
    """
    out = {"best_f1": None, "best_threshold": None, "precision_at_best": None, "recall_at_best": None}
    s = np.concatenate([np.asarray(v, dtype=np.float64) for v in scores]) if len(scores) else np.zeros(0)
    h = np.concatenate([np.asarray(v, dtype=bool) for v in hits]) if len(hits) else np.zeros(0, bool)
    if s.size == 0 or n_truth <= 0:
        return out
    order = np.argsort(-s, kind="stable")
    s, h = s[order], h[order]
    ctp, cfp = np.cumsum(h), np.cumsum(~h)
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))   # one threshold per distinct score
    f1 = 2 * ctp[last] / (2 * ctp[last] + cfp[last] + (n_truth - ctp[last]))
    i = int(np.argmax(f1))
    idx = last[i]
    out.update(best_f1=float(f1[i]), best_threshold=float(s[idx]), precision_at_best=float(ctp[idx] / (idx + 1)),
               recall_at_best=float(ctp[idx] / n_truth))
    return out


def complexity(ap: float, ar: float) -> float:
    """The paper's complexity of a dataset under an old model: C = 100 / 10**(AP + AR), in [1, 100]."""
    return 100.0 / 10.0 ** (float(ap) + float(ar))


def _mean_defined(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def pair_by_key(pick_list: Iterable[Picks], truth_list: Iterable[Picks]
                ) -> tuple[list[tuple[Picks, Picks]], list[str], list[str]]:
    """Pair picks with truth by ``Picks.key``: (pairs in truth order, unpaired pick keys, unpaired truth keys).

    Raises EpickError when a key appears twice on one side, or when nothing pairs.
    """
    picks_by_key = _by_key(pick_list, "picks")
    truth_by_key = _by_key(truth_list, "truth")
    pairs = [(picks_by_key[k], t) for k, t in truth_by_key.items() if k in picks_by_key]
    lone_picks = sorted(k for k in picks_by_key if k not in truth_by_key)
    lone_truth = sorted(k for k in truth_by_key if k not in picks_by_key)
    if not pairs:
        raise EpickError(
            "no micrograph of the picks pairs with the ground truth by name "
            f"(picks: {_name_list(lone_picks)}; truth: {_name_list(lone_truth)}); "
            "name the coordinate files after their micrographs, e.g. MICROGRAPH.star")
    return pairs, lone_picks, lone_truth


def _by_key(items: Iterable[Picks], side: str) -> dict[str, Picks]:
    out: dict[str, Picks] = {}
    for item in items:
        if item.key in out:
            raise EpickError(f"the {side} hold micrograph {item.key!r} twice "
                             f"({out[item.key].micrograph!r} and {item.micrograph!r}); give each micrograph once")
        out[item.key] = item
    return out


def _name_list(names: list[str], limit: int = 10) -> str:
    if not names:
        return "none"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def resolve_diameter(truth_list: Iterable[Picks], diameter: float | None) -> float | None:
    """The diameter to use: the given one, else the one diameter all truth files carry (else None)."""
    if diameter is not None:
        return float(diameter)
    found = {float(t.diameter) for t in truth_list if t.diameter is not None}
    if len(found) == 1:
        return found.pop()
    return None


def evaluate(pick_list: Iterable[Picks], truth_list: Iterable[Picks], diameter: float | None = None, *,
             radius: float | None = None, progress: bool = False) -> dict:
    """Evaluate picks against truth over many micrographs (paired by ``Picks.key``).

    Returns ``precision recall f1`` (pooled), ``ap ar`` (means over micrographs), ``complexity``,
    ``best_f1 best_threshold precision_at_best recall_at_best`` (``best_f1``; None when the picks
    carry no scores), ``lowest_score`` (of any pick; None without scores),
    ``n_micrographs``, ``diameter``, ``radius``, ``tp fp fn``, ``micrographs`` (per-micrograph rows)
    and the unpaired names ``unpaired_picks`` / ``unpaired_truth``. ``diameter`` (pixels) defaults
    to the diameter stored with the truth; it is required unless ``radius`` is given.
    """
    truth_list = list(truth_list)
    pairs, lone_picks, lone_truth = pair_by_key(pick_list, truth_list)
    diameter = resolve_diameter([t for _, t in pairs], diameter)
    if radius is None and diameter is None:
        found = sorted({t.diameter for _, t in pairs if t.diameter is not None})
        why = f"the truth files disagree ({found})" if found else "the truth files carry none"
        raise EpickError(f"no particle diameter to match with: {why}; give it in pixels with --diameter")
    from tqdm import tqdm

    rows_hits = [_metrics_and_hits(p, t, diameter, radius=radius)
                 for p, t in tqdm(pairs, desc="evaluate", unit="mic", disable=not progress)]
    rows = [r for r, _ in rows_hits]
    scored = [p.score for p, _ in pairs if p.score is not None and len(p)]
    # without scores (manual picks, .box files) every pick ranks the same: no threshold to choose
    best = (best_f1([p.score_or(1.0) for p, _ in pairs], [h for _, h in rows_hits], sum(len(t) for _, t in pairs))
            if scored else best_f1([], [], 0))
    tp = sum(r["tp"] for r in rows)
    fp = sum(r["fp"] for r in rows)
    fn = sum(r["fn"] for r in rows)
    ap = _mean_defined(r["ap"] for r in rows)
    ar = _mean_defined(r["recall"] for r in rows)
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "ap": ap,
        "ar": ar,
        "complexity": complexity(ap, ar) if ap is not None and ar is not None else None,
        "n_micrographs": len(rows),
        "diameter": diameter,
        "radius": None if radius is None else float(radius),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        **best,
        "lowest_score": float(min(v.min() for v in scored)) if scored else None,
        "micrographs": rows,
        "unpaired_picks": lone_picks,
        "unpaired_truth": lone_truth,
    }


def forgetting(before: Mapping[str, Mapping], after: Mapping[str, Mapping]) -> dict:
    """Forgetting rate: mean drop of AP and of AR over the old datasets (names in ``before``).

    ``before[name]`` / ``after[name]`` are metrics dicts with ``ap`` and ``ar`` (e.g. from
    ``evaluate``) for each old dataset, measured before and after learning a new dataset; names only
    in ``after`` (the new dataset) are ignored. Returns ``{"ap", "ar", "n_datasets", "per_dataset"}``
    where a positive value means the model got worse.
    """
    if not before:
        raise ValueError("forgetting needs the metrics of at least one old dataset in 'before'")
    missing = sorted(set(before) - set(after))
    if missing:
        raise ValueError(f"forgetting: old datasets missing from 'after': {', '.join(missing)}")
    per_dataset = {}
    for name in before:
        drops = {}
        for key in ("ap", "ar"):
            old, new = before[name].get(key), after[name].get(key)
            if old is None or new is None:
                raise ValueError(f"forgetting: dataset {name!r} has no {key!r} before or after")
            drops[key] = float(old) - float(new)
        per_dataset[name] = drops
    return {
        "ap": float(np.mean([d["ap"] for d in per_dataset.values()])),
        "ar": float(np.mean([d["ar"] for d in per_dataset.values()])),
        "n_datasets": len(per_dataset),
        "per_dataset": per_dataset,
    }


# ---------------------------------------------------------------- vesicles and fibers
def radius_errors(picks: Picks, truth: Picks, *, radius: float) -> np.ndarray:
    """Relative radius errors ``|r_pick - r_true| / r_true`` of the matched vesicles (one micrograph).

    Picks are matched to truth by centre distance <= ``radius`` (original pixels, see ``match``);
    both must carry ``radius`` (original pixels). Returns float64 [n_matched] (empty when none).
    """
    if picks.radius is None or truth.radius is None:
        raise ValueError("radius_errors needs vesicle radii on both the picks and the truth")
    m = match(picks, truth, radius=radius)
    hit = np.flatnonzero(m.pick_to_truth >= 0)
    r_true = truth.radius[m.pick_to_truth[hit]]
    return np.abs(picks.radius[hit] - r_true) / r_true


def polylines(picks: Picks) -> list[np.ndarray]:
    """Fiber polylines of ``picks`` as float64 [n, 2] (x, y) arrays, one per ``tube_id`` in stored order."""
    ids = picks.tube_id if picks.tube_id is not None else np.ones(len(picks), dtype=np.int64)
    return [np.column_stack([picks.x[ids == t], picks.y[ids == t]]) for t in np.unique(ids)]


def distance_to_polylines(x: np.ndarray, y: np.ndarray, lines: list[np.ndarray]) -> np.ndarray:
    """Euclidean distance (pixels) of each point (x, y) to the nearest segment or vertex of ``lines``.

    ``lines``: float64 [n, 2] polylines; a single-vertex line counts as a point. inf when no lines.
    """
    px = np.asarray(x, dtype=np.float64).reshape(-1, 1)
    py = np.asarray(y, dtype=np.float64).reshape(-1, 1)
    best = np.full(px.shape[0], np.inf)
    for line in lines:
        a = line if len(line) > 1 else np.repeat(line, 2, axis=0)
        ax, ay = a[:-1, 0][None], a[:-1, 1][None]
        dx, dy = (a[1:, 0] - a[:-1, 0])[None], (a[1:, 1] - a[:-1, 1])[None]
        length2 = dx * dx + dy * dy
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
        d = np.hypot(ax + t * dx - px, ay + t * dy - py)
        best = np.minimum(best, d.min(axis=1))
    return best


def resample_polyline(line: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` pixels along the polyline [n, 2] (both ends included)."""
    seg = np.hypot(*np.diff(line, axis=0).T) if len(line) > 1 else np.zeros(0)
    along = np.r_[0.0, np.cumsum(seg)]
    n = max(2, int(np.ceil(along[-1] / step)) + 1)
    t = np.linspace(0.0, along[-1], n)
    return np.column_stack([np.interp(t, along, line[:, 0]), np.interp(t, along, line[:, 1])])


def fiber_metrics(picks: Picks, truth: Picks, *, tolerance: float, step: float = 1.0) -> dict:
    """How well traced fibers follow the true polylines on one micrograph (all lengths original pixels).

    - ``n_tubes`` / ``n_true_tubes``: polylines picked / true (by ``tube_id``).
    - ``mean_distance``: mean distance of picked points to the nearest true polyline (None if no picks).
    - ``precision``: fraction of picked points within ``tolerance`` of a true polyline.
    - ``coverage``: fraction of the true polyline length (sampled every ``step``) within
      ``tolerance`` of a picked polyline.
    """
    true_lines = polylines(truth)
    picked_lines = polylines(picks) if len(picks) else []
    dist = distance_to_polylines(picks.x, picks.y, true_lines) if len(picks) else np.zeros(0)
    samples = np.concatenate([resample_polyline(line, step) for line in true_lines]) if true_lines else np.zeros((0, 2))
    covered = distance_to_polylines(samples[:, 0], samples[:, 1], picked_lines) <= tolerance
    return {
        "n_tubes": len(picked_lines),
        "n_true_tubes": len(true_lines),
        "mean_distance": float(dist.mean()) if dist.size else None,
        "precision": float(np.mean(dist <= tolerance)) if dist.size else None,
        "coverage": float(covered.mean()) if covered.size else None,
    }
