"""Benchmark of ACCURACY: a model's AP by particle size, on simulated micrographs.

    python benchmarks/bench_particle_size.py [--model LABEL=PATH ...] [--sizes 16 24 32 48 64 96 128] [--n 3]

A model in the fixed-width mode (the bundled general model, like the EPicker paper's) resamples every
micrograph to 1024 px wide, so a particle spans ``diameter x 1024 / width`` network pixels: a large
particle, or a small pixel size, puts it at sizes the model may never have seen. For each network
size in ``--sizes`` (pixels at the 1024 scale) this benchmark simulates ``--n`` micrographs of
``--shape`` px (default 2048: the particles are twice that size in original pixels) with the
project's simulator (types cycled over ribosome, proteasome, apoferritin and beta-gal; per-particle
SNR ``--snr``; area density 0.25; the seed fixes every pixel) and scores every ``--model`` on them
through the runtime (``epick.runtime.Picker``, score floor 0.01 so that AP covers the ranking;
``--diameter`` also hands the picker the true diameter, which a particle-size-mode model needs)
with ``epick.runtime.evaluate`` (box IoU >= 0.5 at the true diameter): AP (mean over micrographs)
and the best F1 over score thresholds.

``--real-tiles SIDE ...`` also scores real particles at other sizes: square tiles of SIDE px cut
from the 4 held-out EMPIAR-10017 beta-gal micrographs (4096 px wide, particles 108 px; the held-out
micrographs of ``tools.general_model``, never trained on by the bundled model), each tile picked as
a micrograph of its own, so its 108-px particles span 108 x 1024 / SIDE network pixels (SIDE 4096:
the whole micrograph, 27 px; 1024: 108 px). Particles and picks within half a diameter of a tile's
border are left out of the score. Prints a table of AP by size and the timing table; writes
``bench_results/particle_size-<stamp>.json`` (each case: picking time, AP, best F1, counts).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, timed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TYPES = ("ribosome", "proteasome", "apoferritin", "betagal")
NETWORK_WIDTH = 1024   # the fixed-width mode's network width (PreprocessParams.target_width default)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--model", nargs="+", default=[f"bundled={REPO / 'runtime/models/general.onnx'}"],
                    metavar="LABEL=PATH", help="models to score (ONNX, .epick, ...); default: the bundled general model")
    ap.add_argument("--sizes", nargs="+", type=float, default=[16, 24, 32, 48, 64, 96, 128],
                    help="particle diameters in network pixels at the 1024 scale")
    ap.add_argument("--n", type=int, default=3, help="micrographs per size")
    ap.add_argument("--shape", type=int, default=2048, help="simulated micrograph side, original pixels")
    ap.add_argument("--snr", type=float, default=0.3, help="per-particle SNR of the simulation")
    ap.add_argument("--seed", type=int, default=7000)
    ap.add_argument("--diameter", action="store_true", help="give the picker the true diameter")
    ap.add_argument("--real-tiles", nargs="*", type=int, default=[], metavar="SIDE",
                    help="also score tiles of this side (px) of the held-out real beta-gal micrographs")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime / torch threads")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default bench_results/)")
    return ap.parse_args(argv)


def original_diameter(size_net: float, shape: int) -> float:
    """Original pixels of a particle spanning ``size_net`` network pixels in a ``shape``-px-wide
    micrograph (the fixed-width mode never enlarges a micrograph narrower than 1024 px)."""
    return size_net * max(shape, NETWORK_WIDTH) / NETWORK_WIDTH


def network_size(diameter: float, shape: int) -> float:
    """Network pixels at the 1024 scale of a ``diameter``-px particle in a ``shape``-px-wide micrograph
    (``original_diameter`` inverted)."""
    return diameter * NETWORK_WIDTH / max(shape, NETWORK_WIDTH)


def away_from_border(x: np.ndarray, y: np.ndarray, side: int, margin: float) -> np.ndarray:
    """Which of the points (x, y) lie at least ``margin`` px inside a ``side``-px square tile."""
    return (x >= margin) & (x < side - margin) & (y >= margin) & (y < side - margin)


def simulate_size(size_net: float, args: argparse.Namespace) -> list:
    """``args.n`` SimulatedMicrographs whose particles span ``size_net`` network pixels (fixed width)."""
    from epick.simulator import simulate_micrograph
    from epick.simulator.particles import particle_diameter_a

    diameter = original_diameter(size_net, args.shape)
    out = []
    for i in range(args.n):
        kind = TYPES[i % len(TYPES)]
        out.append(simulate_micrograph((args.shape, args.shape), kind, pixel_size=particle_diameter_a(kind) / diameter,
                                       seed=args.seed + int(round(size_net)) * 100 + i, density=0.25, snr=args.snr))
    return out


def score_model(pick, sims: list, diameter: float) -> dict:
    """AP (mean per micrograph), best F1 and counts of ``pick`` (image -> Picks, e.g. ``Picker.pick``)
    on ``sims`` (box IoU at ``diameter``)."""
    from epick.runtime.picks import Picks

    picks, truth = [], []
    for k, sim in enumerate(sims):
        p = pick(sim.image.astype(np.float32))
        picks.append(Picks(f"m{k}", p.x, p.y, score=p.score))
        truth.append(Picks(f"m{k}", sim.truth.x, sim.truth.y))
    return scores(picks, truth, diameter)


def scores(picks: list, truth: list, diameter: float) -> dict:
    """AP, best F1 (and its threshold) and counts of paired Picks lists (``epick.runtime.evaluate``)."""
    from epick.runtime.evaluate import evaluate

    r = evaluate(picks, truth, diameter)
    return {"ap": r["ap"], "best_f1": r["best_f1"], "best_threshold": r["best_threshold"],
            "n_truth": sum(len(t) for t in truth), "n_picks": sum(len(p) for p in picks)}


def real_tiles(side: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(tile image, truth centres [n, 2] in tile pixels, diameter) of every ``side``-px tile of the
    held-out beta-gal micrographs (a grid of whole tiles from the top-left corner)."""
    sys.path.insert(0, str(REPO))   # tools/ sits beside the packages
    from tools.general_data import REAL_SETS, shared_data
    from tools.general_model import held_out_names

    from epick.runtime.io.coordinates import read_picks
    from epick.runtime.io.micrograph import read_micrograph

    folder = shared_data() / REAL_SETS["betagal"]
    out = []
    for stem in held_out_names("betagal"):
        (truth,) = read_picks(folder / f"{stem}.star")
        data = read_micrograph(next(folder.glob(f"{stem}.*[gG]"))).data
        for y0 in range(0, data.shape[0] - side + 1, side):
            for x0 in range(0, data.shape[1] - side + 1, side):
                inside = (truth.x >= x0) & (truth.x < x0 + side) & (truth.y >= y0) & (truth.y < y0 + side)
                xy = np.stack([truth.x[inside] - x0, truth.y[inside] - y0], 1)
                out.append((data[y0:y0 + side, x0:x0 + side], xy, float(truth.diameter)))
    return out


