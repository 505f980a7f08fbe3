"""Vesicles and fibers end to end on a CPU: the recipes shared by tests/test_end_to_end_objects.py
and benchmarks/bench_objects.py (simulate -> train narrow -> export ONNX -> pick, and the accuracy).

Every stage is an `epick` command line run in-process; accuracy uses ``epick.runtime.evaluate``:
vesicles - centre AP/AR (centre distance <= VESICLE_MATCH_PX) and the relative radius error
|r_pick - r_true| / r_true of matched vesicles; fibers - picked vs true tube counts, mean distance of
picked points to the true polylines, precision and coverage of the true length within half a fiber width.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

MICROGRAPH = ["--size", "512", "--clean", "--snr", "5"]
NARROW = ["--width", "0.25", "--target-width", "256", "--crop", "128", "--batch-size", "4", "--lr", "2e-3", "--quiet"]
RECIPES = {  # kind -> simulate [train, test], train, pick options
    "vesicle": dict(simulate=[["--n", 16, "--seed", 1, "--pixel-size", 20, "--n-particles", 10],
                              ["--n", 4, "--seed", 101, "--pixel-size", 20, "--n-particles", 10]],
                    train=["--epochs", 25, "--lr-steps", 18, "--repeats", 4], pick=["--threshold", 0.1]),
    "fiber": dict(simulate=[["--n", 8, "--seed", 1, "--n-particles", 3], ["--n", 4, "--seed", 201, "--n-particles", 2]],
                  train=["--epochs", 30, "--lr-steps", 22, "--repeats", 6], pick=[]),
}
VESICLE_MATCH_PX = 20.0  # centre distance for a vesicle match, original px
FIBER_WIDTH_PX = 12.8  # simulated amyloid width at the automatic 7.8 A/px of a 512 px micrograph


def epick(*args) -> None:
    """Run one `epick` command line in-process; raise when it fails."""
    from epick.runtime.cli import main

    if main([str(a) for a in args]) != 0:
        raise RuntimeError(f"epick {' '.join(map(str, args))} failed")


def run_pipeline(work: Path, kind: str, report=None) -> Path:
    """Simulate, train, export and pick one object kind under ``work``; returns the picks folder.
    ``report``: anything with ``add(name, seconds)`` (the benchmark's Report) gets each stage's time."""
    r = RECIPES[kind]
    model, onnx, picks = work / f"{kind}.epick", work / f"{kind}.onnx", work / "picks"
    stages = {
        "simulate": lambda: [epick("simulate", "micrographs", work / part, "--object", kind, *MICROGRAPH, *opts)
                             for part, opts in zip(("train", "test"), r["simulate"])],
        "train": lambda: epick("train", "--object", kind, "--data", work / "train", work / "train", "-o", model,
                               *NARROW, *r["train"]),
        "export": lambda: epick("export", model, "--onnx", onnx),
        "pick": lambda: epick("pick", work / "test", "--model", onnx, "--out", picks, "--object", kind, "--quiet",
                              *r["pick"]),
    }
    for name, stage in stages.items():
        start = time.perf_counter()
        stage()
        if report is not None:
            report.add(f"{kind} {name}", time.perf_counter() - start)
    return picks


def paired(picks_dir: Path, truth_dir: Path) -> list:
    """(picks, truth) Picks per truth STAR of ``truth_dir``; picks from ``<stem>_autopick.star``."""
    from epick.runtime.io.coordinates import read_picks

    return [(read_picks(picks_dir / f"{t.stem}_autopick.star")[0], read_picks(t)[0])
            for t in sorted(truth_dir.glob("*.star"))]


def vesicle_accuracy(pairs: list) -> dict:
    """Centre AP/AR and relative radius errors of matched vesicles."""
    from epick.runtime.evaluate import evaluate, radius_errors

    m = evaluate([p for p, _ in pairs], [t for _, t in pairs], radius=VESICLE_MATCH_PX)
    err = np.concatenate([radius_errors(p, t, radius=VESICLE_MATCH_PX) for p, t in pairs])
    return {"ap": m["ap"], "ar": m["ar"], "matched": int(err.size), "truth": int(sum(len(t) for _, t in pairs)),
            "median_radius_error": float(np.median(err)) if err.size else None,
            "mean_radius_error": float(np.mean(err)) if err.size else None}


def fiber_accuracy(pairs: list) -> dict:
    """Per-micrograph fiber_metrics and their means."""
    from epick.runtime.evaluate import fiber_metrics

    rows = [fiber_metrics(p, t, tolerance=FIBER_WIDTH_PX / 2) for p, t in pairs]
    mean = lambda k: float(np.mean([r[k] for r in rows if r[k] is not None]))  # noqa: E731
    return {"tubes_picked": [r["n_tubes"] for r in rows], "tubes_true": [r["n_true_tubes"] for r in rows],
            "mean_distance": mean("mean_distance"), "precision": mean("precision"), "coverage": mean("coverage")}
