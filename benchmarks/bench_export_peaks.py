"""Should sigmoid + 3x3 max-pool live inside the ONNX graph? ONNX Runtime CPU latency, 1024x1024.

For the narrow and the full (DLA-34) network, two graphs are exported:
- ``logits``: the contract graph (heatmap = logits); the host then runs the runtime's peak step
  (``epick.runtime.peaks.find_peaks``: numba 3x3 local maxima + threshold + top-K + decoding);
- ``peaks``: sigmoid and the 3x3 max-pool inside the graph (``PeaksInGraph``); the host then only
  thresholds the score map (non-zero = local maximum), orders the top-K and decodes.
Times: graph alone, host step alone, and graph + host (what picking pays). Weights are random
(seeded), with the heatmap head scaled so logits span a trained network's range.

    python benchmarks/bench_export_peaks.py [--repeats 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, timed  # noqa: E402


def host_peaks_from_scores(score: np.ndarray, offset: np.ndarray, threshold: float, top_k: int):
    """Host step for the ``peaks`` graph: cells with score >= threshold are the local maxima."""
    from epick.runtime.peaks import decode_cells, order_candidates

    flat = score.reshape(-1)
    cand = np.flatnonzero(flat >= threshold)
    index = order_candidates(flat, cand, top_k)
    return decode_cells(index, score.shape[1], offset)


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from epick.runtime.artifact import build_artifact_metadata
    from epick.export.graph import ContractGraph, PeaksInGraph
    from epick.export.onnx_export import export_onnx
    from epick.export.parity import random_network_batch
    from epick.runtime.peaks import find_peaks
    from epick.trainer.network import NetworkConfig, build_detector

    report = Report("export_peaks_in_graph", params={"repeats": args.repeats, "threads": args.threads,
                                                      "input": [1, 1, args.size, args.size], "threshold": 0.3})
    image = random_network_batch((1, 1, args.size, args.size), seed=1)
    threshold, top_k = 0.3, 2000
    with tempfile.TemporaryDirectory(prefix="epick-bench-") as tmp:
        for label, config in (("narrow", NetworkConfig.narrow()), ("full", NetworkConfig())):
            torch.manual_seed(0)
            network = build_detector(config).eval()
            with torch.no_grad():
                network.heatmap[-1].weight.mul_(200.0)
            graph = ContractGraph(network).eval()
            for variant, module in (("logits", graph), ("peaks", PeaksInGraph(graph).eval())):
                meta = build_artifact_metadata({"object_type": "particle"}, "sha256:bench", list(graph.names))
                path = export_onnx(module, Path(tmp) / f"{label}-{variant}.onnx", meta)
                options = ort.SessionOptions()
                options.intra_op_num_threads = args.threads
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                heat, off = session.run(None, {"image": image})  # warm-up
                if variant == "logits":
                    host = lambda h=heat, o=off: find_peaks(h[0, 0], o[0], threshold=threshold, top_k=top_k)  # noqa: E731
                else:
                    host = lambda h=heat, o=off: host_peaks_from_scores(h[0, 0], o[0], threshold, top_k)  # noqa: E731
                host()  # compile numba kernels outside the timing
                n_picks = len(host()[0]) if variant == "peaks" else len(host())
                for _ in range(args.repeats):
                    with timed() as t_graph:
                        heat, off = session.run(None, {"image": image})
                    with timed() as t_host:
                        host()
                    report.add(f"{label} {variant}: graph", t_graph.seconds)
                    report.add(f"{label} {variant}: host peak step", t_host.seconds, picks=n_picks)
                    report.add(f"{label} {variant}: graph + host", t_graph.seconds + t_host.seconds)
    report.finish()


if __name__ == "__main__":
    main()
