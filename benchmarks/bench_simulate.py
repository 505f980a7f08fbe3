"""Benchmark: time to simulate one micrograph (default 4096 x 4096 with 300 ribosome-like particles)
on one core. Prints a table and writes JSON (machine, versions, every raw timing, median).

    python benchmarks/bench_simulate.py [--size 4096] [--n 300] [--repeats 5] [--out benchmarks/results/simulate.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--n", type=int, default=300, help="particles per micrograph")
    parser.add_argument("--type", default="ribosome")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/simulate.json"))
    args = parser.parse_args()
    # one core: pin BLAS/FFT threads before numpy/scipy load
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    import numpy as np
    import scipy

    from epick.simulator import simulate_micrograph
    from epick.simulator.projection import clear_cache

    shape = (args.size, args.size)
    rows = []
    clear_cache()
    t0 = time.perf_counter()
    simulate_micrograph(shape, args.type, n_particles=args.n, seed=0)
    cold = time.perf_counter() - t0  # includes building the particle and its first projections
    for i in range(args.repeats):
        t0 = time.perf_counter()
        sim = simulate_micrograph(shape, args.type, n_particles=args.n, seed=i + 1)
        rows.append(time.perf_counter() - t0)
    median = statistics.median(rows)
    print(f"{'case':<38}{'seconds':>10}")
    print(f"{'cold (first call, builds cache)':<38}{cold:>10.3f}")
    for i, t in enumerate(rows):
        print(f"{f'warm run {i + 1}':<38}{t:>10.3f}")
    print(f"{'median warm':<38}{median:>10.3f}   ({len(sim.truth)} particles placed, target < 5 s)")
    result = {
        "benchmark": "simulate_micrograph", "shape": list(shape), "particle": args.type,
        "n_particles_requested": args.n, "n_particles_placed": len(sim.truth), "cores": 1,
        "cold_s": cold, "warm_s": rows, "median_s": median,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from epick.runtime.io.atomic import atomic_write

    with atomic_write(args.out) as handle:
        json.dump(result, handle, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
