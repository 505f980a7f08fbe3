"""``epick-relion``: epick as a RELION 4/5 External job that picks particles.

RELION runs an External job from the project directory as (src/pipeline_jobs.cpp,
``getCommandsExternalJob``)::

    EXE --o External/job012/ --in_mics CtfFind/job003/micrographs_ctf.star \\
        [--PARAM1 VALUE1 ... --PARAM10 VALUE10] --j NR_THREADS [OTHER ARGS]

and then reads, in the ``--o`` folder (src/pipeliner.cpp, src/pipeline_control.h):

- ``RELION_OUTPUT_NODES.star``: table ``data_output_nodes`` with ``_rlnPipeLineNodeName`` and
  ``_rlnPipeLineNodeTypeLabel``; here one node, ``JOBDIR/autopick.star`` of type
  ``MicrographCoordsGroup.star.relion.autopick`` (what RELION's own AutoPick job declares), so
  Extract, ManualPick (to look at the picks) and Topaz training take it as input.
- ``RELION_JOB_EXIT_SUCCESS`` or ``RELION_JOB_EXIT_FAILURE``: the job's state in the GUI.

What is written, as RELION's autopicker does (src/autopicker.cpp): per micrograph
``JOBDIR/<path after the micrograph's 'jobNNN/' folder, without extension>_autopick.star``
(e.g. ``External/job012/Movies/mic_0001_autopick.star``), and ``JOBDIR/autopick.star`` (table
``data_coordinate_files``: ``_rlnMicrographName`` exactly as in the input STAR,
``_rlnMicrographCoordinates`` relative to the project directory). Micrographs whose coordinate
file exists already are not picked again (RELION's "Continue" and Schemes re-run the same job as
new micrographs arrive). Micrographs that cannot be read are listed in ``JOBDIR/failures.txt``;
the job fails only when none was picked. Run it from the RELION project directory.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..cli_args import ArgumentParser, fraction, help_epilog, positive_float, positive_int
from ..commands.pick import PickOutputs
from ..errors import EpickError

SUCCESS, FAILURE = "RELION_JOB_EXIT_SUCCESS", "RELION_JOB_EXIT_FAILURE"
OUTPUT_NODES = "RELION_OUTPUT_NODES.star"
COORDS_NODE_TYPE = "MicrographCoordsGroup.star.relion.autopick"   # RELION 4/5 LABEL_AUTOPICK_COORDS
PICK_NAME = "autopick"

EXAMPLES = """
epick-relion --o External/job012/ --in_mics CtfFind/job003/micrographs_ctf.star --j 4 --model /models/betagal.onnx
epick-relion --o External/job013/ --in_mics Select/job010/micrographs.star --j 8 --model m.onnx --threshold 0.4 --diameter 180
"""
WRITES = """
JOBDIR/<micrograph path after jobNNN/>_autopick.star per micrograph, JOBDIR/autopick.star,
JOBDIR/RELION_OUTPUT_NODES.star, JOBDIR/RELION_JOB_EXIT_SUCCESS or RELION_JOB_EXIT_FAILURE,
JOBDIR/failures.txt (micrographs that could not be read), JOBDIR/pick_summary.json
"""


def build_parser() -> ArgumentParser:
    """The command line RELION's External job passes (user parameters as ``--name value``)."""
    parser = ArgumentParser(prog="epick-relion", description=__doc__.split("\n\n")[0],
                            epilog=help_epilog(EXAMPLES, WRITES))
    parser.add_argument("--o", required=True, metavar="JOBDIR", help="the job's output folder (RELION sets it)")
    parser.add_argument("--in_mics", required=True, metavar="STAR",
                        help="micrograph list: micrographs_ctf.star, corrected_micrographs.star or a selection")
    parser.add_argument("--j", type=positive_int, default=1, metavar="N", help="CPU threads (RELION's 'Number of threads')")
    # RELION appends '--pipeline_control JOBDIR' to every command containing 'relion_' (prepareFinalCommand),
    # which an install path like /opt/relion_tools/bin/epick-relion does: accepted, the markers go to --o
    parser.add_argument("--pipeline_control", metavar="JOBDIR", help=argparse.SUPPRESS)
    job = parser.add_argument_group("parameters (set them on the External job's Params tab: label, value)")
    job.add_argument("--model", required=True, help="exported model (.onnx, .engine, .pt2) or a .epick model file")
    job.add_argument("--threshold", type=fraction, help="score threshold in (0, 1] (default: the model's, else 0.3)")
    job.add_argument("--diameter", type=positive_float, metavar="PX",
                     help="particle diameter in micrograph pixels (default: the model's)")
    job.add_argument("--min_distance", "--min-distance", dest="min_distance", type=positive_float, metavar="PX",
                     help="minimum distance between picks in micrograph pixels")
    job.add_argument("--top_k", "--top-k", dest="top_k", type=positive_int, default=2000,
                     help="most picks per micrograph (default 2000)")
    job.add_argument("--batch", type=positive_int, default=4, help="micrographs per inference call (default 4)")
    job.add_argument("--backend", default="auto", help="inference backend (default auto: the GPU when there is one)")
    job.add_argument("--object", choices=("particle", "vesicle", "fiber"), help="refuse a model for another object type")
    return parser


