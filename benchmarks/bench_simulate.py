"""Benchmark: simulating micrographs on one core (target: 4096 x 4096 with 300 particles < 5 s).

    python benchmarks/bench_simulate.py [--repeats 5] [--n 300] [--type ribosome]

Cases: the 4096^2 target (cold = first call, builds the particle cloud and projection cache;
then warm runs with new seeds), a K3-sized 5760x4092 frame, and 512^2 test-sized micrographs of
each object kind. Writes bench_results/simulate-<stamp>.json through benchmarks/_report.py.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, before numpy/scipy load

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, timed  # noqa: E402

from epick.simulator import simulate_micrograph  # noqa: E402
from epick.simulator.projection import clear_cache  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="particles per 4096^2 micrograph")
    parser.add_argument("--type", default="ribosome")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    report = Report("simulate", params={"threads": 1, "particle": args.type, "n_particles": args.n,
                                        "repeats": args.repeats},
                    packages=("numpy", "scipy", "gemmi", "epick"))
    clear_cache()
    case = f"4096x4096 {args.type} x{args.n}"
    with timed() as t:
        sim = simulate_micrograph((4096, 4096), args.type, n_particles=args.n, seed=0)
    report.add(f"{case} (cold)", t.seconds, placed=len(sim.truth))
    for i in range(args.repeats):
        with timed() as t:
            sim = simulate_micrograph((4096, 4096), args.type, n_particles=args.n, seed=i + 1)
        report.add(case, t.seconds, placed=len(sim.truth))
    for i in range(max(1, args.repeats // 2)):
        with timed() as t:
            simulate_micrograph((4092, 5760), args.type, seed=100 + i)
        report.add(f"5760x4092 {args.type} (density 0.2)", t.seconds)
    for obj, kind in (("particle", args.type), ("vesicle", None), ("fiber", "amyloid")):
        simulate_micrograph((512, 512), kind, object=obj, seed=0)  # warm the cache
        for i in range(args.repeats):
            with timed() as t:
                simulate_micrograph((512, 512), kind, object=obj, seed=i + 1)
            report.add(f"512x512 {obj}", t.seconds)
    report.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
