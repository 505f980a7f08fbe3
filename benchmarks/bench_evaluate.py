"""Benchmark of epick.runtime.evaluate: matching + metrics per micrograph, synthetic crowded picks.

Run: ``python benchmarks/bench_evaluate.py [--repeats 7]``. Cases: N truth particles on a
4096 x 4096 micrograph, 2 N picks (the truth jittered by up to 0.25 diameter, plus N random false
positives), diameter 108 px (the beta-gal scale). Times one ``micrograph_metrics`` call (KD-tree
candidates, greedy match, AP) per repeat.
"""
from __future__ import annotations

import argparse

import numpy as np
from _report import Report, timed

from epick.runtime.evaluate import micrograph_metrics
from epick.runtime.picks import Picks

SIZE = 4096.0
DIAMETER = 108.0


def make_case(n_truth: int, seed: int = 0) -> tuple[Picks, Picks]:
    """Truth of n particles and 2n scored picks (half near the truth, half random) on one micrograph."""
    rng = np.random.default_rng(seed)
    tx, ty = rng.uniform(0, SIZE, n_truth), rng.uniform(0, SIZE, n_truth)
    jitter = rng.uniform(-0.25, 0.25, (2, n_truth)) * DIAMETER
    px = np.concatenate([tx + jitter[0], rng.uniform(0, SIZE, n_truth)])
    py = np.concatenate([ty + jitter[1], rng.uniform(0, SIZE, n_truth)])
    score = rng.uniform(size=2 * n_truth)
    return Picks("bench", px, py, score=score), Picks("bench", tx, ty)


def main() -> None:
    """Time matching for several crowding levels and write the report."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    report = Report("evaluate", params={"diameter_px": DIAMETER, "micrograph_px": SIZE,
                                        "repeats": args.repeats})
    for n_truth in (700, 2000, 5000):
        picks, truth = make_case(n_truth)
        micrograph_metrics(picks, truth, DIAMETER)  # warm-up (scipy import)
        for _ in range(args.repeats):
            with timed() as t:
                row = micrograph_metrics(picks, truth, DIAMETER)
            report.add(f"{n_truth} truth / {2 * n_truth} picks", t.seconds, tp=row["tp"], ap=row["ap"])
    report.finish()


if __name__ == "__main__":
    main()
