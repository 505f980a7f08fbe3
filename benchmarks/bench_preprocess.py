"""Benchmark: reading float32 MRCs (warm page cache) and preprocessing them, on one core.

    python benchmarks/bench_preprocess.py [--repeats 7] [--sizes 4096x4096 5760x4092 3838x3710]

Sizes are WIDTHxHEIGHT. MRCs are written to a temporary folder first. Each case is timed
``--repeats`` times after one untimed warm-up (JIT compilation, page cache); steps of the
preprocessing are timed separately too (for comparison with the GPU kernels). Writes
bench_results/preprocess-<stamp>.json through benchmarks/_report.py.
"""
from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # before numba is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, timed  # noqa: E402

from epick.runtime.io.micrograph import read_micrograph, write_mrc  # noqa: E402
from epick.runtime.preprocess import (  # noqa: E402
    PreprocessParams,
    downsample,
    equalise,
    network_shape,
    preprocess,
    robust_range,
    to_levels,
)


def _parse_size(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (ny, nx)."""
    width, height = (int(v) for v in text.lower().split("x"))
    return height, width


def _pin_to_one_core() -> int | None:
    """Restrict this process to one CPU (Linux); return its number, or None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def _time_steps(report: Report, label: str, image: np.ndarray, params: PreprocessParams) -> None:
    """Time each preprocessing step once on ``image`` and record it under ``label``."""
    shape = network_shape(image.shape, params.target_width)
    with timed() as t:
        small = downsample(image, shape)
    report.add(f"{label} step downsample", t.seconds)
    with timed() as t:
        bounds = robust_range(small, params.clip_low, params.clip_high, params.hist_bins)
    report.add(f"{label} step robust_range", t.seconds)
    with timed() as t:
        levels = to_levels(small, *(bounds or (None, None)))
    report.add(f"{label} step to_levels", t.seconds)
    with timed() as t:
        equalise(levels)
    report.add(f"{label} step equalise", t.seconds)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its report."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", nargs="+", default=["4096x4096", "5760x4092", "3838x3710"])
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    args = parser.parse_args(argv)
    cpu = None if args.no_pin else _pin_to_one_core()
    params = PreprocessParams()
    report = Report("preprocess", params={
        "repeats": args.repeats, "sizes_wxh": args.sizes, "NUMBA_NUM_THREADS": os.environ["NUMBA_NUM_THREADS"],
        "pinned_cpu": cpu, "preprocess_params": params.to_dict(), "input": "float32 MRC, N(0,1) noise",
        "read": "warm page cache (file read once before timing)"})

    start = time.perf_counter()
    preprocess(np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32), params)
    report.params["first_call_s_incl_jit_compile_or_cache_load"] = time.perf_counter() - start

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="epick-bench-") as tmp:
        for size in args.sizes:
            ny, nx = _parse_size(size)
            path = write_mrc(Path(tmp) / f"bench_{nx}x{ny}.mrc", rng.standard_normal((ny, nx), dtype=np.float32), 1.0)
            label = f"{nx}x{ny}"
            image = read_micrograph(path).data  # warm-up: page cache
            preprocess(image, params)
            for _ in range(args.repeats):
                with timed() as t:
                    image = read_micrograph(path).data
                report.add(f"{label} read", t.seconds, megabytes=image.nbytes / 2**20)
                with timed() as t:
                    u8, tf = preprocess(image, params)
                report.add(f"{label} preprocess", t.seconds, network_shape=list(u8.shape))
                _time_steps(report, label, image, params)
            path.unlink()
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