def coordinate_path(jobdir: str, micrograph: str) -> str:
    """RELION's coordinate file of ``micrograph`` in ``jobdir`` (AutoPicker::getOutputRootName):
    the part of the path after its first ``jobNNN/`` folder (all of it when there is none),
    without extension, + ``_autopick.star``; relative to the project directory like ``jobdir``."""
    parts = Path(micrograph).parts
    post = parts
    for i, part in enumerate(parts[:-1]):
        if len(part) >= 6 and part.startswith("job") and part[3:6].isdigit():
            post = parts[i + 1:]
            break
    rest = str(Path(*post).with_suffix(""))
    return f"{jobdir.rstrip('/')}/{rest}_{PICK_NAME}.star"


class RelionOutputs(PickOutputs):
    """epick pick's writers with RELION's file layout and micrograph names."""

    def __init__(self, jobdir: str, names: dict[str, str], pixel_sizes: dict[str, float | None], **kwargs):
        super().__init__(Path(jobdir), ["star"], **kwargs)
        self.jobdir = jobdir
        self.names = names               # micrograph file name -> rlnMicrographName as written in the input
        self.pixel_sizes = pixel_sizes   # micrograph file name -> A/px from the optics table

    def paths_for(self, name: str) -> dict[str, Path]:
        """The coordinate file of micrograph file ``name``, RELION's layout."""
        return {"star": Path(coordinate_path(self.jobdir, self.names.get(name, name)))}

    def _index(self, micrograph: str, name: str) -> None:
        self.owners.setdefault(Path(name).stem, name)
        self.index[name] = (self.names.get(name, micrograph), coordinate_path(self.jobdir, self.names.get(name, name)))

    def write(self, result) -> bool:
        """Write one result; the optics table's pixel size goes into the STAR when the file had none."""
        if result.ok and result.picks.pixel_size is None:
            result.picks.pixel_size = self.pixel_sizes.get(result.name)
        return super().write(result)


def write_output_nodes(jobdir: Path, nodes: list[tuple[str, str]]) -> Path:
    """``RELION_OUTPUT_NODES.star``: the nodes (name, type label) this job made."""
    from ..io.atomic import atomic_write
    from ..io.star import star_string

    lines = ["", "# version 30001", "", "data_output_nodes", "", "loop_",
             "_rlnPipeLineNodeName #1 ", "_rlnPipeLineNodeTypeLabel #2 "]
    lines += [f"{star_string(name)} {label}" for name, label in nodes]
    path = jobdir / OUTPUT_NODES
    with atomic_write(path) as handle:
        handle.write("\n".join(lines) + "\n\n")
    return path


