"""Parity of an exported artifact with the torch network: heatmap/offset differences and the picks.

Picks are found with the runtime's own peak step (``epick.runtime.peaks.find_peaks_batch``). Two
verdicts:

- FP32 artifacts (ONNX): "identical" picks -- the same heatmap cells, decoded positions within
  ``position_tol`` network pixels -- and logits within a tight tolerance.
- Reduced precision (FP16 packages and engines): the picks a user gets, judged by
  ``PickTolerance``: every pick has a partner within 1 px of the ORIGINAL micrograph and with a score
  within 0.02, so the count above the threshold is the same. Logits are not judged: FP16 output
  rounding alone is ~0.008 at |logit| 16, where the score does not move. A pick whose score lies
  within the score tolerance of the threshold may appear on one side only ("borderline"); it is
  reported, not failed, because an FP16 rounding may legitimately move it across the threshold.
  Likewise a "near tie": an unpaired pick whose cell is, in the reference logits, a 3x3 maximum or
  not by a margin no larger than the largest logit difference between the two outputs on that
  image: which cell is the maximum is then decided by the precision (FP16 even makes some
  neighbours exactly equal, and the peak rule keeps both cells of a tie).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]


DEFAULT_SCALE = 4.0   # original px per network px of a 4096-px micrograph at width 1024 (random inputs)


@dataclass(frozen=True)
class PickTolerance:
    """When a reduced-precision artifact gives "the same picks" as the FP32 network.

    ``position_px``: ORIGINAL micrograph pixels between paired picks; ``score``: absolute difference
    of paired scores (0..1) and the band around the threshold where a pick may lack a partner.
    """

    position_px: float = 1.0
    score: float = 0.02

    def describe(self) -> str:
        """The rule in words (CLI output)."""
        return f"positions within {self.position_px:g} original px, scores within {self.score:g}"


@dataclass
class PickAgreement:
    """Tolerant comparison of one image's picks (see ``match_picks``)."""

    paired: int
    worst_position_px: float          # original pixels
    worst_score: float
    borderline: int                   # unpaired picks within the score band of the threshold
    problems: list[str]
    near_ties: int = 0                # unpaired picks beside a precision-limited tie (module docstring)

    @property
    def ok(self) -> bool:
        """No pick beyond the tolerance."""
        return not self.problems


@dataclass
class ParityReport:
    """Result of one comparison: max |difference| per output, picks per image, and verdicts."""

    max_abs_diff: dict[str, float]
    picks_reference: list[int]
    picks_identical: bool
    position_max_diff: float
    details: list[str] = field(default_factory=list)
    picks_within_tolerance: bool = True
    worst_position_px: float = 0.0    # original pixels, tolerant pairing
    worst_score: float = 0.0
    borderline: int = 0
    tolerance: PickTolerance = field(default_factory=PickTolerance)
    tolerance_details: list[str] = field(default_factory=list)
    near_ties: int = 0

    def ok(self, heatmap_tol: float) -> bool:
        """FP32 verdict: heatmap within ``heatmap_tol`` and identical picks."""
        return self.max_abs_diff.get("heatmap", np.inf) <= heatmap_tol and self.picks_identical

    def picks_ok(self) -> bool:
        """Reduced-precision verdict: the same picks within ``tolerance`` (logits not judged)."""
        return self.picks_within_tolerance and sum(self.picks_reference) > 0

    def summary(self) -> str:
        """One line for logs and the CLI."""
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs_diff.items())
        return (f"max |diff|: {diffs}; picks {'identical' if self.picks_identical else 'DIFFER'} "
                f"({sum(self.picks_reference)} reference picks, positions within {self.position_max_diff:.2e} px)")

    def picks_summary(self) -> str:
        """One line on the tolerant verdict."""
        verdict = "the same" if self.picks_within_tolerance else "NOT the same"
        return (f"picks {verdict} ({self.tolerance.describe()}): {sum(self.picks_reference)} reference picks, "
                f"worst position {self.worst_position_px:.3f} original px, worst score {self.worst_score:.4f}, "
                f"{self.borderline} borderline, {self.near_ties} near ties; "
                f"max |logit diff| {self.max_abs_diff.get('heatmap', np.nan):.2e}")


def torch_runner(graph, device: str = "cpu") -> Runner:
    """Run a ContractGraph-like module (outputs in ``graph.names`` order) on float32 numpy batches."""
    import torch

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = graph(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device))
        return {name: t.float().cpu().numpy() for name, t in zip(graph.names, out)}

    return run


