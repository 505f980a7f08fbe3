"""Parity of an exported artifact with the torch network: heatmap/offset differences and identical picks.

Picks are compared with the runtime's own peak step (``epick.runtime.peaks.find_peaks_batch``), so
"identical" means: the same heatmap cells are picked, and decoded positions agree within
``position_tol`` network pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass
class ParityReport:
    """Result of one comparison: max |difference| per output, picks per image, and verdicts."""

    max_abs_diff: dict[str, float]
    picks_reference: list[int]
    picks_identical: bool
    position_max_diff: float
    details: list[str] = field(default_factory=list)

    def ok(self, heatmap_tol: float) -> bool:
        """Heatmap within ``heatmap_tol`` and identical picks."""
        return self.max_abs_diff.get("heatmap", np.inf) <= heatmap_tol and self.picks_identical

    def summary(self) -> str:
        """One line for logs and the CLI."""
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs_diff.items())
        return (f"max |diff|: {diffs}; picks {'identical' if self.picks_identical else 'DIFFER'} "
                f"({sum(self.picks_reference)} reference picks, positions within {self.position_max_diff:.2e} px)")


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


def compare(reference: Runner, candidate: Runner, batches: Iterable[np.ndarray], **pick_kw) -> ParityReport:
    """Run both on every batch; the worst difference per output and whether all picks agree."""
    diffs: dict[str, float] = {}
    counts: list[int] = []
    identical, worst, details = True, 0.0, []
    for images in batches:
        ref, new = reference(images), candidate(images)
        for name, value in ref.items():
            d = float(np.max(np.abs(value.astype(np.float64) - new[name].astype(np.float64))))
            diffs[name] = max(diffs.get(name, 0.0), d)
        same, n, w, why = compare_picks(ref, new, **pick_kw)
        identical &= same
        counts += n
        worst = max(worst, w)
        details += why
    return ParityReport(diffs, counts, identical, worst, details)


def real_network_batch(paths: Iterable[str | Path], preprocess: dict | None = None) -> np.ndarray:
    """Network inputs [N, 1, H, W] of micrographs of one shape: read, preprocess, pad to 32, u8 / 255."""
    from epick.runtime.io.micrograph import read_micrograph
    from epick.runtime.preprocess import PreprocessParams, network_input, pad_to_multiple
    from epick.runtime.preprocess import preprocess as run_preprocess

    params = PreprocessParams.from_dict(preprocess or {})
    images = [pad_to_multiple(run_preprocess(read_micrograph(p).data, params)[0], 32) for p in paths]
    return network_input(np.stack(images)[:, None])


def random_network_batch(shape: tuple[int, int, int, int], seed: int = 0) -> np.ndarray:
    """Random network inputs of ``shape`` [N, 1, H, W]: uint8 noise / 255, like real inputs."""
    from epick.runtime.preprocess import network_input

    rng = np.random.default_rng(seed)
    return network_input(rng.integers(0, 256, size=shape, dtype=np.uint8))
