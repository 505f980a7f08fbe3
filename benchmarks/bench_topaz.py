"""Topaz's general models on the real sets, scored exactly like epick (bench_general.py).

    python benchmarks/bench_topaz.py [--topaz PATH] [--work DIR] [--models resnet16 resnet8]
                                     [--scales betagal=6,8,12 --scales empiar10947=3,4,6]
                                     [--radius-fractions 0.25,0.375,0.5,0.625] [--json OUT.json]

Topaz (topaz-em, GPL-3.0) is not a dependency of epick: install it in a scratch venv beside CPU
torch and point ``--topaz`` (or ``$EPICK_TOPAZ``) at its ``topaz`` command; without it the script
says so and exits 0. Its CLI imports torchvision, whose PyPI wheel fails beside CPU torch; the
stand-in of ``../shared/tools/topaz/tvstub`` (``--tvstub`` / ``$EPICK_TOPAZ_TVSTUB``) lets the
import succeed. See ``../shared/tools/topaz/README.md``.

For every set and downsampling factor s: the 8-bit JPEG/PNG micrographs are written as float32
MRC (Topaz reads MRC), ``topaz preprocess -s s`` (its own downsampling and normalisation), then
per model ``topaz segment`` (the per-pixel log-likelihood map, computed once) and per radius
``topaz extract -m none -r R -x s -t THRESHOLD`` (non-maximum suppression at radius R
downsampled px; coordinates back in original px) with R = fraction * diameter / s. The threshold
(-10 by default, p >= 4.5e-5) is far below any useful one so AP covers all thresholds. Each
(model, s, R) is one method, scored by ``bench_general.score_method`` (box IoU >= 0.5 at the
set's diameter); the table marks each set's best setting by AP. Seconds per micrograph are the
whole Topaz path (preprocess + segment + extract), wall clock and CPU of the child processes, per
micrograph a stage processed. Outputs already in ``--work`` are reused (resume: a stage runs only
on the micrographs it has not done), with the times recorded when they were made.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_general as bg  # noqa: E402

DEFAULT_SCALES = {"betagal": (6, 8, 12), "empiar10947": (3, 4, 6)}  # particles of ~9-20 px after downsampling


def find_topaz(given: str | None) -> str | None:
    """The topaz command: ``given``, else $EPICK_TOPAZ, else ``topaz`` on PATH (None when absent)."""
    cand = given or os.environ.get("EPICK_TOPAZ") or shutil.which("topaz")
    return cand if cand and Path(cand).exists() else None


class Runner:
    """Runs topaz subcommands niced, with the tvstub on PYTHONPATH, and sums their wall / CPU seconds."""

    def __init__(self, topaz: str, tvstub: Path, threads: int, nice: int):
        self.topaz, self.threads, self.nice = topaz, threads, nice
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tvstub),
                                                                              os.environ.get("PYTHONPATH")])))

    def __call__(self, *args: str) -> tuple[float, float]:
        """Run ``topaz ARGS``; return (wall s, CPU s of the children); stop with its output on failure."""
        cmd = ["nice", "-n", str(self.nice), self.topaz, *args]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.perf_counter()
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        wall = time.perf_counter() - w0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _missing(folder: Path, stems: list[str], suffix: str) -> list[str]:
    return [s for s in stems if not (folder / f"{s}{suffix}").exists()]


def write_mrcs(items: list, folder: Path) -> list[Path]:
    """The micrographs as float32 MRC in ``folder`` (what Topaz reads); existing files are kept."""
    from epick.runtime.io.micrograph import read_micrograph, write_mrc

    out = []
    for mic, _ in items:
        path = folder / f"{mic.stem}.mrc"
        if not path.exists():
            write_mrc(path, read_micrograph(mic).data)
        out.append(path)
    return out


class StageTimes:
    """Seconds per micrograph (wall, CPU) of each Topaz stage, kept in ``times.json`` beside its
    outputs: a stage runs only on the micrographs whose output is missing (resume after a stop),
    and a rerun that makes nothing still reports what the outputs cost."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {}

    def run(self, key: str, todo: list, make) -> tuple[float, float] | None:
        """Per-micrograph (wall s, CPU s) of stage ``key``; ``make(todo)`` first when ``todo`` is not empty."""
        if todo:
            wall, cpu = make(todo)
            self.data[key] = [wall / len(todo), cpu / len(todo), len(todo)]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data, indent=1))
        value = self.data.get(key)
        return (value[0], value[1]) if value else None


