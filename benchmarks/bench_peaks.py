"""Benchmark of peak extraction and objects: CPU find_peaks, particles, fiber tracing, and the GPU
kernels (GpuPeakFinder, GpuPreprocessor) when a real GPU is present.

Run: ``python benchmarks/bench_peaks.py [--repeats 7] [--threads 1]``. Cases:

- ``find_peaks WxH``: heatmap logits of a 1024-wide network image (256 x 256 cells) and of a
  4096-wide one (1024 x 1024 cells), with N Gaussian blobs (sigma 1.5 cells) on noise: sigmoid
  rule, 3x3 local maximum, threshold 0.3, top-K 2000, offset decoding.
- ``particles``: particles_from_peaks on those peaks (edge margin, min distance).
- ``trace_fibers``: 40 random curved fibers of 50 points each (2000 points), r = 100.
- GPU (only with a real GPU, never the simulator): the same heatmaps through GpuPeakFinder with
  host inputs (upload included) and device inputs, and GpuPreprocessor on a 4096 x 4096 float32
  micrograph (upload included), synchronised.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from _report import Report, timed


def heatmap_case(h: int, w: int, n_blobs: int, seed: int = 0):
    """Logits [h, w] with n Gaussian blobs on noise, offsets [2, h, w] in [0, 1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    heat = np.zeros((h, w), np.float32)
    for cy, cx in zip(rng.uniform(0, h, n_blobs), rng.uniform(0, w, n_blobs)):
        y0, y1, x0, x1 = int(max(cy - 6, 0)), int(min(cy + 7, h)), int(max(cx - 6, 0)), int(min(cx + 7, w))
        heat[y0:y1, x0:x1] = np.maximum(heat[y0:y1, x0:x1], np.exp(
            -((yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2) / (2 * 1.5 ** 2)))
    logits = (-6.0 + 9.0 * heat + rng.normal(0, 0.3, (h, w))).astype(np.float32)
    return logits, rng.random((2, h, w)).astype(np.float32)


def fiber_points(n_fibers: int = 40, per_fiber: int = 50, seed: int = 1):
    """Points sampled every 8 px along random gently curved fibers on a 4096 x 4096 micrograph."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(n_fibers):
        x, y = rng.uniform(500, 3600, 2)
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(per_fiber):
            angle += rng.normal(0, 0.03)
            x, y = x + 8 * np.cos(angle), y + 8 * np.sin(angle)
            xs.append(x)
            ys.append(y)
    return np.array(xs), np.array(ys), rng.random(len(xs))


def bench_cpu(report: Report, repeats: int) -> None:
    from epick.runtime.objects import particles_from_peaks, trace_fibers
    from epick.runtime.peaks import find_peaks
    from epick.runtime.preprocess import Transform

    for cells, blobs in ((256, 700), (1024, 2000)):
        logits, offset = heatmap_case(cells, cells, blobs)
        transform = Transform.between((4096, 4096), (cells * 4, cells * 4))
        peaks = find_peaks(logits, offset)  # warm-up: numba compile / cache load
        for _ in range(repeats):
            with timed() as t:
                peaks = find_peaks(logits, offset)
            report.add(f"cpu find_peaks {cells}x{cells}", t.seconds, peaks=len(peaks))
        particles_from_peaks(peaks, transform, micrograph="bench", min_distance=60.0)  # warm-up
        for _ in range(repeats):
            with timed() as t:
                picks = particles_from_peaks(peaks, transform, micrograph="bench", min_distance=60.0)
            report.add(f"cpu particles ({len(peaks)} peaks, min distance)", t.seconds, picks=len(picks))
    x, y, score = fiber_points()
    trace_fibers(x, y, score, radius=400.0)  # warm-up
    for _ in range(repeats):
        with timed() as t:
            lines = trace_fibers(x, y, score, radius=400.0)
        report.add(f"cpu trace_fibers ({x.size} points)", t.seconds, fibers=len(lines))


def bench_gpu(report: Report, repeats: int) -> None:
    from numba import cuda

    from epick.cuda_kernels import GpuPeakFinder, GpuPreprocessor
    from epick.cuda_kernels._device import SIMULATED

    if SIMULATED or not cuda.is_available():
        print("no real GPU: GPU cases skipped")
        return
    for cells, blobs in ((256, 700), (1024, 2000)):
        logits, offset = heatmap_case(cells, cells, blobs)
        finder = GpuPeakFinder()
        finder.find(logits, offset)  # warm-up: JIT compile, buffers
        for _ in range(repeats):
            with timed() as t:
                peaks = finder.find(logits, offset)
            report.add(f"gpu find_peaks {cells}x{cells} (host inputs)", t.seconds, peaks=len(peaks))
        d_logits, d_offset = cuda.to_device(logits), cuda.to_device(offset)
        for _ in range(repeats):
            with timed() as t:
                peaks = finder.find(d_logits, d_offset)
            report.add(f"gpu find_peaks {cells}x{cells} (device inputs)", t.seconds, peaks=len(peaks))
    image = np.random.default_rng(2).normal(100, 10, (4096, 4096)).astype(np.float32)
    pre = GpuPreprocessor()
    pre.run(image)
    cuda.synchronize()
    for _ in range(repeats):
        with timed() as t:
            pre.run(image)
            pre.stream.synchronize()
        report.add("gpu preprocess 4096x4096 float32 (host input)", t.seconds)
    d_image = cuda.to_device(image)
    for _ in range(repeats):
        with timed() as t:
            pre.run(d_image)
            pre.stream.synchronize()
        report.add("gpu preprocess 4096x4096 float32 (device input)", t.seconds)


def main() -> None:
    """Time the CPU (and GPU, when present) peak paths and write the report."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="NUMBA_NUM_THREADS (the CPU loops are serial)")
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU cases")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    report = Report("peaks", params={"repeats": args.repeats, "threshold": 0.3, "top_k": 2000,
                                     "numba_threads": os.environ["NUMBA_NUM_THREADS"]})
    bench_cpu(report, args.repeats)
    if not args.no_gpu:
        bench_gpu(report, args.repeats)
    report.finish()


if __name__ == "__main__":
    main()
