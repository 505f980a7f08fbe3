"""Picking throughput with Dask: one process vs 1 and 2 local Dask workers on the same micrographs.

    python benchmarks/bench_distributed.py [--model M.onnx] [--data DIR] [--n 14] [--repeats 2]

Default inputs: the 14 real EMPIAR-10017 JPEGs (4096 x 4096) and the bundled betagal_model.onnx.
Cases (wall seconds per job of N micrographs, written atomically with `epick pick`'s writers):
  one process                  `epick pick` without --cluster (the baseline)
  dask W workers, warm         a LocalCluster of W worker processes started and warmed up first
                               (each worker has opened its Picker), then `--cluster dask://...`
  dask W workers, cold         `--cluster local:W`: includes starting the cluster and the Pickers
Every case uses the same total number of ONNX Runtime threads (cores / W per worker), so the
figures show what Dask adds or costs, not more CPU. On a machine shared with other work (as the
2-core development machine is) the rates are lower bounds. Writes bench_results/distributed-*.json.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, timed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "empiar10017_betagal"
MODEL = REPO / "runtime" / "demo" / "betagal_model.onnx"


def pick(inputs: list[str], model: Path, out: Path, threads: int, cluster: str | None = None) -> None:
    """One `epick pick` job into a fresh ``out``; raises when it does not pick every input."""
    from epick.runtime.cli import main

    shutil.rmtree(out, ignore_errors=True)
    argv = ["pick", *inputs, "--model", str(model), "--out", str(out), "--quiet", "--threads", str(threads)]
    if cluster:
        argv += ["--cluster", cluster]
    if main(argv) != 0:
        raise SystemExit(f"epick pick failed ({' '.join(argv[:3])} ...)")


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--n", type=int, default=14, help="micrographs per job")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    from epick.runtime.io.micrograph import find_micrographs

    inputs = [str(p) for p in find_micrographs([args.data])][:args.n]
    if not inputs:
        raise SystemExit(f"no micrographs in {args.data}")
    cores = os.cpu_count() or 1
    report = Report("distributed", params={"model": args.model.name, "micrographs": len(inputs),
                                           "data": str(args.data), "repeats": args.repeats,
                                           "workers": args.workers, "cores": cores})
    rates: dict[str, list[float]] = {}

    def record(case: str, seconds: float) -> None:
        load = os.getloadavg()[0]   # other work on the machine: runs on a loaded machine are lower bounds
        report.add(case, seconds, micrographs=len(inputs))
        report.notes.setdefault(case, {}).setdefault("load_average_1min", []).append(round(load, 2))
        rates.setdefault(case, []).append(len(inputs) / seconds)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "picks"
        pick(inputs[:2], args.model, out, cores)                      # numba cache, page cache
        for _ in range(args.repeats):
            with timed() as t:
                pick(inputs, args.model, out, cores)
            record("one process", t.seconds)
        for w in args.workers:
            threads = max(1, cores // w)
            with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=":0",
                              silence_logs=40) as cluster, Client(cluster):
                address = cluster.scheduler_address.replace("tcp://", "dask://")
                pick(inputs[:2 * w], args.model, out, threads, address)   # every worker opens its Picker
                for _ in range(args.repeats):
                    with timed() as t:
                        pick(inputs, args.model, out, threads, address)
                    record(f"dask {w} worker(s), warm", t.seconds)
            with timed() as t:
                pick(inputs, args.model, out, threads, f"local:{w}")
            record(f"dask {w} worker(s), cold (cluster start included)", t.seconds)
    path = report.finish()
    print()
    print(f"{'case':<46}  micrographs/s (median of {args.repeats} where warm)")
    for case, values in rates.items():
        values = sorted(values)
        print(f"{case:<46}  {values[len(values) // 2]:.3f}")
    print(f"({len(inputs)} micrographs per job, {cores} cores, 1-min load average {os.getloadavg()[0]:.1f} at the "
          f"end; on a shared machine these are lower bounds; {path.name})")


if __name__ == "__main__":
    main()
