"""Benchmark of coordinate I/O: read/write per format for a large synthetic picking job.

Run: ``python benchmarks/bench_coordinates.py [--repeats 5] [--micrographs 500] [--per 400]``.
Cases: M micrographs x P picks each (4096 x 4096, float centres, scores). Timed: one autopick
STAR write+read per micrograph (mean per file), one .box write+read per micrograph, one Topaz table
and one cryoSPARC .cs for the whole job, and one particles.star (all rows, grouped by micrograph).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _report import Report, timed

from epick.runtime.io.coordinates import read_picks, write_picks
from epick.runtime.picks import Picks


def make_job(n_mics: int, per: int, seed: int = 0) -> list[Picks]:
    """n_mics micrographs with ``per`` random scored picks each."""
    rng = np.random.default_rng(seed)
    return [Picks(f"Movies/mic_{i:05d}.mrc", rng.uniform(0, 4096, per), rng.uniform(0, 4096, per),
                  score=rng.uniform(size=per), shape=(4096, 4096), diameter=108.0) for i in range(n_mics)]


def particles_star(job: list[Picks], path: Path) -> None:
    """One particles.star (optics + particles blocks) holding every pick of the job."""
    lines = ["data_optics", "loop_", "_rlnOpticsGroup #1", "_rlnMicrographPixelSize #2", "1 1.0", "",
             "data_particles", "loop_", "_rlnCoordinateX #1", "_rlnCoordinateY #2",
             "_rlnAutopickFigureOfMerit #3", "_rlnMicrographName #4"]
    for p in job:
        lines += [f"{x:.6f} {y:.6f} {s:.6f} {p.micrograph}" for x, y, s in zip(p.x, p.y, p.score_or(1.0))]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    """Time each format and write the report."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--micrographs", type=int, default=500)
    parser.add_argument("--per", type=int, default=400)
    args = parser.parse_args()
    job = make_job(args.micrographs, args.per)
    n = args.micrographs * args.per
    report = Report("coordinates", params={"micrographs": args.micrographs, "picks_per_micrograph": args.per,
                                           "repeats": args.repeats})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        particles_star(job, tmp / "particles.star")
        sample = job[: min(50, len(job))]
        for _ in range(args.repeats):
            for fmt in ("star", "box"):
                with timed() as t:
                    for p in sample:
                        read_picks(write_picks(p, tmp / f"{p.key}.{fmt}"))
                report.add(f"{fmt} write+read, per micrograph ({args.per} picks)", t.seconds / len(sample))
            with timed() as t:
                back = read_picks(write_picks(job, tmp / "all.txt", "topaz"))
            report.add(f"topaz write+read, whole job ({n} picks)", t.seconds, micrographs=len(back))
            with timed() as t:
                back = read_picks(write_picks(job, tmp / "all.cs"))
            report.add(f"cs write+read, whole job ({n} picks)", t.seconds, micrographs=len(back))
            with timed() as t:
                back = read_picks(tmp / "particles.star")
            report.add(f"particles.star read, whole job ({n} rows)", t.seconds, micrographs=len(back))
    report.finish()


if __name__ == "__main__":
    main()
