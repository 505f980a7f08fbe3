"""`epick eval`: compare picks with ground truth; print a per-micrograph table and write JSON.

Coordinates are read with ``epick.runtime.io.coordinates.read_picks`` (any supported format) and
paired with the truth by micrograph name (``Picks.key``). ``--diameter`` and ``--radius`` are in
original-micrograph pixels.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli_args import positive_float
from ..picks import Picks

EXAMPLES = """
epick eval --picks picks/ --truth truth/ --diameter 108 --json metrics.json
epick eval --picks AutoPick/job006/ --truth ManualPick/job004/ --radius 30
epick eval --picks picks/particles.cs --truth truth/ --quiet
"""
WRITES = """
the table on stdout, with the best F1 over score thresholds; --json OUT: the metrics (precision recall
f1 ap ar best_f1 best_threshold, per micrograph)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `epick eval`."""
    parser.add_argument("--picks", nargs="+", required=True, metavar="DIR_OR_FILE",
                        help="coordinate files, or folders of them, to evaluate")
    parser.add_argument("--truth", nargs="+", required=True, metavar="DIR_OR_FILE",
                        help="ground-truth coordinate files, or folders of them")
    parser.add_argument("--diameter", type=positive_float, default=None, metavar="PX",
                        help="particle box size in original pixels for the IoU >= 0.5 match "
                             "(default: the diameter written in the truth files)")
    parser.add_argument("--radius", type=positive_float, default=None, metavar="PX",
                        help="match by centre distance <= PX instead of box IoU")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="write the metrics (top level: precision recall f1 ap ar) to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="print only the total line")


def coordinate_files(items: list[str]) -> list[Path]:
    """Files named in ``items``, with folders expanded to their coordinate files (index files skipped)."""
    from ..io.coordinates import find_coordinate_files

    files: list[Path] = []
    for item in items:   # folders: indexes skipped, except a RELION job folder read through its index
        files.extend(find_coordinate_files([item]))
    return files


def read_all(files: list[Path], diameter: float | None = None) -> list[Picks]:
    """Every micrograph's Picks from the given coordinate files."""
    from ..io.coordinates import read_picks

    out: list[Picks] = []
    for path in files:
        out.extend(read_picks(path, diameter=diameter))
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(result: dict) -> str:
    """Plain-text table: one row per micrograph, then a total row (pooled P/R/F1, mean AP)."""
    head = ("micrograph", "truth", "picks", "TP", "FP", "FN", "precision", "recall", "F1", "AP")
    rows = [head]
    for r in result["micrographs"]:
        rows.append((r["micrograph"], str(r["n_truth"]), str(r["n_picks"]), str(r["tp"]), str(r["fp"]),
                     str(r["fn"]), _fmt(r["precision"]), _fmt(r["recall"]), _fmt(r["f1"]), _fmt(r["ap"])))
    n_truth = sum(r["n_truth"] for r in result["micrographs"])
    n_picks = sum(r["n_picks"] for r in result["micrographs"])
    total = (f"total ({result['n_micrographs']})", str(n_truth), str(n_picks), str(result["tp"]),
             str(result["fp"]), str(result["fn"]), _fmt(result["precision"]), _fmt(result["recall"]),
             _fmt(result["f1"]), _fmt(result["ap"]))
    widths = [max(len(row[i]) for row in rows + [total]) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "-" * len(line(head))
    return "\n".join([line(head), rule, *map(line, rows[1:]), rule, line(total)])


def summary_line(result: dict) -> str:
    """One line with the dataset metrics and how objects were matched."""
    how = (f"centre distance <= {result['radius']:g} px" if result["radius"] is not None
           else f"box IoU >= 0.5, diameter {result['diameter']:g} px")
    n = result["n_micrographs"]
    best = (f"best F1 {_fmt(result['best_f1'])} at score >= {result['best_threshold']:.3g}  "
            if result.get("best_f1") is not None else "")
    return (f"AP {_fmt(result['ap'])}  AR {_fmt(result['ar'])}  precision {_fmt(result['precision'])}  "
            f"recall {_fmt(result['recall'])}  F1 {_fmt(result['f1'])}  {best}"
            f"complexity {_fmt(result['complexity'], 2)}  ({n} micrograph{'' if n == 1 else 's'}, {how})")


# picks whose lowest score is at least this were cut at a threshold (the bundled model's default is
# 0.27; `epick pick --threshold 0.01` keeps nearly every peak); the note is for cuts that cost recall
CUT_SCORE = 0.1
CUT_RECALL = 0.95
# the filter hint is shown when the best F1 beats the picks' own F1 by at least this
F1_GAIN = 0.005


def notes(result: dict, picks: list[str]) -> list[str]:
    """What the figures mean for these picks: a cut ranking caps AP and recall; how to keep the best F1."""
    out = []
    low = result.get("lowest_score")
    if low is not None and low >= CUT_SCORE and (result["recall"] or 0.0) < CUT_RECALL:
        out.append(f"note: every pick scores >= {low:.3g}, so AP and AR count only the ranking above that cut "
                   f"(recall stops at {_fmt(result['recall'])}); for AP over every candidate, as the README's "
                   "tables report, keep the lower-scoring picks (epick pick --threshold 0.01)")
    if result.get("best_f1") is not None and result["best_f1"] >= (result["f1"] or 0.0) + F1_GAIN:
        out.append(f"note: `epick filter {' '.join(picks)} --threshold {result['best_threshold']:.3g} --out DIR` "
                   f"keeps the picks of the best F1 ({_fmt(result['best_f1'])})")
    return out


def run(args: argparse.Namespace) -> int:
    """Evaluate the picks against the truth, print the table, write the JSON."""
    from ..evaluate import evaluate
    from ..io.atomic import atomic_write

    truth = read_all(coordinate_files(args.truth), diameter=args.diameter)
    picks = read_all(coordinate_files(args.picks), diameter=args.diameter)
    result = evaluate(picks, truth, args.diameter, radius=args.radius, progress=len(truth) > 50)
    for side, names in (("picks", result["unpaired_picks"]), ("truth", result["unpaired_truth"])):
        if names:
            shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            print(f"epick eval: warning: {len(names)} micrograph(s) of the {side} have no partner "
                  f"and were left out: {shown}", file=sys.stderr)
    if not args.quiet:
        print(format_table(result))
    print(summary_line(result))
    if not args.quiet:
        for line in notes(result, args.picks):
            print(line)
    if args.json is not None:
        with atomic_write(args.json) as handle:
            json.dump(result, handle, indent=2)
            handle.write("\n")
        print(f"wrote {args.json}")
    return 0
