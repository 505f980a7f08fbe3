"""`epick pick`: pick micrographs (or watch a folder) with an exported model, write coordinates.

Outputs in ``--out DIR`` (each written atomically: temporary file, then rename):
``NAME_autopick.star`` / ``NAME.box`` / ``NAME.csv`` / ``NAME.cs`` per micrograph, RELION's
job-level ``autopick.star`` index (with star), ``failures.txt`` + ``failures.json`` (name and
reason per micrograph that could not be picked), ``pick_summary.json``, ``preview/NAME.png``
(``--preview N``), and ``watch_state.json`` in ``--watch`` mode.
With ``--shard I/N`` (job arrays) the job-level files are replaced by ``shards/shard-I-of-N.json``;
``epick merge-index OUT`` writes them from all shards. ``--cluster`` spreads the micrographs over
Dask workers (``epick.runtime.distributed``); the files written are the same as without it.
Exit codes: ``EXIT_CODES`` below (shown by ``epick pick --help``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

from ..cli_args import fraction, nonnegative_int, positive_float, positive_int
from ..errors import CoordinateError, EpickError
from ..picks import OBJECT_TYPES
from ..io.atomic import atomic_write
from ..io.star import star_string
from ..write_problems import (OutputFolderError, check_output_folder, describe_write_error, is_run_level,
                              output_folder_error, remove_outputs, same_stem_error, same_stem_groups)

EXAMPLES = """
epick pick micrographs/ --model model.onnx --out picks/ --format star,box --preview 4
epick pick CtfFind/job003/micrographs_ctf.star --model model.onnx --out picks/ --format star,cs
epick pick --watch /data/session/Micrographs --model model.onnx --out picks/ --idle-exit 600 --dashboard
"""
WRITES = """
OUT/NAME_autopick.star, NAME.box, NAME.csv, NAME.cs   per micrograph (--format star,box,csv,cs)
OUT/autopick.star        RELION's job-level list of micrographs and their coordinate files (star)
OUT/picks.star, picks_topaz.txt, particles.cs   one table for the whole run (--format jobstar,topaz,jobcs)
OUT/failures.txt, failures.json, pick_summary.json, preview/NAME.png, watch_state.json (--watch)
"""

EXIT_CODES = """
0    something was picked, or nothing was left to do (also: --watch stopped by Ctrl-C or SIGTERM)
1    every micrograph failed; failures.txt says why for each
2    a usage or run-level problem, one 'error:' line: bad option, model refused, no micrographs,
     --out not writable, disk full (what was done before is summarised and kept)
