"""`epick view`: look at picks in a web browser, choose a score threshold, write the picks above it.

    epick view picks/ --micrographs Micrographs/ [--truth truth/] [--port 8765]

Serves a page on http://127.0.0.1:PORT/ (this machine only; ``--host 0.0.0.0`` to let other
machines in): micrographs with their picks (circles of the particle diameter coloured by score,
vesicles with their radius, fibers as polylines), a threshold slider, zoom and pan, the histogram
of all scores and, with ``--truth``, true/false positives, missed particles and precision/recall.
"Apply" writes the picks above the threshold to a new folder in the job's formats (the same as
`epick filter`, whose command line it prints). Nothing is fetched from the internet.
"""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from ..cli_args import nonnegative_int, positive_float

DEFAULT_PORT = 8765
EXAMPLES = """
epick view picks/ --micrographs Micrographs/
epick view picks/ --micrographs Micrographs/ --truth truth/ --port 8800 --open
"""
WRITES = """
nothing until "Apply": then a filtered copy of the picks in a new folder (as `epick filter`)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `epick view`."""
    parser.add_argument("picks", type=Path, metavar="PICKS_DIR", help="output folder of `epick pick` (or any coordinate files)")
    parser.add_argument("--micrographs", type=Path, metavar="DIR",
                        help="folder of the micrographs (default: the paths in autopick.star or in the picks)")
    parser.add_argument("--truth", type=Path, metavar="DIR", help="ground-truth coordinates: TP/FP/missed and precision/recall")
    parser.add_argument("--diameter", type=positive_float, metavar="PX", help="particle diameter in original pixels (default: the picks')")
    parser.add_argument("--match-radius", type=positive_float, metavar="PX",
                        help="vesicles/fibers: centre distance that matches a pick with the truth (default: half the radius/diameter)")
    parser.add_argument("--port", type=nonnegative_int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every network)")
    parser.add_argument("--open", action="store_true", help="open the page in the default web browser")


def _announce(result: dict) -> None:
    print(f"epick view: wrote {result['picks_kept']} of {result['picks_before']} picks (score >= "
          f"{result['threshold']:g}) to {result['out']}\n  same as: {result['command']}", flush=True)


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve the viewer until Ctrl-C (or until ``stop`` is set, for tests)."""
    from ..viewer.api import ViewerApi
    from ..viewer.server import Server

    api = ViewerApi.open(args.picks, micrographs=args.micrographs, truth=args.truth, diameter=args.diameter,
                         match_radius=args.match_radius, progress=True, announce=_announce)
    missing = len(api.job.picks) - len(api.micrographs)
    if missing:
        print(f"epick view: no micrograph file found for {missing} of {len(api.job.picks)} micrographs "
              "(their picks are shown on grey); pass --micrographs DIR", file=sys.stderr)
    with Server(api.app(), args.host, args.port) as server:
        print(f"epick view: {len(api.job.picks)} micrographs, {api.job_info()['n_picks']} picks from {args.picks}; "
              f"open {server.url} (Ctrl-C to stop)", flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(server.url)
        try:
            (stop or threading.Event()).wait()
        except KeyboardInterrupt:      # Ctrl-C is how the viewer is closed
            print("epick view: stopped", file=sys.stderr)
    return 0
