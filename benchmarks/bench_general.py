"""Score pickers on the real micrographs of the shared data: the general model's yardstick.

    python benchmarks/bench_general.py [--model M.onnx|M.epick ...] [--picks LABEL=PATH ...]
                                       [--sets betagal empiar10947] [--limit N] [--json OUT.json]

Every method is scored with the same code on the same micrographs:
- ``dog``: a plain difference-of-Gaussians blob detector that is told the particle diameter (the
  baseline every model must beat; ``--no-dog`` leaves it out; ``--dog-factors`` also tries blob
  sizes other than the labelled diameter, as ``dog xF``);
- each ``--model`` (ONNX, TensorRT, .pt2 or .epick) through ``epick.runtime.Picker`` with its own
  preprocessing, a score floor of ``--floor`` (default 0: every heatmap peak, up to top-K 2000) so
  the precision-recall curve covers all thresholds, and the set's diameter given as ``diameter``;
- each ``--picks LABEL=PATH``: picks made elsewhere (e.g. Topaz's ``image_name x_coord y_coord
  score`` table, any format ``epick`` reads), paired with the micrographs by name.

Real sets (``$EPICK_SHARED_DATA`` or ``../shared/data`` beside the checkout):
``betagal`` = EMPIAR-10017, 14 JPEG micrographs of 4096 x 4096 px, diameter 108 px;
``empiar10947`` = 10 PNG micrographs of 1024 x 1024 px, diameter 60 px.

Reported per method and set (``epick.runtime.evaluate``: box IoU >= 0.5 at the set's diameter,
one-to-one, greedy by score):
- ``ap``: mean over micrographs of the area under the interpolated precision-recall curve;
- ``best_f1`` and ``best_threshold``: F1 of TP/FP/FN pooled over the set's micrographs at the
  score threshold that maximises it (picks with score >= threshold are kept);
- ``ar``: mean per-micrograph recall at that threshold; ``recall_all``: at the score floor;
- ``f1_default``: pooled F1 at the model's own default threshold (models only);
- ``wall_s`` / ``cpu_s`` per micrograph: read + preprocess + network + peaks (wall clock, and CPU
  seconds of this process over all its threads), with medians; ``--threads`` sets the backend's.
Writes JSON (machine, versions, parameters, every per-micrograph number) to ``--json`` or
``bench_results/general-<UTC stamp>.json``, and prints a table.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import RESULTS_DIR, machine_info, package_versions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RealSet:
    """One real data set of the shared data: folder, micrograph pattern, particle diameter (px)."""

    name: str
    folder: str
    pattern: str
    diameter_px: float
    description: str


REAL_SETS = {
    "betagal": RealSet("betagal", "empiar10017_betagal", "*.jpg", 108.0,
                       "EMPIAR-10017 beta-galactosidase, 14 denoised 8-bit JPEGs, 4096 x 4096"),
    "empiar10947": RealSet("empiar10947", "empiar10947", "*.png", 60.0,
                           "EMPIAR-10947, 10 binned contrast-stretched 8-bit PNGs, 1024 x 1024"),
}


def shared_data_dir() -> Path:
    """The shared data folder: $EPICK_SHARED_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("EPICK_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def load_set(real: RealSet, root: Path | None = None, limit: int | None = None,
             exclude: tuple[str, ...] = ()) -> list[tuple[Path, object]]:
    """(micrograph path, truth Picks) of a real set, sorted by name; ``exclude`` = fnmatch patterns on stems."""
    from epick.runtime.io.coordinates import read_picks
    from epick.runtime.io.micrograph import read_micrograph_shape

    folder = (root or shared_data_dir()) / real.folder
    mics = sorted(p for p in folder.glob(real.pattern)
                  if not any(fnmatch.fnmatch(p.stem, pat) for pat in exclude))
    if not mics:
        raise SystemExit(f"no {real.pattern} micrographs in {folder}; set EPICK_SHARED_DATA to the shared data folder")
    mics = mics[:limit] if limit else mics
    out = []
    for mic in mics:
        [truth] = read_picks(mic.with_suffix(".star"), shape=read_micrograph_shape(mic), diameter=real.diameter_px)
        truth.micrograph = mic.name
        out.append((mic, truth))
    return out


