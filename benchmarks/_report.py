"""Shared benchmark report: machine info, package versions, raw timings and medians -> table + JSON.

Use from a benchmark run as ``python benchmarks/NAME.py``::

    from _report import Report, timed
    report = Report("preprocess", params={"threads": 1})
    for _ in range(5):
        with timed() as t:
            work()
        report.add("preprocess 4096x4096", t.seconds)
    report.finish()          # prints a table, writes bench_results/preprocess-<stamp>.json

Times are wall-clock seconds (time.perf_counter).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench_results"
DEFAULT_PACKAGES = ("numpy", "numba", "mrcfile", "tifffile", "pillow", "onnxruntime", "torch", "epick")


class _Timer:
    """Holds the elapsed seconds of one ``timed()`` block."""

    seconds: float = float("nan")


@contextlib.contextmanager
def timed() -> Iterator[_Timer]:
    """Time a block with perf_counter; read ``.seconds`` after the block."""
    timer = _Timer()
    start = time.perf_counter()
    try:
        yield timer
    finally:
        timer.seconds = time.perf_counter() - start


def _cpu_name() -> str:
    """CPU model from /proc/cpuinfo (Linux), else platform.processor()."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _gpu_name() -> str | None:
    """First GPU name from nvidia-smi, or None when there is none."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    return None


def machine_info() -> dict:
    """Host, CPU, core count, GPU, OS and Python version of the machine running the benchmark."""
    return {"host": platform.node(), "cpu": _cpu_name(), "cores": os.cpu_count(), "gpu": _gpu_name(),
            "os": platform.platform(), "python": sys.version.split()[0]}


def package_versions(names: tuple[str, ...] = DEFAULT_PACKAGES) -> dict:
    """Installed version of each named distribution (None when absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


class Report:
    """Collects raw timings per case; ``finish()`` prints a table and writes one JSON file."""

    def __init__(self, name: str, params: dict | None = None, packages: tuple[str, ...] = DEFAULT_PACKAGES):
        self.name = name
        self.params = dict(params or {})
        self.packages = packages
        self.timings: dict[str, list[float]] = {}
        self.notes: dict[str, dict] = {}

    def add(self, case: str, seconds: float, **note) -> None:
        """Record one raw timing (seconds) for ``case``; keyword notes are stored with the case."""
        self.timings.setdefault(case, []).append(float(seconds))
        if note:
            self.notes.setdefault(case, {}).update(note)

    def summary(self) -> dict:
        """Per case: count, median, min, max (seconds) and every raw timing."""
        return {case: {"n": len(ts), "median_s": statistics.median(ts), "min_s": min(ts),
                       "max_s": max(ts), "raw_s": ts, **self.notes.get(case, {})}
                for case, ts in self.timings.items()}

    def table(self) -> str:
        """A plain-text table of the cases: n, median, min, max in milliseconds."""
        rows = [("case", "n", "median ms", "min ms", "max ms")]
        for case, s in self.summary().items():
            rows.append((case, str(s["n"]), f"{s['median_s'] * 1e3:.2f}", f"{s['min_s'] * 1e3:.2f}",
                         f"{s['max_s'] * 1e3:.2f}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join(lines)

    def finish_at(self, json_path: str | Path | None) -> Path:
        """``finish()``, then move the JSON to ``json_path`` when one is given (e.g. ``--json``)."""
        path = self.finish(Path(json_path).parent if json_path else RESULTS_DIR)
        if json_path:
            path = path.replace(json_path)
            print(f"moved to {json_path}")
        return Path(path)

    def finish(self, out_dir: str | Path = RESULTS_DIR) -> Path:
        """Print the table and write ``<out_dir>/<name>-<UTC stamp>.json`` atomically; return its path."""
        from epick.runtime.io.atomic import atomic_write

        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        record = {"benchmark": self.name, "utc": stamp, "machine": machine_info(),
                  "versions": package_versions(self.packages), "params": self.params,
                  "results": self.summary()}
        path = Path(out_dir) / f"{self.name}-{stamp}.json"
        with atomic_write(path) as handle:
            json.dump(record, handle, indent=2)
        print(f"{self.name} on {record['machine']['cpu']} ({record['machine']['cores']} cores)")
        print(self.table())
        print(f"wrote {path}")
        return path
