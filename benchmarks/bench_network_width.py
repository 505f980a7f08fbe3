"""Benchmark of ACCURACY: a fixed-width model's AP at other network widths, and its confidence there.

    python benchmarks/bench_network_width.py [--model PATH] [--widths 1024 724 512 362 256]
        [--sizes 16 24 32 48 56 64 72 96 128] [--n 4] [--real-tiles 2048 1536 1024]

A fixed-width model (the bundled general model) resamples every micrograph to ``target_width``
(1024) network pixels; particles larger than it learnt are found when the micrograph is resampled
narrower (``bench_particle_size.py``: with ``--diameter`` epick does that). This benchmark asks
whether the model itself could choose the width: every case is picked at each width of
``--widths`` (the model's preprocessing with that target width, same weights, the runtime's host
path) and scored, and the picks scoring above 0.5 and 0.6 ("confident picks") are counted. Cases:
the simulated micrographs of ``bench_particle_size.py`` (``--n`` per network size in ``--sizes``,
particles spanning that many pixels at width 1024; its ``--seed``, ``--snr`` and ``--shape``) and
square tiles of ``--real-tiles`` px cut from the 4 held-out real beta-gal micrographs (108-px
particles spanning 108 x 1024 / SIDE px at width 1024; picks and labels within half a diameter of a
tile's border left out). Scores: ``epick.runtime.evaluate`` (box IoU >= 0.5 at the true diameter),
AP as the mean over micrographs. Prints, per case, AP and confident picks (> 0.5) per width, and
writes ``bench_results/network_width-<stamp>.json``.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, timed  # noqa: E402
from bench_particle_size import (TYPES, network_size, original_diameter, real_tiles, score_model,  # noqa: E402
                                 score_tiles, simulate_size)

REPO = Path(__file__).resolve().parents[1]
CONFIDENT = (0.5, 0.6)   # score floors of the "confident picks" counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=REPO / "runtime/models/general.onnx",
                    help="fixed-width model (ONNX or .epick); default: the bundled general model")
    ap.add_argument("--widths", nargs="+", type=int, default=[1024, 724, 512, 362, 256],
                    help="network widths to pick at (px); the first is the reference")
    ap.add_argument("--sizes", nargs="+", type=float, default=[16, 24, 32, 48, 56, 64, 72, 96, 128],
                    help="simulated particle diameters in network pixels at the 1024 scale")
    ap.add_argument("--n", type=int, default=4, help="simulated micrographs per size (types cycled)")
    ap.add_argument("--shape", type=int, default=2048, help="simulated micrograph side, original pixels")
    ap.add_argument("--snr", type=float, default=0.3, help="per-particle SNR of the simulation")
    ap.add_argument("--seed", type=int, default=7000)
    ap.add_argument("--real-tiles", nargs="*", type=int, default=[2048, 1536, 1024], metavar="SIDE",
                    help="tile sides (px) of the held-out real beta-gal micrographs")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime / torch threads")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default bench_results/)")
    return ap.parse_args(argv)


class WidthPicker:
    """Picks with ``picker``'s model at network width ``width``; keeps every pick's score."""

    def __init__(self, picker, width: int):
        from epick.runtime.host_path import HostPipeline

        self.picker, self.scores = picker, []
        self.pipeline = HostPipeline(picker.backend, replace(picker.params, target_width=int(width)),
                                     threshold=picker.threshold, top_k=picker.top_k, min_side=picker.min_side)

    def pick(self, image: np.ndarray):
        """Picks (original pixels) of one micrograph array."""
        from epick.runtime.picker import picks_from_peaks

        item = self.pipeline.prepare(image, None, "case", None, 0.0)
        ((peaks, _),) = self.pipeline.peaks([item])
        picks = picks_from_peaks(peaks, item.transform, object_type="particle", micrograph=item.name,
                                 edge_margin=self.picker.options.edge_margin)
        self.scores.append(np.asarray(picks.score, dtype=np.float64))
        return picks

    def confident(self) -> dict:
        """Confident picks per micrograph (mean) above each floor of CONFIDENT."""
        return {f"confident_{t:g}": float(np.mean([np.sum(s > t) for s in self.scores])) for t in CONFIDENT}


def run_case(picker, widths: list[int], score) -> dict:
    """``score(pick)`` at every width, with the confident-pick counts: {width: result}."""
    out = {}
    for width in widths:
        wp = WidthPicker(picker, width)
        with timed() as t:
            result = score(wp.pick)
        out[width] = {**result, **wp.confident(), "seconds": t.seconds}
    return out


def case_line(label: str, rows: dict) -> str:
    """One table row: AP / confident picks (> 0.5) at each width; * marks the best AP."""
    best = max(rows, key=lambda w: rows[w]["ap"])
    cells = "".join(f"{r['ap']:>7.3f}{'*' if w == best else ' '}/{r['confident_0.5']:<5.0f}" for w, r in rows.items())
    return label.ljust(26) + cells


def main(argv: list[str] | None = None) -> int:
    """Simulate, pick every case at every width, print the table and write the JSON."""
    from epick.runtime import Picker

    args = parse_args(argv)
    report = Report("network_width", params={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
                    | {"types": list(TYPES), "confident": list(CONFIDENT)})
    head = "case".ljust(26) + "".join(f"{w:>8d} AP/conf" for w in args.widths)
    lines = ["AP (* best) / confident picks (> 0.5) per micrograph, by network width", head, "-" * len(head)]
    with Picker(args.model, threshold=0.01, threads=args.threads) as picker:
        for size in args.sizes:
            sims = simulate_size(size, args)
            diameter = original_diameter(size, args.shape)
            rows = run_case(picker, args.widths, lambda pick: score_model(pick, sims, diameter))
            lines.append(case_line(f"simulated {size:g} px", rows))
            print(lines[-1], flush=True)
            for width, row in rows.items():
                report.add(f"simulated {size:g} px at width {width}", row.pop("seconds"), kind="simulated",
                           size_px=size, width=width, **row)
        for side in args.real_tiles:
            tiles = real_tiles(side)
            size = network_size(tiles[0][2], side)
            rows = run_case(picker, args.widths, lambda pick: score_tiles(pick, tiles, side))
            lines.append(case_line(f"real tiles {side} ({size:g} px)", rows))
            print(lines[-1], flush=True)
            for width, row in rows.items():
                report.add(f"real beta-gal tiles of {side} px ({size:g} px) at width {width}", row.pop("seconds"),
                           kind="real_tiles", side=side, size_px=size, width=width, **row)
    print()
    print("\n".join(lines))
    report.finish(args.out) if args.out else report.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