# ---------------------------------------------------------------- baseline: difference of Gaussians
DOG_TARGET_DIAMETER_PX = 20.0  # the micrograph is binned so the particle spans about this many px


def dog_picks(image: np.ndarray, diameter_px: float, name: str = "array", top_k: int = 2000):
    """Dark blobs of ``diameter_px`` (original px) by a difference of Gaussians; Picks with z-scores.

    The image is binned by f = round(d / 20) (area average), filtered by G(s2) - G(s1) with
    s1 = r / (sqrt(2) * 1.26), s2 = 1.6 s1 (r = binned radius; the geometric mean of the two is the
    scale r / sqrt(2) at which a disk of radius r responds most), and local maxima at least r / 2
    apart are kept; the score is the response over its robust (MAD) standard deviation.
    Protein is dark in underfocused cryo-EM images, so dark blobs respond positively.
    """
    from scipy import ndimage

    from epick.runtime.picks import Picks
    from epick.runtime.preprocess import downsample

    data = np.nan_to_num(np.asarray(image, dtype=np.float32))
    f = max(1, int(round(diameter_px / DOG_TARGET_DIAMETER_PX)))
    small = downsample(data, (data.shape[0] // f, data.shape[1] // f)) if f > 1 else data
    r = diameter_px / f / 2.0
    s1 = r / (np.sqrt(2.0) * 1.26)
    resp = ndimage.gaussian_filter(small, 1.6 * s1) - ndimage.gaussian_filter(small, s1)
    mad = float(np.median(np.abs(resp - np.median(resp)))) * 1.4826
    resp = (resp - float(np.median(resp))) / max(mad, 1e-12)
    size = 2 * max(1, int(r / 2)) + 1
    peak = (resp == ndimage.maximum_filter(resp, size=size, mode="nearest")) & (resp > 0)
    ys, xs = np.nonzero(peak)
    score = resp[ys, xs]
    order = np.argsort(-score, kind="stable")[:top_k]
    # bin centre -> original pixel centre (area averaging of f x f blocks)
    return Picks(name, (xs[order] + 0.5) * f - 0.5, (ys[order] + 0.5) * f - 0.5, score[order].astype(np.float64),
                 shape=tuple(data.shape), diameter=float(diameter_px))


# ---------------------------------------------------------------- scoring
def pr_sweep(pick_list: list, truth_list: list, diameter: float) -> dict:
    """Score picks against truth over all thresholds (see the module docstring); per-micrograph rows too."""
    from epick.runtime.evaluate import average_precision, best_f1, match

    scores, hits, owners, rows = [], [], [], []
    n_truth = np.array([len(t) for t in truth_list])
    for k, (picks, truth) in enumerate(zip(pick_list, truth_list)):
        m = match(picks, truth, diameter)
        tp = m.pick_to_truth >= 0
        rows.append({"micrograph": truth.micrograph, "n_truth": len(truth), "n_picks": len(picks),
                     "ap": average_precision(picks.score_or(1.0), tp, len(truth)),
                     "recall_all": float(tp.sum() / len(truth)) if len(truth) else None})
        scores.append(picks.score_or(1.0))
        hits.append(tp)
        owners.append(np.full(len(picks), k))
    total = int(n_truth.sum())
    best = best_f1(scores, hits, total)   # one threshold per distinct score, TP/FP/FN pooled
    scores = np.concatenate(scores) if scores else np.zeros(0)
    hits = np.concatenate(hits) if hits else np.zeros(0, bool)
    owners = np.concatenate(owners) if owners else np.zeros(0, int)
    out = {"n_micrographs": len(rows), "n_truth": total, "n_picks": int(scores.size),
           "ap": _mean([r["ap"] for r in rows]), "recall_all": _mean([r["recall_all"] for r in rows]),
           "best_f1": 0.0, "best_threshold": None, "precision_at_best": None, "recall_at_best": None,
           "ar": 0.0, "micrographs": rows}
    if best["best_f1"] is not None:
        thr = best["best_threshold"]
        out.update(best)
        kept = scores >= thr
        per = [float(np.count_nonzero(hits & kept & (owners == k)) / n) for k, n in enumerate(n_truth) if n]
        out["ar"] = _mean(per)
        for k, row in enumerate(rows):
            row["tp_at_best"] = int(np.count_nonzero(hits & kept & (owners == k)))
            row["picks_at_best"] = int(np.count_nonzero(kept & (owners == k)))
    return out


def f1_at(pick_list: list, truth_list: list, diameter: float, threshold: float) -> float:
    """Pooled F1 of the picks with score >= ``threshold``."""
    from epick.runtime.evaluate import match

    tp = fp = fn = 0
    for picks, truth in zip(pick_list, truth_list):
        m = match(picks.subset(picks.score_or(1.0) >= threshold), truth, diameter)
        tp, fp, fn = tp + m.tp, fp + m.fp, fn + m.fn
    return 2 * tp / max(2 * tp + fp + fn, 1)


def _mean(values) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


# ---------------------------------------------------------------- methods
def run_dog(items: list, diameter: float) -> tuple[list, list, list]:
    """DoG picks per micrograph with (wall s, CPU s) per micrograph, reading included."""
    from epick.runtime.io.micrograph import read_micrograph

    picks, wall, cpu = [], [], []
    for mic, _ in items:
        w0, c0 = time.perf_counter(), time.process_time()
        picks.append(dog_picks(read_micrograph(mic).data, diameter, mic.name))
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return picks, wall, cpu


def run_model(model: Path, items: list, diameter: float | None, floor: float, threads: int | None):
    """Picks of ``model`` through the runtime's Picker, one micrograph at a time (timed), the threshold
    it picks at by default (its own, else the Picker's), and the backend's name."""
    from epick.runtime import Picker
    from epick.runtime.picker import DEFAULT_THRESHOLD

    picks, wall, cpu = [], [], []
    with Picker(str(model), threshold=floor, diameter=diameter, threads=threads) as picker:
        meta_threshold = picker.metadata.threshold
        meta_threshold = DEFAULT_THRESHOLD if meta_threshold is None else meta_threshold
        picker.pick(items[0][0])  # warm-up (JIT compilation, session start) is not timed
        for mic, _ in items:
            w0, c0 = time.perf_counter(), time.process_time()
            picks.append(picker.pick(mic))
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        backend = picker.backend_name
    return picks, wall, cpu, meta_threshold, backend


def read_external(path: Path, items: list) -> list:
    """Picks read from ``path`` (a file or folder of any epick-readable format), one per micrograph of ``items``."""
    from epick.runtime.io.coordinates import read_picks
    from epick.runtime.picks import Picks, micrograph_key

    found = {}
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    for f in files:
        for p in read_picks(f):
            found[p.key] = p
    out = []
    for mic, truth in items:
        p = found.get(micrograph_key(mic.name))
        out.append(Picks.empty(mic.name) if p is None else p)
    return out


def score_method(label: str, real: RealSet, items: list, picks: list, wall=None, cpu=None, **extra) -> dict:
    """One row of the report: scores over thresholds plus timings."""
    truth = [t for _, t in items]
    row = {"method": label, "set": real.name, **extra, **pr_sweep(picks, truth, real.diameter_px)}
    if extra.get("default_threshold") is not None:
        row["f1_default"] = f1_at(picks, truth, real.diameter_px, float(extra["default_threshold"]))
    if wall:
        row.update(wall_s=wall, cpu_s=cpu, median_wall_s=statistics.median(wall), median_cpu_s=statistics.median(cpu))
    return row


def table(rows: list[dict]) -> str:
    """Plain-text table: method, set, AP, AR, best F1, its threshold, F1 at default, s/micrograph."""
    def fmt(v, spec=".3f"):
        return "-" if v is None else format(v, spec)

    head = ("method", "set", "AP", "AR", "best F1", "at thr", "F1 dflt", "wall s/mic", "cpu s/mic")
    lines = [head]
    for r in rows:
        lines.append((r["method"], r["set"], fmt(r["ap"]), fmt(r["ar"]), fmt(r["best_f1"]),
                      fmt(r["best_threshold"], ".3g"), fmt(r.get("f1_default")),
                      fmt(r.get("median_wall_s"), ".2f"), fmt(r.get("median_cpu_s"), ".2f")))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text)


def write_json(record: dict, path: Path | None, name: str = "general") -> Path:
    """Write ``record`` atomically to ``path`` or ``bench_results/<name>-<stamp>.json``."""
    from epick.runtime.io.atomic import atomic_write

    path = path or RESULTS_DIR / f"{name}-{record['utc']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        json.dump(record, handle, indent=1)
        handle.write("\n")
    return path


def new_record(benchmark: str, params: dict) -> dict:
    """The JSON skeleton every real-data benchmark writes: machine, versions, parameters, rows."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return {"benchmark": benchmark, "utc": stamp, "machine": machine_info(), "versions": package_versions(),
            "params": params, "sets": {k: v.__dict__ for k, v in REAL_SETS.items() if k in params.get("sets", ())},
            "rows": []}


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", default=[], help="model to score (repeatable)")
    parser.add_argument("--picks", action="append", default=[], metavar="LABEL=PATH",
                        help="picks made elsewhere, scored as method LABEL (repeatable)")
    parser.add_argument("--sets", nargs="+", choices=sorted(REAL_SETS), default=list(REAL_SETS))
    parser.add_argument("--limit", type=int, default=None, help="first N micrographs of each set")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="leave out micrographs whose stem matches (e.g. those a model trained on)")
    parser.add_argument("--floor", type=float, default=0.0, help="score floor given to the Picker (default 0)")
    parser.add_argument("--no-diameter", action="store_true",
                        help="do not give models the set's diameter (the 'micrographs only' condition)")
    parser.add_argument("--no-dog", action="store_true", help="leave out the DoG baseline")
    parser.add_argument("--dog-factors", type=float, nargs="+", default=[1.0],
                        help="DoG blob diameters as multiples of the set's diameter (default 1; e.g. 1 0.67 0.42 "
                             "for its best setting, as Topaz gets)")
    parser.add_argument("--threads", type=int, default=2, help="backend threads (default 2)")
    parser.add_argument("--json", type=Path, default=None, help="JSON path (default bench_results/general-STAMP.json)")
    args = parser.parse_args(argv)

    external = []
    for spec in args.picks:
        label, sep, path = spec.partition("=")
        if not sep or not Path(path).exists():
            parser.error(f"--picks {spec!r}: give LABEL=PATH with an existing file or folder")
        external.append((label, Path(path)))
    record = new_record("general", {
        "sets": args.sets, "limit": args.limit, "exclude": args.exclude, "floor": args.floor,
        "give_diameter": not args.no_diameter, "threads": args.threads,
        "models": [str(m) for m in args.model], "picks": [f"{lab}={p}" for lab, p in external],
        "matching": "box IoU >= 0.5 at the set's diameter, greedy by score",
        "dog_target_diameter_px": DOG_TARGET_DIAMETER_PX, "dog_factors": args.dog_factors})
    rows = record["rows"]
    for name in args.sets:
        real = REAL_SETS[name]
        items = load_set(real, limit=args.limit, exclude=tuple(args.exclude))
        print(f"{name}: {len(items)} micrographs, {sum(len(t) for _, t in items)} true particles, "
              f"diameter {real.diameter_px:g} px", flush=True)
        for factor in ([] if args.no_dog else args.dog_factors):
            picks, wall, cpu = run_dog(items, factor * real.diameter_px)
            rows.append(score_method("dog" if factor == 1 else f"dog x{factor:g}", real, items, picks, wall, cpu,
                                     dog_diameter_px=factor * real.diameter_px))
        for model in args.model:
            picks, wall, cpu, thr, backend = run_model(model, items, None if args.no_diameter else real.diameter_px,
                                                       args.floor, args.threads)
            rows.append(score_method(model.name, real, items, picks, wall, cpu, default_threshold=thr,
                                     backend=backend, model=str(model)))
        for label, path in external:
            rows.append(score_method(label, real, items, read_external(path, items), source=str(path)))
    print(table(rows))
    print(f"wrote {write_json(record, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