def mark_exit(jobdir: Path, ok: bool, reason: str = "") -> None:
    """Leave RELION's exit marker (and remove the other one)."""
    jobdir.mkdir(parents=True, exist_ok=True)
    (jobdir / (FAILURE if ok else SUCCESS)).unlink(missing_ok=True)
    (jobdir / (SUCCESS if ok else FAILURE)).write_text("" if ok else reason + "\n")


def run_job(args) -> int:
    """Pick every micrograph of ``--in_mics`` into the job folder; returns the exit code."""
    from ..io.star import read_micrograph_star
    from ..picker import Picker

    jobdir = Path(args.o)
    entries = read_micrograph_star(args.in_mics)
    if not entries:
        raise EpickError(f"{args.in_mics}: lists no micrographs")
    names, sizes = {}, {}
    for name, pixel in entries:
        key = Path(name).name
        if key in names and names[key] != name:
            raise EpickError(f"{args.in_mics}: two micrographs are named {key} ({names[key]} and {name}); "
                             "RELION coordinate files need distinct micrograph names")
        names[key], sizes[key] = name, pixel
    picker = Picker(args.model, args.backend, object_type=args.object, threshold=args.threshold,
                    top_k=args.top_k, min_distance=args.min_distance, diameter=args.diameter,
                    batch_size=args.batch, threads=args.j)
    outputs = RelionOutputs(args.o, names, sizes, diameter=picker.diameter)
    todo = []
    for name in names.values():
        if outputs.exists(Path(name).name):
            outputs.add_existing(name)
        elif not Path(name).is_file():
            outputs.fail(Path(name).name, f"{name}: not found (run epick-relion from the RELION project directory)")
        else:
            todo.append(name)
    print(f"epick-relion: {len(entries)} micrographs in {args.in_mics}, {len(todo)} to pick, "
          f"{picker.object_type} model {Path(args.model).name} on {picker.backend_name}, "
          f"threshold {picker.threshold:g}", flush=True)
    start = time.perf_counter()
    with picker:
        for i, result in enumerate(picker.pick_many(todo), 1):
            if not outputs.write(result):
                print(f"epick-relion: {result.name}: {outputs.failures.get(result.name)}", file=sys.stderr)
            if i % 50 == 0 or i == len(todo):
                print(f"epick-relion: {i}/{len(todo)} micrographs picked", flush=True)
    outputs.flush()
    print(outputs.summary(time.perf_counter() - start, picker.backend_name), flush=True)
    if not outputs.index:
        raise EpickError(f"no micrograph could be picked (reasons in {jobdir / 'failures.txt'})")
    write_output_nodes(jobdir, [(f"{args.o.rstrip('/')}/autopick.star", COORDS_NODE_TYPE)])
    return 0


def _job_dir_in(argv: list[str]) -> Path | None:
    """The value of ``--o`` in a command line, to leave a failure marker when parsing fails."""
    for i, word in enumerate(argv[:-1]):
        if word == "--o":
            return Path(argv[i + 1])
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``epick-relion`` console script."""
    import logging

    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="epick-relion: %(message)s")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code and _job_dir_in(argv) is not None:
            mark_exit(_job_dir_in(argv), False, "the command line was refused (see run.err)")
        raise
    jobdir = Path(args.o)
    for marker in (SUCCESS, FAILURE):
        (jobdir / marker).unlink(missing_ok=True)
    try:
        code = run_job(args)
    except EpickError as exc:
        print(f"epick-relion: error: {exc}", file=sys.stderr)
        mark_exit(jobdir, False, str(exc))
        return 2
    except KeyboardInterrupt:
        mark_exit(jobdir, False, "interrupted")
        return 130
    except Exception as exc:
        mark_exit(jobdir, False, f"{type(exc).__name__}: {exc}")
        raise
    mark_exit(jobdir, True)
    return code


if __name__ == "__main__":
    sys.exit(main())
