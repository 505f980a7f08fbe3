"""Peak memory of `epick pick` on the largest micrograph it accepts (and smaller ones, for the trend).

    python benchmarks/bench_largest_micrograph.py [--sides 4096 8192 16384] [--count N] [--json OUT.json]

For each side S, ``--count`` float32 S x S MRC files of noise are written to a temporary folder
and picked in one run by `epick pick` (the bundled betagal ONNX model, default options: 2 reader threads,
batch 4) in a child process; its peak resident memory is read with ``resource.getrusage``
(``ru_maxrss`` of the finished child, kB on Linux), its wall time with perf_counter. 16384 x 16384
is ``epick.runtime.io.micrograph.MAX_PIXELS``, the largest image ``epick pick`` decodes.
Writes JSON (machine, versions, raw numbers) to ``--json`` or
``bench_results/largest_micrograph-<UTC stamp>.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "runtime" / "demo" / "betagal_model.onnx"


def write_micrograph(path: Path, side: int, seed: int = 0) -> None:
    """A float32 side x side MRC: Gaussian noise, written in row blocks to keep this process small."""
    from epick.runtime.io.micrograph import write_mrc

    rng = np.random.default_rng(seed)
    data = np.empty((side, side), dtype=np.float32)
    for start in range(0, side, 1024):
        rows = data[start:start + 1024]
        rows[:] = rng.standard_normal(rows.shape, dtype=np.float32)
    write_mrc(path, data, pixel_size=1.0)


def pick_peak_rss(mic: Path, out: Path) -> tuple[float, float, int]:
    """(peak RSS in MiB, wall seconds, exit code) of `epick pick MIC` (a file or folder) in a fresh
    child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "epick.runtime.cli", "pick", str(mic), "--model", str(MODEL),
                           "--out", str(out), "--quiet"], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kb <= before:   # ru_maxrss of children is the largest so far: only a larger one shows
        print(f"warning: {mic.name}: peak not above an earlier child's ({before} kB); run sizes ascending")
    if proc.returncode != 0:
        print(proc.stderr[-2000:])
    return peak_kb / 1024.0, seconds, proc.returncode


def main() -> None:
    """Measure each size, print the table, write the JSON."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[4096, 8192, 16384])
    parser.add_argument("--count", type=int, default=1, help="micrographs of each size in one run (default 1; "
                        "with the default 2 reader threads, 2 are decoded at once)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from epick.runtime.io.micrograph import MAX_PIXELS

    report = Report("largest_micrograph", params={"sides": args.sides, "model": MODEL.name,
                                                  "max_pixels": MAX_PIXELS, "options": "defaults",
                                                  "count": args.count})
    with tempfile.TemporaryDirectory(prefix="epick-largest-") as tmp:
        for side in sorted(args.sides):
            folder = Path(tmp) / f"mics{side}"
            folder.mkdir()
            for i in range(args.count):
                write_micrograph(folder / f"mic{i}.mrc", side, seed=i)
            peak, seconds, rc = pick_peak_rss(folder, Path(tmp) / f"out{side}")
            for mic in folder.iterdir():
                mic.unlink()
            report.add(f"{args.count} x {side} x {side} float32 MRC", seconds, peak_rss_mib=round(peak, 1),
                       exit_code=rc, file_mib=round(side * side * 4 / 2**20, 1))
            print(f"{side} x {side}: peak RSS {peak:.0f} MiB, {seconds:.1f} s, exit {rc}")
    report.finish_at(args.json)


if __name__ == "__main__":
    main()