70   epick crashed (an internal error, a bug): the traceback is printed; please report it
130  interrupted before every micrograph was picked; rerun with --skip-existing for the rest
"""

FORMATS = ("star", "box", "cs", "csv", "jobstar", "topaz", "jobcs")
JOB_FORMATS = ("jobstar", "topaz", "jobcs")   # one table per run (epick.runtime.io.job_tables), built from the STAR files
_FILE_OF_FORMAT = {"star": "{stem}_autopick.star", "box": "{stem}.box", "cs": "{stem}.cs", "csv": "{stem}.csv"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `epick pick`."""
    from ..backends import BACKENDS

    parser.add_argument("micrographs", nargs="*", help="micrograph files, folders or glob patterns")
    parser.add_argument("--model", help="exported model: .onnx, .engine, .pt2 or a .epick model file, or the name of "
                                         "a bundled model (default: the bundled general model; see `epick models`)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--format", default="star",
                        help="comma-separated: per micrograph star,box,cs,csv; one table per run jobstar "
                             "(particles.star), topaz (picks_topaz.txt), jobcs (particles.cs) (default: star)")
    parser.add_argument("--exposures", type=Path, metavar="CS",
                        help="jobcs: the cryoSPARC exposures .cs of the picked micrographs; particles.cs takes "
                             "their uid, path, shape, pixel size and exposure group")
    parser.add_argument("--threshold", type=fraction, help="score threshold in [0, 1] (default: the model's, else 0.3)")
    parser.add_argument("--batch", type=positive_int, default=4, help="micrographs per inference call (default 4)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="inference backend (default auto)")
    parser.add_argument("--object", choices=OBJECT_TYPES,
                        help="refuse a model trained for another object type")
    size = parser.add_mutually_exclusive_group()   # the particle size is given once
    size.add_argument("--diameter", type=positive_float,
                      help="particle diameter in original pixels: the box size written; for a particle-size "
                           "model the scale it picks at (default: the model's; a particle-size model estimates it); "
                           "the general model resamples micrographs whose particles would span more than 64 px "
                           "at its 1024-px width, which it would otherwise miss")
    size.add_argument("--diameter-a", type=positive_float, metavar="ANGSTROM",
                      help="particle diameter in Angstrom, turned into pixels with the first micrograph's pixel size")
    parser.add_argument("--box-size", type=positive_float, metavar="PX",
                        help=".box output: box size in original pixels (default: the particle diameter)")
    parser.add_argument("--min-distance", type=positive_float, help="minimum distance between picks, original pixels")
    parser.add_argument("--top-k", type=positive_int, default=2000, help="most picks per micrograph (default 2000)")
    parser.add_argument("--skip-existing", action="store_true", help="skip micrographs whose outputs exist (resume)")
    parser.add_argument("--preview", type=nonnegative_int, default=0, metavar="N", help="write PNGs with picks for the first N")
    parser.add_argument("--readers", type=positive_int, default=2, help="reader threads decoding files (default 2)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads of ONNX Runtime (default: all)")
    parser.add_argument("--watch", type=Path, metavar="DIR", help="pick micrographs arriving in DIR until stopped")
    parser.add_argument("--poll", type=positive_float, default=2.0, help="--watch: seconds between folder scans (default 2)")
    parser.add_argument("--idle-exit", type=positive_float, metavar="S", help="--watch: stop after S seconds without new files")
    parser.add_argument("--dashboard", type=nonnegative_int, nargs="?", const=8766, metavar="PORT",
                        help="--watch: serve a live page (latest micrographs with picks, rate, failures, how far "
                             "behind) on http://127.0.0.1:PORT/ (default port 8766; 0: any free port)")
    parser.add_argument("--dashboard-host", default="127.0.0.1",
                        help="--dashboard: address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)")
    parser.add_argument("--shard", metavar="I/N",
                        help="pick only shard I (0-based) of N: a job-array task; the split hashes file names "
                             "(see epick.runtime.distributed.shard); then run `epick merge-index OUT`")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="pick on Dask workers: dask://HOST:PORT (a running scheduler), local:N (N worker "
                             "processes here, one GPU each where there are GPUs) or slurm:N (N Slurm jobs, "
                             "docs/cluster/jobqueue.yaml); needs pip install 'epick[cluster]'")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_formats(text: str) -> list[str]:
    """``"star,box"`` -> ``["star", "box"]``; unknown names raise a CoordinateError with the fix."""
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise CoordinateError("--format", f"unknown output format(s) {bad or text!r}",
                              f"choose from {', '.join(FORMATS)}")
    if any(f in JOB_FORMATS for f in formats) and "star" not in formats:
        formats.insert(0, "star")   # the job tables are rebuilt from the per-micrograph STAR files
    return list(dict.fromkeys(formats))


