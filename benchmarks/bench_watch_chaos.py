"""Chaos run of `epick pick --watch`: micrographs arrive by chunked, stalled, renamed and rewritten
copies while the watcher is killed with SIGKILL again and again; count what was lost, picked
twice and corrupted.

    python benchmarks/bench_watch_chaos.py [--micrographs 40] [--kills 30] [--seed 0] [--json OUT.json]

- Micrographs: 512 x 512 noise with dark blobs, MRC and TIFF alternately, picked by the bundled
  demo model; the reference picks come from ``Picker.pick`` on the complete files.
- Arrival (random per micrograph): a copy in 2-5 chunks with pauses of 0.05-0.6 s; a copy that
  stalls 1-3 s after its first chunk; a copy to a hidden name then a rename; a half-written file
  rewritten in place with the complete one.
- The watcher (``--poll 0.2``) is SIGKILLed after 0.5-3 s, ``--kills`` times, and restarted at
  once; after the last copy a final run ends with ``--idle-exit``.
- A monitor polls every 20 ms and counts each write of a micrograph's STAR file.
Reported: lost (no picks at the end), duplicated (STAR file written more than once: picked again
after a kill), corrupted (picks differ from the reference, i.e. made from an incomplete file),
failed (listed in failures.txt at the end). Prints a table, writes JSON (machine, versions, all
counts and names) to ``--json`` or ``bench_results/watch_chaos-<UTC stamp>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "runtime" / "demo" / "demo_model.onnx"


def micrograph(seed: int, side: int = 512) -> np.ndarray:
    """Noise with a dozen dark Gaussian blobs (float32)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    image = rng.normal(0.0, 0.5, (side, side))
    for x, y in rng.uniform(40, side - 40, (12, 2)):
        image -= 3.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 72.0)
    return image.astype(np.float32)


def make_sources(folder: Path, n: int) -> list[Path]:
    """``n`` complete micrographs (MRC and TIFF alternately) in ``folder``."""
    import tifffile

    from epick.runtime.io.micrograph import write_mrc

    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        path = folder / (f"mic{i:03d}.mrc" if i % 2 == 0 else f"mic{i:03d}.tif")
        (write_mrc(path, micrograph(i)) if path.suffix == ".mrc" else tifffile.imwrite(path, micrograph(i)))
        paths.append(path)
    return paths


def arrive(source: Path, folder: Path, rng: random.Random) -> str:
    """Copy ``source`` into the watched ``folder`` one of four ways; return the way."""
    data = source.read_bytes()
    target = folder / source.name
    how = rng.choice(["chunks", "stall", "rename", "rewrite"])
    if how == "rename":
        hidden = folder / f".{source.name}.part"
        hidden.write_bytes(data)
        os.replace(hidden, target)
    elif how == "rewrite":
        target.write_bytes(data[: len(data) // 3])
        time.sleep(rng.uniform(0.3, 1.0))
        target.write_bytes(data)
    else:
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 4)))
        with open(target, "wb") as handle:
            for i, (a, b) in enumerate(zip([0] + cuts, cuts + [len(data)])):
                handle.write(data[a:b])
                handle.flush()
                time.sleep(rng.uniform(1.0, 3.0) if how == "stall" and i == 0 else rng.uniform(0.05, 0.6))
    return how


def watcher(folder: Path, out: Path, idle_exit: float | None = None) -> subprocess.Popen:
    """Start `epick pick --watch` as a child process."""
    cmd = [sys.executable, "-m", "epick.runtime.cli", "pick", "--watch", str(folder), "--model", str(MODEL),
           "--out", str(out), "--poll", "0.2", "--quiet", "--threads", "1"]
    if idle_exit is not None:
        cmd += ["--idle-exit", str(idle_exit)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_chaos(n: int, kills: int, seed: int, work: Path) -> dict:
    """One chaos run in ``work``; the counts and names."""
    from epick.runtime.io.coordinates import read_picks
    from epick.runtime.picker import Picker

    rng = random.Random(seed)
    sources = make_sources(work / "src", n)
    with Picker(MODEL, threads=1) as picker:
        reference = {p.name: picker.pick(p) for p in sources}
    folder, out = work / "in", work / "out"
    folder.mkdir()
    writes: dict[str, list[int]] = {}
    done = threading.Event()

    def monitor() -> None:
        while not done.is_set():
            for star in out.glob("*_autopick.star") if out.is_dir() else []:
                try:
                    stamp = star.stat().st_mtime_ns
                except OSError:
                    continue
                seen = writes.setdefault(star.name, [])
                if not seen or seen[-1] != stamp:
                    seen.append(stamp)
            time.sleep(0.02)

    ways: dict[str, str] = {}

    def copier() -> None:
        for source in sources:
            ways[source.name] = arrive(source, folder, rng)

    threads = [threading.Thread(target=monitor, daemon=True), threading.Thread(target=copier, daemon=True)]
    for t in threads:
        t.start()
    killed = 0
    start = time.monotonic()
    while killed < kills or threads[1].is_alive():
        proc = watcher(folder, out)
        time.sleep(rng.uniform(0.5, 3.0))
        if proc.poll() is not None:
            raise RuntimeError(f"the watcher ended by itself: {proc.stderr.read()[-2000:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed += 1
    final = watcher(folder, out, idle_exit=5.0)
    _, err = final.communicate(timeout=600)
    seconds = time.monotonic() - start
    time.sleep(0.1)
    done.set()
    threads[0].join()

    failures = {}
    if (out / "failures.txt").is_file():
        failures = dict(line.split("\t", 1) for line in (out / "failures.txt").read_text().splitlines())
    lost, corrupted = [], []
    for name, want in reference.items():
        star = out / f"{Path(name).stem}_autopick.star"
        if not star.is_file():
            lost.append(name)
            continue
        got = read_picks(star)[0]
        if len(got) != len(want) or not (np.allclose(got.x, want.x, atol=1e-3)
                                         and np.allclose(got.y, want.y, atol=1e-3)):
            corrupted.append(name)
    duplicated = sorted(name for name, stamps in writes.items() if len(stamps) > 1)
    return {"micrographs": n, "kills": killed, "final_exit_code": final.returncode, "seconds": round(seconds, 1),
            "lost": sorted(lost), "duplicated": duplicated, "corrupted": sorted(corrupted),
            "failed": failures, "arrivals": ways, "final_stderr_tail": err[-1500:]}


def main() -> None:
    """Run, print the counts, write the JSON."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--micrographs", type=int, default=40)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="epick-chaos-") as tmp:
        result = run_chaos(args.micrographs, args.kills, args.seed, Path(tmp))
    report = Report("watch_chaos", params=vars(args) | {"json": str(args.json) if args.json else None})
    report.add("chaos run", result["seconds"], **{k: v for k, v in result.items() if k != "seconds"})
    for key in ("lost", "duplicated", "corrupted", "failed"):
        print(f"{key:<11} {len(result[key]):>3}  {', '.join(sorted(result[key]))[:150]}")
    print(f"micrographs {result['micrographs']}, SIGKILLs {result['kills']}, final exit {result['final_exit_code']}")
    report.finish_at(args.json)


if __name__ == "__main__":
    main()