def score_tiles(pick, tiles: list, side: int) -> dict:
    """``score_model`` for real tiles: objects within half a diameter of the border left out."""
    from epick.runtime.picks import Picks

    picks, truth = [], []
    for k, (image, xy, diameter) in enumerate(tiles):
        p = pick(image.astype(np.float32))
        keep_p = away_from_border(p.x, p.y, side, diameter / 2)
        keep_t = away_from_border(xy[:, 0], xy[:, 1], side, diameter / 2)
        picks.append(Picks(f"t{k}", p.x[keep_p], p.y[keep_p], score=p.score[keep_p]))
        truth.append(Picks(f"t{k}", xy[keep_t, 0], xy[keep_t, 1]))
    return {**scores(picks, truth, tiles[0][2]), "tiles": len(tiles)}


def ap_table(rows: dict, labels: list[str], sizes: list[float]) -> str:
    """AP / best F1 of each model (rows) by network size (columns)."""
    head = "model".ljust(12) + "".join(f"{s:>14g}" for s in sizes)
    lines = [f"AP / best F1 by particle diameter in network px (1024 scale)", head, "-" * len(head)]
    for label in labels:
        cells = [rows[(label, s)] for s in sizes]
        lines.append(label.ljust(12) + "".join(f"{c['ap']:>8.3f}/{c['best_f1']:.3f}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Simulate, pick with every model, print the tables and write the JSON."""
    from epick.runtime import Picker

    args = parse_args(argv)
    models = dict(spec.split("=", 1) for spec in args.model)
    report = Report("particle_size", params={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
                    | {"models": models, "types": list(TYPES)})
    sims = {}
    for size in args.sizes:
        with timed() as t:
            sims[size] = simulate_size(size, args)
        report.add(f"simulate {size:g} px", t.seconds)
    rows = {}
    for label, path in models.items():
        for size in args.sizes:
            diameter = original_diameter(size, args.shape)
            options = {"diameter": diameter} if args.diameter else {}
            with Picker(path, threshold=0.01, threads=args.threads, **options) as picker, timed() as t:
                rows[(label, size)] = score_model(picker.pick, sims[size], diameter)
            report.add(f"{label} {size:g} px", t.seconds, **rows[(label, size)])
    print(ap_table(rows, list(models), args.sizes))
    if args.real_tiles:
        real_rows, real_sizes = {}, []
        for side in args.real_tiles:
            tiles = real_tiles(side)
            size = network_size(tiles[0][2], side)
            real_sizes.append(size)
            for label, path in models.items():
                options = {"diameter": tiles[0][2]} if args.diameter else {}
                with Picker(path, threshold=0.01, threads=args.threads, **options) as picker, timed() as t:
                    real_rows[(label, size)] = score_tiles(picker.pick, tiles, side)
                report.add(f"{label} real beta-gal tiles of {side} px ({size:g} px)", t.seconds,
                           **real_rows[(label, size)])
        print()
        print(ap_table(real_rows, list(models), real_sizes).replace("AP / best F1", "Real beta-gal tiles: AP / best F1", 1))
    print()
    path = report.finish(args.out) if args.out else report.finish()
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
