"""`epick filter`: copy a picks folder keeping only picks whose score reaches a threshold.

    epick filter picks/ --threshold 0.42 --out picks_t0.42/

Every coordinate file of the folder is rewritten under the same name in ``--out``, in its own
format (``.box`` files, which hold no score, get the scored picks of their micrograph); RELION's
``autopick.star`` index is rewritten to list the new files; ``epick_filter.json`` records the
source folder and the threshold. The original picks are only read. This is what the "Apply" button
of `epick view` does.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_args import fraction, positive_float

EXAMPLES = """
epick filter picks/ --threshold 0.42 --out picks_t0.42/
epick filter AutoPick/job006/ --threshold 0.5 --out picks_t0.5/ --diameter 108
"""
WRITES = """
OUT/<each coordinate file of PICKS_DIR, same name and format>, OUT/autopick.star, OUT/epick_filter.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `epick filter`."""
    parser.add_argument("picks", type=Path, metavar="PICKS_DIR", help="output folder of `epick pick`")
    parser.add_argument("--threshold", type=fraction, required=True, help="keep picks with score >= this, in [0, 1]")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="new folder for the filtered copy")
    parser.add_argument("--diameter", type=positive_float, metavar="PX",
                        help="box size in original pixels, for .box files when the picks do not carry it")


def command_line(picks: Path, threshold: float, out: Path, diameter: float | None = None) -> str:
    """The `epick filter` command line that makes this filtered copy (shell-quoted)."""
    import shlex

    words = ["epick", "filter", str(picks), "--threshold", f"{threshold:g}", "--out", str(out)]
    if diameter is not None:
        words += ["--diameter", f"{diameter:g}"]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    """Run `epick filter`."""
    from ..pickjob import PickJob

    job = PickJob.load(args.picks, diameter=args.diameter, progress=True)
    done = job.write_filtered(args.threshold, args.out)
    print(f"epick filter: kept {done.picks_kept} of {done.picks_before} picks (score >= {args.threshold:g}) "
          f"on {done.micrographs} micrographs; wrote {len(done.files)} files to {args.out}")
    return 0