def run_set(real: bg.RealSet, items: list, run: Runner, work: Path, scales, models, fractions,
            threshold: float, score_only: bool = False) -> list[dict]:
    """Every (s, model, radius) of one set: Topaz's picks scored like epick's (``score_only``: only
    the settings whose Topaz outputs are all there; nothing is run)."""
    stems = [m.stem for m, _ in items]
    base = work / real.name
    raw = base / "raw"
    write_mrcs(items, raw)
    times = StageTimes(base / "times.json")
    rows = []

    def stage(name: str, *args: str, inputs: tuple[Path, str]):
        def make(todo: list[str]):
            todo = todo[::-1]  # last names first: held-out micrographs (the last by name) are done first
            print(f"topaz {name} {' '.join(args[:4])} ... ({real.name}, {len(todo)} micrographs)", flush=True)
            return run(name, *args, *[str(inputs[0] / f"{st}{inputs[1]}") for st in todo])
        return make

    for s in scales:
        pp = base / f"pp_s{s}"
        if score_only and _missing(pp, stems, ".mrc"):
            continue
        pre = times.run(f"preprocess s{s}", _missing(pp, stems, ".mrc"), stage(
            "preprocess", "-s", str(s), "-d", "-1", "-j", str(run.threads), "-o", f"{pp}/", inputs=(raw, ".mrc")))
        for model in models:
            seg = base / f"seg_s{s}_{model}"
            if score_only and _missing(seg, stems, ".tiff"):
                continue
            segt = times.run(f"segment s{s} {model}", _missing(seg, stems, ".tiff"), stage(
                "segment", "-m", model, "-d", "-1", "-j", str(run.threads), "-o", f"{seg}/", inputs=(pp, ".mrc")))
            for frac in fractions:
                r = max(1, int(round(frac * real.diameter_px / s)))
                out = base / f"picks_{len(stems)}_s{s}_{model}_r{r}.txt"
                if not out.exists():
                    times.run(f"extract s{s} {model} r{r}", stems, stage(
                        "extract", "-m", "none", "-r", str(r), "-x", str(s), "-t", str(threshold), "-o", str(out),
                        inputs=(seg, ".tiff")))
                ext = times.run(f"extract s{s} {model} r{r}", [], None)
                row = bg.score_method(f"topaz {model} -s {s} -r {r}", real, items, bg.read_external(out, items),
                                      model=model, scale=s, radius=r, radius_fraction=frac,
                                      extract_threshold=threshold, source=str(out))
                if pre and segt and ext:
                    row.update(median_wall_s=pre[0] + segt[0] + ext[0], median_cpu_s=pre[1] + segt[1] + ext[1],
                               timing="preprocess + segment + extract, seconds per micrograph")
                rows.append(row)
                print(bg.table([row]).splitlines()[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topaz", default=None, help="the topaz command (default $EPICK_TOPAZ, else on PATH)")
    parser.add_argument("--tvstub", type=Path,
                        default=Path(os.environ.get("EPICK_TOPAZ_TVSTUB",
                                                    bg.REPO.parent / "shared" / "tools" / "topaz" / "tvstub")))
    parser.add_argument("--work", type=Path, default=bg.REPO / "bench_results" / "topaz_work",
                        help="scratch folder for MRCs, Topaz outputs and picks (reused when rerun)")
    parser.add_argument("--sets", nargs="+", choices=sorted(bg.REAL_SETS), default=list(bg.REAL_SETS))
    parser.add_argument("--models", nargs="+", default=["resnet16", "resnet8"])
    parser.add_argument("--scales", action="append", default=[], metavar="SET=S1,S2",
                        help=f"downsampling factors per set (default {DEFAULT_SCALES})")
    parser.add_argument("--radius-fractions", default="0.25,0.375,0.5,0.625",
                        help="extraction radius as fractions of the diameter (default 0.25,0.375,0.5,0.625)")
    parser.add_argument("--threshold", type=float, default=-10.0, help="extraction floor (log-likelihood)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--nice", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="first N micrographs of each set")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="leave out micrographs whose stem matches (as bench_general.py)")
    parser.add_argument("--score-only", action="store_true",
                        help="run nothing: score the settings whose Topaz outputs are complete in --work")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    topaz = find_topaz(args.topaz)
    if topaz is None:
        print("Topaz not found: install topaz-em in a scratch venv (../shared/tools/topaz/README.md) and give "
              "--topaz VENV/bin/topaz or set EPICK_TOPAZ; nothing measured")
        return 0
    scales = dict(DEFAULT_SCALES)
    for spec in args.scales:
        name, _, values = spec.partition("=")
        if name not in bg.REAL_SETS or not values:
            parser.error(f"--scales {spec!r}: give SET=S1,S2 with SET one of {', '.join(bg.REAL_SETS)}")
        scales[name] = tuple(int(v) for v in values.split(","))
    fractions = [float(v) for v in args.radius_fractions.split(",")]
    version = subprocess.run([topaz, "--version"], capture_output=True, text=True).stdout.strip() or None
    record = bg.new_record("topaz", {"sets": args.sets, "limit": args.limit, "exclude": args.exclude,
                                     "models": args.models,
                                     "scales": {k: scales[k] for k in args.sets}, "radius_fractions": fractions,
                                     "extract_threshold": args.threshold, "threads": args.threads,
                                     "topaz": topaz, "topaz_version": version,
                                     "matching": "box IoU >= 0.5 at the set's diameter, greedy by score"})
    run = Runner(topaz, args.tvstub, args.threads, args.nice)
    for name in args.sets:
        real = bg.REAL_SETS[name]
        items = bg.load_set(real, limit=args.limit, exclude=tuple(args.exclude))
        rows = run_set(real, items, run, args.work, scales[name], args.models, fractions, args.threshold,
                       args.score_only)
        if not rows:
            continue
        best = max(rows, key=lambda r: r["ap"] or 0.0)
        best["best_setting_for_set"] = True
        record["rows"] += rows
        record.setdefault("best", {})[name] = {k: best[k] for k in ("method", "ap", "ar", "best_f1", "best_threshold")}
    print(bg.table(record["rows"]))
    for name, b in record.get("best", {}).items():
        print(f"best on {name}: {b['method']}  AP {b['ap']:.3f}  AR {b['ar']:.3f}  best F1 {b['best_f1']:.3f}")
    print(f"wrote {bg.write_json(record, args.json, 'topaz')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