class PickOutputs:
    """Writes each micrograph's files, remembers failures and index entries, summarises the run."""

    def __init__(self, out_dir: Path, formats: list[str], *, diameter: float | None, preview: int = 0,
                 exposures: Path | None = None, box_size: float | None = None):
        from ..io.job_tables import JobTables

        self.out_dir = Path(out_dir)
        self.formats = [f for f in formats if f not in JOB_FORMATS]
        self.job_formats = [f for f in formats if f in JOB_FORMATS]
        self.exposures = None if exposures is None else str(exposures)
        self.job_tables = JobTables(out_dir, self.job_formats, exposures=exposures) if self.job_formats else None
        self.diameter = diameter
        self.box_size = box_size     # .box box size when it differs from the particle diameter
        self.preview = preview
        self.counts: dict[str, int] = {}
        self.failures: dict[str, str] = {}
        self.index: dict[str, tuple[str, str]] = {}
        self.skipped = 0
        self.previews = 0
        self.failed_now = 0          # failures of this run (failures.json may hold earlier ones)
        self.picked_now = 0          # picked by this process (counts may hold a --watch job's earlier ones)
        self.owners: dict[str, str] = {}   # stem -> the micrograph whose outputs carry it

    def paths_for(self, name: str) -> dict[str, Path]:
        """Output file per format for micrograph file ``name``."""
        stem = Path(name).stem
        return {fmt: self.out_dir / _FILE_OF_FORMAT[fmt].format(stem=stem) for fmt in self.formats}

    def exists(self, name: str) -> bool:
        """True when every requested output of ``name`` is already there (``--skip-existing``)."""
        return all(p.is_file() for p in self.paths_for(name).values())

    def stem_taken(self, name: str) -> str | None:
        """The other micrograph already written to ``name``'s output files (same stem), or None."""
        return self.owners.get(Path(name).stem) if self.owners.get(Path(name).stem, name) != name else None

    def add_existing(self, micrograph: str | Path) -> None:
        """Count a skipped micrograph and keep it in the index."""
        self.skipped += 1
        self._index(str(micrograph), Path(micrograph).name)

    def _index(self, micrograph: str, name: str) -> None:
        self.owners.setdefault(Path(name).stem, name)
        if "star" in self.formats:
            self.index[name] = (micrograph, str(self.paths_for(name)["star"]))

    def write(self, result) -> bool:
        """Write one PickResult's outputs (or record its failure); True when it was picked."""
        from ..io.coordinates import write_picks

        if not result.ok:
            self.failures[result.name] = result.error or "unknown error"
            self.failed_now += 1
            return False
        other = self.stem_taken(result.name)
        if other is not None:   # --watch: a.mrc arriving after a.jpg would overwrite a.jpg's picks
            self.failures[result.name] = (f"has the same name stem as {other}, whose outputs are already "
                                          "written; rename it (each micrograph needs its own stem)")
            self.failed_now += 1
            return False
        paths = self.paths_for(result.name)
        try:
            if "star" in self.formats:   # the index must be able to list it (quoted when it has spaces)
                star_string(str(result.source), result.name)
                star_string(str(paths["star"]), result.name)
            for fmt, path in paths.items():
                write_picks(result.picks, path, fmt,
                            diameter=self.box_size if fmt == "box" and self.box_size else self.diameter)
        except Exception as exc:   # this micrograph fails; a full disk or a read-only folder ends the run
            remove_outputs(paths.values())
            if is_run_level(exc):
                raise output_folder_error(exc, self.out_dir) from exc
            self.failures[result.name] = str(exc) if isinstance(exc, EpickError) else describe_write_error(exc)
            self.failed_now += 1
            return False
        self.failures.pop(result.name, None)
        if self.job_tables is not None:
            self.job_tables.add(result.name, str(result.source), result.picks)
        self.counts[result.name] = len(result.picks)
        self.picked_now += 1
        self._index(str(result.source), result.name)
        if result.image is not None and self.previews < self.preview:
            from ..preview import write_preview

            try:
                write_preview(self.out_dir / "preview" / f"{Path(result.name).stem}.png", result.image,
                              result.picks, result.transform, diameter=self.diameter)
            except Exception as exc:   # a preview is a picture of the picks, not an output to fail for
                if is_run_level(exc):
                    raise output_folder_error(exc, self.out_dir) from exc
                logging.getLogger("epick.runtime").warning("%s: no preview (%s)", result.name, describe_write_error(exc))
            self.previews += 1
        return True

    def fail(self, name: str, reason: str) -> None:
        """Record a micrograph that could not be picked at all (``reason``: one line)."""
        self.failures[name] = reason
        self.failed_now += 1
        print(f"epick pick: {name}: {reason}", file=sys.stderr)

    def load_failures(self) -> None:
        """Keep failures reported by an earlier run (``--watch`` restarts)."""
        path = self.out_dir / "failures.json"
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self.failures.update({str(k): str(v) for k, v in json.loads(path.read_text()).items()})

    def flush(self) -> None:
        """Write failures, the RELION index and the summary (all atomically)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        txt, js = self.out_dir / "failures.txt", self.out_dir / "failures.json"
        if self.failures:
            with atomic_write(txt) as handle:   # one line per micrograph, whatever its name holds
                handle.writelines(f"{_one_line(name)}\t{_one_line(reason)}\n"
                                  for name, reason in sorted(self.failures.items()))
            with atomic_write(js) as handle:
                json.dump(self.failures, handle, indent=1, sort_keys=True)
        else:
            for path in (txt, js):
                path.unlink(missing_ok=True)
        with atomic_write(self.out_dir / "pick_summary.json") as handle:
            json.dump({"picked": len(self.counts), "failed": len(self.failures), "skipped": self.skipped,
                       "picks_total": sum(self.counts.values()), "picks_per_micrograph": self.counts},
                      handle, indent=1, sort_keys=True)
        if self.index:
            from ..io.coordinates import write_autopick_index

            write_autopick_index(self.out_dir, [self.index[k] for k in sorted(self.index)])
        if self.job_tables is not None:
            self.job_tables.write(self.index)

    def summary(self, seconds: float | None, backend: str) -> str:
        """A small table: micrographs picked/failed/skipped, picks per micrograph, time and rate
        (left out when ``seconds`` is None)."""
        counts = list(self.counts.values())
        rows = [("micrographs picked", str(len(counts))), ("failed", str(len(self.failures))),
                ("skipped (outputs exist)", str(self.skipped)), ("picks total", str(sum(counts)))]
        if counts:
            rows.append(("picks per micrograph", f"mean {statistics.mean(counts):.1f}, median "
                         f"{statistics.median(counts):g}, min {min(counts)}, max {max(counts)}"))
        if seconds is not None:
            rate = self.picked_now / seconds if seconds > 0 else 0.0
            rows.append(("time", f"{seconds:.1f} s ({rate:.2f} micrographs/s)"))
        rows += [("backend", backend), ("outputs", f"{self.out_dir} ({', '.join(self.formats)})")]
        if self.failures:
            rows.append(("failures listed in", str(self.out_dir / "failures.txt")))
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (one line of failures.txt)."""
    return text if text.isprintable() else text.encode("unicode_escape", "backslashreplace").decode("ascii")


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (finish the current batch); a second SIGINT interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        print(f"\nepick pick: {signal.Signals(signum).name}: stopping after the current batch", file=sys.stderr)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main_args(argv: list[str]) -> int:
    """Run `epick pick` with command-line arguments (for the demo and scripts); errors print as the CLI does."""
    from ..cli import main

    return main(["pick", *argv])


