"""Vesicles and fibers end to end: simulate -> train -> export ONNX -> pick -> accuracy against the truth.

Every stage is an `epick` command line run in-process (timed); accuracy uses ``epick.runtime.evaluate``:
vesicles - centre AP/AR (centre distance <= --match px) and the median relative radius error
|r_pick - r_true| / r_true of matched vesicles; fibers - picked vs true tube counts, mean distance of
picked points to the true polylines, precision and coverage of the true length within half a fiber
width. The recipes (CPU-sized: narrow network, 512 px) are shared with the tests: tests/_object_recipes.py.

    python benchmarks/bench_objects.py [--kinds vesicle fiber] [--work DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the recipes shared with the tests
from _object_recipes import (MICROGRAPH, NARROW, RECIPES, fiber_accuracy, paired,  # noqa: E402
                             run_pipeline, vesicle_accuracy)
from _report import Report  # noqa: E402

def main(argv: list[str] | None = None) -> int:
    """Run the chosen kinds, print timings and accuracy, write the JSON report."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args(argv)
    report = Report("objects", params={"recipes": RECIPES, "micrograph": MICROGRAPH, "network": NARROW})
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds:
            work = (args.work or Path(tmp)) / kind
            work.mkdir(parents=True, exist_ok=True)
            picks = run_pipeline(work, kind, report)
            acc = (vesicle_accuracy if kind == "vesicle" else fiber_accuracy)(paired(picks, work / "test"))
            report.params[f"{kind}_accuracy"] = acc
            print(f"{kind}: " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in acc.items()))
        report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
