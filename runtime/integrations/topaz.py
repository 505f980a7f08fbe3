"""``epick-topaz``: answers the Topaz call of RELION 5's AutoPick job with epick's picks.

RELION 5 (src/autopicker.cpp, ``AutoPicker::autoPickTopazOneMicrograph``) preprocesses each
micrograph itself (Fourier-binned by the downscale factor, normalised, written to
``JOBDIR/proc/rankN.mrc``) and then runs its configured Topaz executable (``--fn_topaz_exe``,
the *Topaz executable* field of the GUI) as::

    EXE extract [--filaments [--filaments_length N] [--filaments_plot]] -t THRESHOLD -r RADIUS
        -d DEVICE -x DOWNSCALE [-m MODEL] -o JOBDIR/proc/rankN.txt JOBDIR/proc/rankN.mrc [TOPAZ ARGS]

It reads the table back (``AutoPicker::readTopazCoordinates``): the first line is a header whose
columns containing ``x_coord``, ``y_coord`` and ``score`` are found by name; the coordinates are
already multiplied by ``-x`` (Topaz's ``--up-scale``), so they are in pixels of the full
micrograph; the score becomes ``rlnAutopickFigureOfMerit``.

This command accepts that call (and Topaz's other ``extract`` options, so the same line works by
hand) and writes Topaz's table ``image_name x_coord y_coord score`` with epick's picks:

- ``-m``: the epick model (.onnx, .engine, .pt2 or .epick), set as *Trained topaz model* in the
  GUI; without ``-m``, ``$EPICK_TOPAZ_MODEL``. Topaz's own names (resnet8, resnet16) are refused.
- ``-t``: Topaz's threshold is a log-likelihood ratio (logit); epick's score p is a probability,
  so picks with ``logit(p) >= t`` are kept and ``score`` is written as ``logit(p)``: a threshold on
  rlnAutopickFigureOfMerit means the same for epick as for Topaz.
- ``-r``: Topaz's extraction radius (non-maximum suppression), in pixels of the image given:
  epick's minimum distance between picks. Not taken as the particle size: RELION's default
  downscale factor, max(4, round(2 x diameter / 71)), already shows the particle at most ~40 px
  across, within what a fixed-width model such as the general one learnt.
- ``-x`` / ``-s``: coordinates are multiplied by x / s (not rounded: RELION reads decimals).
- ``-d``: a GPU index (>= 0: the automatic backend) or < 0 for the CPU.
- ``-j`` / ``--num-threads``: CPU threads. ``--batch-size``: micrographs per inference call.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np

from ..cli_args import ArgumentParser, finite_float, help_epilog, nonnegative_int, positive_float, positive_int
from ..errors import EpickError

MODEL_ENV = "EPICK_TOPAZ_MODEL"
TOPAZ_MODEL_NAMES = ("resnet8", "resnet16", "conv31", "conv63", "conv127")
_P_CLIP = 1e-7   # logit of 0 or 1 is infinite: scores are clipped to [1e-7, 1 - 1e-7] first

EXAMPLES = """
epick-topaz extract -t -6 -r 14 -d 0 -x 8 -m /models/betagal.onnx -o AutoPick/job007/proc/rank0.txt AutoPick/job007/proc/rank0.mrc
epick-topaz extract -m model.onnx -r 10 -x 4 -o picks.txt preprocessed/*.mrc
"""
WRITES = """
the file of -o (stdout without it): a tab-separated table with the header image_name x_coord y_coord score
"""


def build_parser() -> ArgumentParser:
    """Topaz's command line: ``extract`` with the options RELION 5 passes (and Topaz's others)."""
    parser = ArgumentParser(prog="epick-topaz", description=__doc__.split("\n\n")[0],
                            epilog=help_epilog(EXAMPLES, WRITES))
    sub = parser.add_subparsers(dest="command", required=True, metavar="extract")
    ex = sub.add_parser("extract", help="pick micrographs and write a Topaz coordinate table",
                        epilog=help_epilog(EXAMPLES, WRITES))
    ex.add_argument("paths", nargs="+", help="micrographs (RELION passes its preprocessed proc/rankN.mrc)")
    ex.add_argument("-m", "--model", default=None, help=f"the epick model (default: ${MODEL_ENV})")
    ex.add_argument("-r", "--radius", type=positive_float, default=None,
                    help="extraction radius: minimum distance between picks, pixels of the given image")
    ex.add_argument("-t", "--threshold", type=finite_float, default=-6.0,
                    help="log-likelihood ratio threshold: keep picks with logit(score) >= T (default -6)")
    ex.add_argument("-d", "--device", type=int, default=0, help="GPU index, or < 0 for the CPU (default 0)")
    ex.add_argument("-x", "--up-scale", type=positive_float, default=1.0, help="multiply coordinates by this")
    ex.add_argument("-s", "--down-scale", type=positive_float, default=1.0, help="divide coordinates by this")
    ex.add_argument("-o", "--output", default=None, help="table to write (default: stdout)")
    ex.add_argument("-j", "--num-threads", type=int, default=0, help="CPU threads (0: all)")
    ex.add_argument("--batch-size", type=positive_int, default=1, help="micrographs per inference call")
    ex.add_argument("--num-workers", type=int, default=0, help="accepted for Topaz compatibility (reader threads)")
    ex.add_argument("--top-k", type=positive_int, default=2000, help="most picks per micrograph (default 2000)")
    ex.add_argument("--format", choices=("coord",), default="coord", help="only Topaz's coordinate table")
    ex.add_argument("-v", "--verbose", action="store_true", help="report each micrograph")
    ex.add_argument("--filaments", action="store_true", help="RELION helical picking: needs a fiber model")
    ex.add_argument("--filaments_length", type=nonnegative_int, default=None,
                    help="RELION helical picking: minimum tube length (downscaled px); tubes shorter are dropped")
    ex.add_argument("--filaments_plot", action="store_true", help="accepted and ignored (RELION's plot option)")
    return parser


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) of probabilities clipped to [1e-7, 1 - 1e-7]: Topaz's score scale."""
    p = np.clip(np.asarray(p, dtype=np.float64), _P_CLIP, 1.0 - _P_CLIP)
    return np.log(p) - np.log1p(-p)


def probability(t: float) -> float:
    """The epick threshold for a Topaz logit threshold (sigmoid), kept inside (0, 1]."""
    return float(min(max(1.0 / (1.0 + math.exp(-t)), _P_CLIP), 1.0))


def _model_path(args) -> str:
    model = args.model or os.environ.get(MODEL_ENV)
    if not model:
        raise EpickError(f"no model: pass -m MODEL (in RELION: 'Trained topaz model') or set ${MODEL_ENV}")
    if model.lower() in TOPAZ_MODEL_NAMES:
        raise EpickError(f"-m {model} names one of Topaz's own models; epick-topaz picks with an epick model "
                         "(.onnx, .engine, .pt2 or .epick): give its path")
    return model


def _drop_short_tubes(picks, length: float):
    """Fiber picks without the tubes shorter than ``length`` pixels (RELION's minimum tube length)."""
    if picks.tube_id is None or not length:
        return picks
    keep = np.zeros(len(picks), dtype=bool)
    for tube in np.unique(picks.tube_id):
        idx = np.flatnonzero(picks.tube_id == tube)
        if np.hypot(np.diff(picks.x[idx]), np.diff(picks.y[idx])).sum() >= length:
            keep[idx] = True
    return picks.subset(keep)


def topaz_name(path: str | Path) -> str:
    """Topaz's image_name: the file name without its extension."""
    return os.path.splitext(os.path.basename(str(path)))[0]


def extract(args) -> int:
    """Pick ``args.paths`` and write the Topaz table; 1 when a micrograph failed (the rest is written)."""
    from ..io.csvfmt import write_topaz
    from ..picker import Picker
    from ..picks import Picks

    backend = "onnxruntime-cpu" if args.device < 0 else "auto"
    picker = Picker(_model_path(args), backend, threshold=probability(args.threshold), top_k=args.top_k,
                    min_distance=args.radius, batch_size=args.batch_size,
                    threads=args.num_threads if args.num_threads > 0 else None)
    if args.filaments and picker.object_type != "fiber":
        print(f"epick-topaz: warning: --filaments with a {picker.object_type} model: picking single particles",
              file=sys.stderr)
    scale = args.up_scale / args.down_scale
    tables, failed = {}, 0
    with picker:
        for result in picker.pick_many(args.paths):
            if not result.ok:
                failed += 1
                print(f"epick-topaz: {result.name}: {result.error}", file=sys.stderr)
                continue
            picks = _drop_short_tubes(result.picks, args.filaments_length or 0)
            tables[str(result.source)] = Picks(topaz_name(result.source), picks.x * scale, picks.y * scale,
                                               score=logit(picks.score_or(1.0)))
            if args.verbose:
                print(f"epick-topaz: {result.name}: {len(picks)} picks", file=sys.stderr)
    ordered = [tables[str(p)] for p in args.paths if str(p) in tables]
    if args.output:
        write_topaz(ordered, args.output)
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="epick-topaz-") as tmp:
            sys.stdout.write(Path(write_topaz(ordered, Path(tmp) / "picks.txt")).read_text())
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``epick-topaz`` console script."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="epick-topaz: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:   # RELION's Topaz training call
        print("epick-topaz: error: only 'extract' is answered; train an epick model with `epick train` "
              "(it reads RELION's ManualPick/AutoPick job folders) and give it as the Topaz model", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        return extract(args)
    except EpickError as exc:
        print(f"epick-topaz: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
