"""``epick-cryosparc``: pick a cryoSPARC job's exposures as a cryosparc-tools External job.

    epick-cryosparc --project P3 --workspace W2 --exposures J12 --model /models/betagal.onnx \\
        [--output exposures_accepted] [--threshold 0.3] [--project-dir /data/cryosparc/CS-myproject]

What it does (cryosparc-tools 4.4+ / 5, `CryoSPARC.find_project(...).create_external_job`):

1. creates an External job in the workspace, with an input ``micrographs`` (exposures,
   ``micrograph_blob`` slot) connected to ``--exposures`` job's ``--output``, and an output
   ``particles`` (``location`` and ``pick_stats`` slots);
2. reads each exposure's motion-corrected micrograph from the project directory (this must run on
   a machine that sees it, like cryoSPARC's workers; ``--project-dir`` when it is mounted
   elsewhere) and picks it with epick's Picker;
3. saves the particles: ``location/micrograph_uid`` = the exposure's uid, ``micrograph_path`` as
   cryoSPARC stores it, ``micrograph_shape``, ``micrograph_psize_A``, ``exp_group_id`` (from
   ``mscope_params`` when the exposures carry it), ``center_x/y_frac``, ``pick_stats/ncc_score`` =
   epick's score. Inspect Picks, Extract From Micrographs and 2D classification take them.

Connection: ``--url`` or ``$CRYOSPARC_BASE_URL`` (e.g. http://cryosparc.example.org:39000),
``$CRYOSPARC_EMAIL`` and ``$CRYOSPARC_PASSWORD`` (cryoSPARC 4 also needs ``$CRYOSPARC_LICENSE``);
install the cryosparc-tools version matching the cryoSPARC server (4.x for 4.x, 5.x for 5.x).
Without a cryoSPARC instance, ``epick pick ... --format jobcs --exposures J12_exposures_accepted.cs``
writes the same particles as a file for cryoSPARC's Import Particles job.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ..cli_args import ArgumentParser, fraction, help_epilog, positive_float, positive_int
from ..errors import EpickError

EXAMPLES = """
epick-cryosparc --project P3 --workspace W2 --exposures J12 --model /models/betagal.onnx
epick-cryosparc --project P3 --workspace W2 --exposures J12 --output exposures_accepted --model m.onnx --threshold 0.4
epick-cryosparc --project P3 --workspace W2 --exposures J12 --model general --diameter-a 280
"""
WRITES = """
a new External job in the workspace, with the output 'particles' (location and pick_stats slots)
"""


def pick_exposures(exposures, picker, project_dir: str | Path, *, progress=None):
    """Particles (a cryosparc-tools Dataset) picked on the micrographs of ``exposures`` (a Dataset
    with the ``micrograph_blob`` slot), read from ``project_dir``; also the failures {path: reason}."""
    from ..io.cryosparc import Exposures, particles_dataset

    found = Exposures(exposures)
    by_file = {str(Path(project_dir) / path): str(path) for path in found.paths}
    picks_list, failures = [], {}
    for result in picker.pick_many(list(by_file)):
        stored = by_file[str(result.source)]
        if not result.ok:
            failures[stored] = result.error or "unknown error"
            continue
        result.picks.micrograph = stored
        picks_list.append(result.picks)
        if progress is not None:
            progress(len(picks_list), len(by_file))
    return particles_dataset(picks_list, exposures=found), failures


def connection(url: str) -> dict:
    """Keyword arguments of ``CryoSPARC(...)`` that cryosparc-tools 4.4+ and 5 both take."""
    from urllib.parse import urlparse

    parts = urlparse(url if "//" in url else f"http://{url}")
    if not parts.hostname:
        raise EpickError(f"{url!r} is not a cryoSPARC URL (e.g. http://cryosparc.example.org:39000)")
    kwargs = {"host": parts.hostname, "base_port": parts.port or 39000,
              "email": os.environ.get("CRYOSPARC_EMAIL", ""), "password": os.environ.get("CRYOSPARC_PASSWORD", "")}
    license_id = os.environ.get("CRYOSPARC_LICENSE") or os.environ.get("CRYOSPARC_LICENSE_ID")
    if license_id:
        kwargs["license"] = license_id
    return kwargs


def build_parser() -> ArgumentParser:
    """The command line of ``epick-cryosparc``."""
    parser = ArgumentParser(prog="epick-cryosparc", description=__doc__.split("\n\n")[0],
                            epilog=help_epilog(EXAMPLES, WRITES))
    parser.add_argument("--project", required=True, help="project uid, e.g. P3")
    parser.add_argument("--workspace", required=True, help="workspace uid for the new job, e.g. W2")
    parser.add_argument("--exposures", required=True, metavar="JOB", help="job whose exposures to pick, e.g. J12")
    parser.add_argument("--output", default="exposures", help="that job's exposures output (default: exposures)")
    parser.add_argument("--model", required=True,
                        help="exported model (.onnx, .engine, .pt2), .epick file, or a bundled model's name (general)")
    parser.add_argument("--threshold", type=fraction, help="score threshold in (0, 1] (default: the model's, else 0.3)")
    size = parser.add_mutually_exclusive_group()   # the particle size is given once
    size.add_argument("--diameter", type=positive_float, metavar="PX",
                      help="particle diameter in micrograph pixels (as epick pick --diameter)")
    size.add_argument("--diameter-a", type=positive_float, metavar="ANGSTROM",
                      help="particle diameter in Angstrom, over the exposures' pixel size")
    parser.add_argument("--batch", type=positive_int, default=4, help="micrographs per inference call (default 4)")
    parser.add_argument("--backend", default="auto", help="inference backend (default auto)")
    parser.add_argument("--project-dir", type=Path, help="the project directory as mounted here (default: cryoSPARC's)")
    parser.add_argument("--url", default=os.environ.get("CRYOSPARC_BASE_URL"), help="cryoSPARC URL ($CRYOSPARC_BASE_URL)")
    parser.add_argument("--title", default="epick picks", help="title of the new job")
    return parser


def exposure_pixel_size(exposures) -> float | None:
    """The median pixel size (A/px) of ``exposures`` (``micrograph_blob/psize_A``); None when they record none."""
    import numpy as np

    if "micrograph_blob/psize_A" not in exposures.fields():
        return None
    psize = np.asarray(exposures["micrograph_blob/psize_A"], dtype=float)
    psize = psize[psize > 0]
    return float(np.median(psize)) if psize.size else None


def diameter_px(exposures, diameter: float | None, diameter_a: float | None) -> float | None:
    """The particle diameter in micrograph pixels: ``diameter``, or ``diameter_a`` (Angstrom) over the
    median pixel size of ``exposures`` (``micrograph_blob/psize_A``); None when neither is given."""
    if diameter_a is None:
        return diameter
    psize = exposure_pixel_size(exposures)
    if psize is None:
        raise EpickError("--diameter-a needs the exposures' pixel size (micrograph_blob/psize_A), and they record "
                         "none; give --diameter in pixels")
    return float(diameter_a / psize)


def exposure_shape(exposures) -> tuple[int, int] | None:
    """(ny, nx) of the first exposure's micrograph (``micrograph_blob/shape``; None without it)."""
    if not len(exposures) or "micrograph_blob/shape" not in exposures.fields():
        return None
    ny, nx = (int(v) for v in exposures["micrograph_blob/shape"][0][:2])
    return ny, nx


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``epick-cryosparc`` (needs a running cryoSPARC)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        from cryosparc.tools import CryoSPARC

        from ..bundled import resolve_model
        from ..picker import Picker
        from ..preprocess import size_note

        if not args.url:
            raise EpickError("no cryoSPARC URL: pass --url or set CRYOSPARC_BASE_URL")
        cs = CryoSPARC(**connection(args.url))
        project = cs.find_project(args.project)
        job = project.create_external_job(args.workspace, title=args.title)
        job.add_input("exposure", "micrographs", slots=["micrograph_blob"])
        job.connect("micrographs", args.exposures, args.output)
        job.add_output("particle", "particles", slots=["location", "pick_stats"])
        project_dir = args.project_dir or Path(str(project.dir() if callable(project.dir) else project.dir))
        with job.run():
            exposures = job.load_input("micrographs", ["micrograph_blob"])
            diameter = diameter_px(exposures, args.diameter, args.diameter_a)
            with Picker(resolve_model(args.model), args.backend, threshold=args.threshold, batch_size=args.batch,
                        diameter=diameter) as picker:
                job.log(f"epick: picking {len(exposures)} exposures with {Path(args.model).name}")
                shape = exposure_shape(exposures)
                note = size_note(picker.params, shape, exposure_pixel_size(exposures)) if shape else None
                if note:
                    job.log(f"epick: {note}")
                picked, failures = pick_exposures(exposures, picker, project_dir)
            for path, reason in failures.items():
                job.log(f"epick: {path}: {reason}", level="warning")
            out = job.alloc_output("particles", len(picked))
            for field in picked.fields():
                if field != "uid" and field in out.fields():
                    out[field] = picked[field]
            job.save_output("particles", out)
            job.log(f"epick: {len(picked)} particles on {len(exposures) - len(failures)} exposures")
        print(f"epick-cryosparc: {len(picked)} particles in {args.project} {job.uid}")
        return 0
    except EpickError as exc:
        print(f"epick-cryosparc: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
