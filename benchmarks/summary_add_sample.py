"""What every "add my sample" run measured, side by side: the rows of ``bench_add_sample.py``'s JSON
files (several files, or one file holding several runs under ``runs``) as one table, and the spread
of forgetting over the runs of each direction.

Forgetting is the AP on the old real sets' held-out micrographs before minus after (positive: lost);
it is recomputed here from each file's rows, so the table shows exactly what the JSON holds.
The spread is per direction and continual method: the exemplars' share of an epoch
(``exemplar_passes`` in the JSON: 0 = as many exemplar crops as new ones, the default since session
13; absent = one pass, before), or a ``scratch_change`` (a patched method, not a shipped one).
Nothing is trained or scored; this reads results.

    python benchmarks/summary_add_sample.py benchmarks/results/general_add_sample*.json
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

MODES = ("continual", "finetune")


def runs_of(path: Path) -> list[tuple[str, dict]]:
    """(label, report) of each add-sample run a JSON file holds (one report, or several under ``runs``)."""
    doc = json.loads(path.read_text())
    reports = ([(f"{path.stem}:{k}", v) for k, v in doc["runs"].items()] if "runs" in doc
               else [(path.stem, doc)])
    return [(label, r) for label, r in reports
            if r.get("benchmark") == "add_sample" and "rows" in r.get("results", {}).get("score", {})]


def method(params: dict) -> str:
    """The continual method a run measured: its exemplar share, or its scratch change."""
    if "exemplar_passes" in params:
        passes = params["exemplar_passes"]
        return "equal exemplar share" if passes == 0 else f"{passes} exemplar passes"
    if params.get("scratch_change"):   # its first clause names it
        return "scratch: " + re.split(r"[:;(]", params["scratch_change"])[0].strip()[:80]
    return "one exemplar pass"


def summarise(label: str, report: dict) -> dict:
    """One table row: the new set, the general model, seed, method, and AP / forgetting of each mode run."""
    params, rows = report["params"], report["results"]["score"]["rows"]
    before_old = rows["before"]["old_real"]["ap"]
    row = {"run": label, "new": params["new"], "model": str(params["model"]), "seed": params.get("seed") or 0,
           "method": method(params), "before_new": rows["before"]["new"]["ap"], "before_old": before_old}
    for mode in ("joint",) + MODES:
        if mode in rows:
            row[f"{mode}_new"] = rows[mode]["new"]["ap"]
            row[f"{mode}_forgetting"] = before_old - rows[mode]["old_real"]["ap"]
    return row


def group_of(row: dict, mode: str) -> str:
    """The method a mode's result measured: continual learning's exemplar share or scratch change;
    fine-tuning uses no exemplars, so its runs differ only by a scratch change."""
    if mode == "continual" or row["method"].startswith("scratch:"):
        return row["method"]
    return "no exemplars"


def spread(rows: list[dict]) -> dict:
    """Per new set, mode and method (``group_of``): n, mean, min and max of forgetting, and of AP on the new set."""
    groups: dict[str, list[dict]] = {}
    for mode in MODES:
        for r in sorted((r for r in rows if f"{mode}_forgetting" in r), key=lambda r: (r["new"], group_of(r, mode))):
            groups.setdefault(f"{r['new']} {mode}, {group_of(r, mode)}", []).append(r)
    out: dict = {}
    for key in sorted(groups):
        mode = key.split(",")[0].split()[-1]
        runs = groups[key]
        values = [r[f"{mode}_forgetting"] for r in runs]
        out[key] = {"n": len(values), "mean": statistics.fmean(values), "min": min(values), "max": max(values),
                    "new_mean": statistics.fmean(r[f"{mode}_new"] for r in runs),
                    "models": len({r["model"] for r in runs})}
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}" if value < 0 else f"{value:.3f}"


def main(argv=None) -> int:
    """Print the table of runs and the spread of forgetting."""
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="bench_add_sample JSON files")
    args = ap.parse_args(argv)
    rows = [summarise(label, r) for path in args.files for label, r in runs_of(path)]
    if not rows:
        print("no add-sample runs in these files", file=sys.stderr)
        return 1
    models = {m: i for i, m in enumerate(dict.fromkeys(r["model"] for r in rows), 1)}
    print("| run | new | model | seed | continual method | before new / old | continual new | forgetting "
          "| fine-tuned new | forgetting |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['run']} | {r['new']} | M{models[r['model']]} | {r['seed']} | {r['method']} "
              f"| {_fmt(r['before_new'])} / {_fmt(r['before_old'])} | {_fmt(r.get('continual_new'))} | {_fmt(r.get('continual_forgetting'))} "
              f"| {_fmt(r.get('finetune_new'))} | {_fmt(r.get('finetune_forgetting'))} |")
    print()
    for key, s in spread(rows).items():
        print(f"{key}: forgetting mean {_fmt(s['mean'])} (min {_fmt(s['min'])}, max {_fmt(s['max'])}), "
              f"AP new mean {_fmt(s['new_mean'])}, over {s['n']} runs of {s['models']} general models")
    print("\nmodels: " + "; ".join(f"M{i} {m}" for m, i in models.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