def onnx_runner(onnx_path: str | Path, threads: int | None = None) -> Runner:
    """Run an ONNX file with ONNX Runtime on the CPU (all graph optimisations on, as the runtime does)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        values = session.run(names, {input_name: np.ascontiguousarray(images, dtype=np.float32)})
        return dict(zip(names, values))

    return run


def parity_threshold(heatmap_logits: np.ndarray, default: float = 0.3, top_fraction: float = 0.01) -> float:
    """Score threshold for comparing picks: ``default``, lowered to the score of the top 1 % of cells
    so that untrained networks (scores near the 0.1 prior) still yield picks to compare."""
    from epick.runtime.peaks import sigmoid64

    return float(min(default, np.quantile(sigmoid64(heatmap_logits), 1.0 - top_fraction)))


def compare_picks(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], *,
                  threshold: float | None = None, top_k: int = 2000, position_tol: float = 1e-2):
    """(identical?, picks per reference image, max position difference in network px, details).

    ``threshold`` None: ``parity_threshold`` of the reference heatmap.
    """
    from epick.runtime.peaks import find_peaks_batch

    if threshold is None:
        threshold = parity_threshold(reference["heatmap"])

    ref = find_peaks_batch(reference["heatmap"], reference["offset"], threshold=threshold, top_k=top_k)
    new = find_peaks_batch(candidate["heatmap"], candidate["offset"], threshold=threshold, top_k=top_k)
    identical, worst, details = True, 0.0, []
    for i, (a, b) in enumerate(zip(ref, new)):
        if not np.array_equal(np.sort(a.index), np.sort(b.index)):
            identical = False
            details.append(f"image {i}: {len(a)} reference picks, {len(b)} candidate picks, "
                           f"{np.setxor1d(a.index, b.index).size} cells differ")
            continue
        oa, ob = np.argsort(a.index), np.argsort(b.index)
        if len(a):
            diff = float(max(np.abs(a.x[oa] - b.x[ob]).max(), np.abs(a.y[oa] - b.y[ob]).max()))
            worst = max(worst, diff)
            if diff > position_tol:
                identical = False
                details.append(f"image {i}: positions differ by up to {diff:.3g} px")
    return identical, [len(a) for a in ref], worst, details


def _near_ties(cells: np.ndarray, reference_logits: np.ndarray | None, logit_error: float) -> np.ndarray:
    """Which heatmap ``cells`` (row-major indices) are local maxima or not only by a margin within
    ``logit_error``: |reference logit - largest reference logit of its 3x3 neighbours| <= error."""
    if reference_logits is None or cells.size == 0:
        return np.zeros(cells.size, dtype=bool)
    heat = np.asarray(reference_logits, dtype=np.float64)
    h, w = heat.shape
    padded = np.pad(heat, 1, constant_values=-np.inf)
    rows, cols = np.divmod(cells.astype(np.int64), w)
    neighbours = np.stack([padded[rows + 1 + dr, cols + 1 + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                           if dr or dc], axis=1)
    return np.abs(heat[rows, cols] - neighbours.max(axis=1)) <= logit_error


def match_picks(reference, candidate, *, threshold: float, scale: float = DEFAULT_SCALE,
                tolerance: PickTolerance | None = None, reference_logits: np.ndarray | None = None,
                logit_error: float = 0.0) -> PickAgreement:
    """Pair two images' picks (``NetworkPeaks``, network pixels) nearest first within
    ``tolerance.position_px`` original pixels (``scale`` original px per network px); every pick
    must be paired, with scores within ``tolerance.score``, unless it is borderline (score within
    ``tolerance.score`` of ``threshold``) or a near tie (needs ``reference_logits`` [h, w] of this
    image and ``logit_error``, the largest |logit difference| of the two outputs): counted, not failed."""
    tol = tolerance or PickTolerance()
    reach = tol.position_px / float(scale)          # network pixels
    n, m = len(reference), len(candidate)
    pairs: list[tuple[int, int, float]] = []
    if n and m:
        dist = np.hypot(reference.x[:, None] - candidate.x[None, :], reference.y[:, None] - candidate.y[None, :])
        i, j = np.nonzero(dist <= reach)
        order = np.argsort(dist[i, j], kind="stable")
        used_i, used_j = set(), set()
        for k in order:
            a, b = int(i[k]), int(j[k])
            if a not in used_i and b not in used_j:
                used_i.add(a)
                used_j.add(b)
                pairs.append((a, b, float(dist[a, b])))
    problems: list[str] = []
    worst_pos = max((d * scale for _, _, d in pairs), default=0.0)
    score_diff = [abs(float(reference.score[a]) - float(candidate.score[b])) for a, b, _ in pairs]
    worst_score = max(score_diff, default=0.0)
    bad_scores = [d for d in score_diff if d > tol.score]
    if bad_scores:
        problems.append(f"{len(bad_scores)} paired picks differ in score by more than {tol.score:g} "
                        f"(up to {max(bad_scores):.4f})")
    borderline = ties = 0
    for name, peaks, paired in (("reference", reference, {a for a, _, _ in pairs}),
                                ("candidate", candidate, {b for _, b, _ in pairs})):
        lonely = np.setdiff1d(np.arange(len(peaks)), np.fromiter(paired, dtype=np.int64, count=len(paired)))
        near = np.abs(peaks.score[lonely] - threshold) <= tol.score
        cells = np.asarray(peaks.index if peaks.index is not None else [], dtype=np.int64)
        tie = ~near & (_near_ties(cells[lonely], reference_logits, logit_error) if cells.size else False)
        borderline += int(near.sum())
        ties += int(tie.sum())
        bad = ~(near | tie)
        if bad.any():
            worst = lonely[bad][0]
            problems.append(f"{int(bad.sum())} {name} picks have no partner within {tol.position_px:g} "
                            f"original px (e.g. x={peaks.x[worst] * scale:.1f}, y={peaks.y[worst] * scale:.1f} "
                            f"original px, score {peaks.score[worst]:.3f})")
    return PickAgreement(len(pairs), float(worst_pos), float(worst_score), borderline, problems, ties)


def compare(reference: Runner, candidate: Runner, batches: Iterable[np.ndarray], *,
            scales: Iterable[float] | None = None, tolerance: PickTolerance | None = None,
            **pick_kw) -> ParityReport:
    """Run both on every batch; the worst difference per output, whether the picks are identical
    (FP32 verdict) and whether they agree within ``tolerance`` (reduced-precision verdict).

    ``scales``: original px per network px of each batch (``DEFAULT_SCALE`` when not given).
    """
    from epick.runtime.peaks import find_peaks_batch

    tolerance = tolerance or PickTolerance()
    batches = list(batches)
    scales = list(scales) if scales is not None else [DEFAULT_SCALE] * len(batches)
    diffs: dict[str, float] = {}
    counts: list[int] = []
    identical, worst, details = True, 0.0, []
    tolerant, worst_px, worst_score, borderline, ties, why_not = True, 0.0, 0.0, 0, 0, []
    for b, (images, scale) in enumerate(zip(batches, scales)):
        ref, new = reference(images), candidate(images)
        for name, value in ref.items():
            d = float(np.max(np.abs(value.astype(np.float64) - new[name].astype(np.float64))))
            diffs[name] = max(diffs.get(name, 0.0), d)
        same, n, w, why = compare_picks(ref, new, **pick_kw)
        identical &= same
        counts += n
        worst = max(worst, w)
        details += why
        threshold = pick_kw.get("threshold")
        threshold = parity_threshold(ref["heatmap"]) if threshold is None else threshold
        top_k = pick_kw.get("top_k", 2000)
        ref_peaks = find_peaks_batch(ref["heatmap"], ref["offset"], threshold=threshold, top_k=top_k)
        new_peaks = find_peaks_batch(new["heatmap"], new["offset"], threshold=threshold, top_k=top_k)
        heat_ref = np.asarray(ref["heatmap"]).reshape(len(ref_peaks), *np.shape(ref["heatmap"])[-2:])
        heat_new = np.asarray(new["heatmap"]).reshape(heat_ref.shape)
        for i, (a, c) in enumerate(zip(ref_peaks, new_peaks)):
            error = float(np.max(np.abs(heat_ref[i].astype(np.float64) - heat_new[i])))
            agreement = match_picks(a, c, threshold=threshold, scale=scale, tolerance=tolerance,
                                    reference_logits=heat_ref[i], logit_error=error)
            tolerant &= agreement.ok
            worst_px = max(worst_px, agreement.worst_position_px)
            worst_score = max(worst_score, agreement.worst_score)
            borderline += agreement.borderline
            ties += agreement.near_ties
            why_not += [f"batch {b} image {i}: {p}" for p in agreement.problems]
    return ParityReport(diffs, counts, identical, worst, details, tolerant, worst_px, worst_score, borderline,
                        tolerance, why_not, ties)


def real_network_batch(paths: Iterable[str | Path], preprocess: dict | None = None,
                       with_scale: bool = False):
    """Network inputs [N, 1, H, W] of micrographs of one shape: read, preprocess, pad to 32, u8 / 255;
    with ``with_scale`` also the original px per network px (for ``compare``'s ``scales``)."""
    from epick.runtime.io.micrograph import read_micrograph
    from epick.runtime.preprocess import PreprocessParams, network_input, pad_to_multiple
    from epick.runtime.preprocess import preprocess as run_preprocess

    params = PreprocessParams.from_dict(preprocess or {})
    done = [run_preprocess(read_micrograph(p).data, params) for p in paths]
    batch = network_input(np.stack([pad_to_multiple(u8, 32) for u8, _ in done])[:, None])
    if with_scale:
        return batch, max(t.scale_x for _, t in done)
    return batch


def random_network_batch(shape: tuple[int, int, int, int], seed: int = 0) -> np.ndarray:
    """Random network inputs of ``shape`` [N, 1, H, W]: uint8 noise / 255, like real inputs."""
    from epick.runtime.preprocess import network_input

    rng = np.random.default_rng(seed)
    return network_input(rng.integers(0, 256, size=shape, dtype=np.uint8))