EXIT_INTERRUPTED = 130   # the shell's code for a run ended by SIGINT


def picker_options(args: argparse.Namespace) -> dict:
    """The Picker's keyword arguments given on the command line (one place, also for Dask workers)."""
    return dict(backend=args.backend, object_type=args.object, threshold=args.threshold, top_k=args.top_k,
                min_distance=args.min_distance, diameter=args.diameter, batch_size=args.batch,
                readers=args.readers, threads=args.threads)


def open_picker(model: str | Path, options: dict):
    """A Picker for ``model`` with ``picker_options`` (the same in this process and on every worker)."""
    from ..picker import Picker

    return Picker(model, **options)


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Run `epick pick` (``stop`` lets a caller end a ``--watch`` run, as a signal would)."""
    formats = parse_formats(args.format)
    if not args.micrographs and args.watch is None:
        raise EpickError("no micrographs given (pass files/folders, or --watch DIR)")
    if args.dashboard is not None and args.watch is None:
        raise EpickError("--dashboard shows a --watch run; add --watch DIR (or look at finished picks with `epick view`)")
    shard = _check_scale_options(args)
    logging.basicConfig(level=logging.WARNING, format="epick pick: %(message)s")
    from ..bundled import resolve_model

    args.model = resolve_model(args.model)
    args.diameter = pick_diameter(args)
    picker = open_picker(args.model, picker_options(args))
    if picker.needs_diameter:
        args.diameter = estimate_diameter(args, picker)   # picker_options(args) carry it to workers too
    if "box" in formats and picker.diameter is None and args.box_size is None and picker.object_type == "particle":
        raise CoordinateError(args.model, "box output needs the particle size and the model does not record it",
                              "pass --box-size PX (or --diameter PX)")
    print(f"epick pick: {picker.object_type} model {Path(args.model).name} on {picker.backend_name}, "
          f"threshold {picker.threshold:g}", file=sys.stderr)
    note = size_note_for(picker.params, first_micrograph(args.micrographs) if picker.params.rescales else None)
    if note:
        print(f"epick pick: {note}", file=sys.stderr)
    check_output_folder(args.out)
    outputs = PickOutputs(args.out, formats, diameter=picker.diameter, preview=args.preview,
                          exposures=args.exposures, box_size=args.box_size)
    stop = stop or threading.Event()
    start = time.perf_counter()
    ended: OutputFolderError | None = None
    backend = picker.backend_name
    try:
        with picker, stop_on_signals(stop):
            if args.watch is not None:
                _watch(args, picker, outputs, stop)
            elif args.cluster:
                picker.close()   # the workers hold the Pickers; this one only checked the model and options
                from ..distributed.dask_pick import pick_on_cluster

                backend = pick_on_cluster(args.cluster, args.model, picker_options(args), outputs,
                                          _todo(args, outputs, shard), stop=stop, quiet=args.quiet)
            else:
                _pick_files(args, picker, outputs, stop, _todo(args, outputs, shard))
    except OutputFolderError as exc:   # say what was done before the one-line error
        ended = exc
    try:
        if shard is None:
            outputs.flush()
        else:
            from ..distributed.merge_index import write_shard_record

            record = write_shard_record(outputs, *shard)
            print(f"epick pick: shard {shard[0]}/{shard[1]} recorded in {record}; when every shard is done, "
                  f"run `epick merge-index {args.out}` for autopick.star and pick_summary.json", file=sys.stderr)
    except OSError as exc:
        ended = ended or (output_folder_error(exc, args.out) if is_run_level(exc) else None)
        if ended is None:
            raise
    except EpickError as exc:   # e.g. a job-level table that cannot be written: after the summary
        ended = ended or exc
    print(outputs.summary(time.perf_counter() - start, backend))
    if ended is not None:
        raise ended
    if stop.is_set() and args.watch is None:   # interrupted: scripts must not go on as if all were picked
        print("epick pick: interrupted before every micrograph was picked; run the same command with "
              "--skip-existing to pick the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outputs.failed_now and not outputs.counts and not outputs.skipped:
        return 1
    return 0


def first_micrograph(micrographs: list[str] | None) -> Path | None:
    """The first micrograph of the command line's files and folders that exists (None: none, e.g.
    --watch only); stale paths are left for the picking run to report."""
    from ..io.micrograph import find_micrographs

    try:
        return next(iter(find_micrographs(micrographs, problems={})), None) if micrographs else None
    except EpickError:   # nothing at all to pick: the picking run says so
        return None


def pick_diameter(args: argparse.Namespace) -> float | None:
    """--diameter (pixels), or --diameter-a (Angstrom) over the pixel size of the first micrograph."""
    from ..io.micrograph import find_micrographs, read_micrograph_geometry

    if args.diameter_a is None:
        return args.diameter
    first = next(iter(find_micrographs(args.micrographs)), None) if args.micrographs else None
    pixel_size = read_micrograph_geometry(first)[1] if first is not None else None   # the header only
    if not pixel_size:
        raise EpickError(f"--diameter-a needs the pixel size, and {first or 'the micrographs'} records none "
                         "(PNG/JPEG, or an MRC/TIFF header without it); give --diameter in pixels")
    diameter = args.diameter_a / pixel_size
    print(f"epick pick: particle diameter {args.diameter_a:g} A = {diameter:.1f} px at {pixel_size:g} A/px",
          file=sys.stderr)
    return diameter


def size_note_for(params, micrograph: Path | None) -> str | None:
    """``preprocess.size_note`` for ``micrograph``'s shape and pixel size (None: nothing to say, or no
    readable micrograph)."""
    from ..io.micrograph import read_micrograph_geometry
    from ..preprocess import size_note

    if not params.rescales or micrograph is None:
        return None
    try:
        shape, pixel_size = read_micrograph_geometry(micrograph)
    except (EpickError, OSError, ValueError):   # an unreadable first file is reported with the picks
        return None
    return size_note(params, shape, pixel_size)


def estimate_diameter(args: argparse.Namespace, picker) -> float:
    """Estimate the particle diameter of a particle-size model on the first micrographs, say it, use it."""
    from ..io.micrograph import find_micrographs

    sources = find_micrographs(args.micrographs) if args.micrographs else []
    if not sources:
        raise EpickError("this particle-size model needs the particle diameter to pick a watched folder: "
                         "give --diameter PX or --diameter-a A")
    print(f"epick pick: no --diameter given; estimating it on {min(2, len(sources))} micrograph(s) ...",
          file=sys.stderr)
    found = picker.estimate_diameter(sources[:2])
    picker.set_diameter(found.diameter)
    print(f"epick pick: estimated particle diameter {found.diameter:.0f} px "
          f"(per micrograph: {', '.join(f'{d:.0f}' for d in found.per_micrograph)}); "
          "pass --diameter to override", file=sys.stderr)
    return found.diameter


def _progress(total: int | None, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="mic", desc="picking", disable=quiet, dynamic_ncols=True,
                smoothing=0.1, file=sys.stderr)


def _check_scale_options(args: argparse.Namespace) -> tuple[int, int] | None:
    """Refuse --shard/--cluster combinations that cannot work; the parsed --shard (or None)."""
    if args.watch is not None and (args.shard or args.cluster):
        raise EpickError("--watch picks on this machine only; drop --shard/--cluster (or pick the files "
                         "once they are all there)")
    if args.shard and args.cluster:
        raise EpickError("--shard splits a job array and --cluster spreads one job over Dask workers; choose one")
    if not args.shard:
        return None
    from ..distributed.shard import parse_shard

    return parse_shard(args.shard)


def _todo(args, outputs: PickOutputs, shard: tuple[int, int] | None) -> list[Path]:
    """The micrographs to pick: this shard's (all without --shard), less those skipped as done."""
    from ..io.micrograph import find_micrographs

    stale: dict[str, str] = {}     # broken links, vanished files, FIFOs: named, the rest picked
    from ..io.star import expand_micrograph_lists

    paths = find_micrographs(expand_micrograph_lists(args.micrographs), problems=stale)
    clashes = same_stem_groups(paths)   # before sharding: every shard refuses the same job
    if clashes:
        raise same_stem_error(clashes)
    if shard is not None:
        from ..distributed.shard import select_shard, shard_of

        paths = select_shard(paths, *shard)
        stale = {name: reason for name, reason in stale.items() if shard_of(name, shard[1]) == shard[0]}
    for name, reason in stale.items():
        outputs.fail(name, reason)
    todo = []
    for path in paths:
        if args.skip_existing and outputs.exists(path.name):
            outputs.add_existing(path)
        else:
            todo.append(path)
    return todo


def _pick_files(args, picker, outputs: PickOutputs, stop: threading.Event, todo: list[Path]) -> None:
    with _progress(len(todo), args.quiet) as bar:
        for result in picker.pick_many(todo, stop=stop, keep_images=args.preview):
            if not outputs.write(result):   # say why on screen, not only in failures.txt
                bar.write(f"epick pick: {result.name}: {outputs.failures.get(result.name)}", file=sys.stderr)
            bar.update(1)
            bar.set_postfix(picks=sum(outputs.counts.values()), failed=len(outputs.failures), refresh=False)


def noting_the_first(paths: Iterable[Path], params) -> Iterator[Path]:
    """``paths`` unchanged; the size note of the first one printed as it arrives (a watched folder)."""
    first = True
    for path in paths:
        if first:
            first = False
            note = size_note_for(params, path)
            if note:
                print(f"epick pick: {note}", file=sys.stderr)
        yield path


def _watch(args, picker, outputs: PickOutputs, stop: threading.Event) -> None:
    from ..watch import WatchState, watch_micrographs

    if not args.watch.is_dir():
        raise EpickError(f"{args.watch}: --watch needs an existing folder")
    state = WatchState(args.out)
    outputs.load_failures()
    for name, status in state.done.items():      # earlier runs' picks: in the index and the summary
        if status == "picked":
            outputs._index(str(args.watch / name), name)
            if name in state.picks:
                outputs.counts[name] = state.picks[name]
            else:
                outputs.skipped += 1

    def skip(path: Path) -> bool:   # outputs already there (e.g. written just before a crash): done
        if outputs.stem_taken(path.name) is None and outputs.exists(path.name):
            state.mark(path.name, "picked")
            outputs.add_existing(path)
            return True
        return False

    paths = noting_the_first(watch_micrographs(args.watch, state, stop=stop, poll_s=args.poll,
                                               idle_exit_s=args.idle_exit, skip=skip), picker.params)
    lock = threading.Lock()
    done = threading.Event()

    def flush_periodically() -> None:   # state, failures and index reach the disk within ~2 s
        while not done.wait(2.0):
            try:
                with lock:
                    state.flush()
                    outputs.flush()
            except Exception as exc:   # e.g. a full disk: keep picking, try again at the next flush
                logging.getLogger("epick.runtime").warning("cannot write the watch state or index yet (%s)", exc)

    from ..viewer.live import start_dashboard

    live, dashboard = start_dashboard(args, state, picker)   # (None, None) without --dashboard
    flusher = threading.Thread(target=flush_periodically, name="epick-watch-flush", daemon=True)
    flusher.start()
    try:
        with _progress(None, args.quiet) as bar:
            for result in picker.pick_many(paths, stop=stop, keep_images=args.preview if live is None else sys.maxsize):
                with lock:
                    picked = outputs.write(result)
                    state.mark(result.name, "picked" if picked else "failed",
                               picks=len(result.picks) if picked else None)
                if not picked:
                    print(f"epick pick: {result.name}: {outputs.failures.get(result.name)}", file=sys.stderr)
                if live is not None:
                    live.record(result, outputs.failures.get(result.name) if not picked else None)
                bar.update(1)
    finally:
        if dashboard is not None:
            dashboard.stop()
        done.set()
        flusher.join()
        with contextlib.suppress(OSError):   # else a restart finds the outputs and marks them picked
            state.flush()
