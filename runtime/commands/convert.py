"""`epick convert`: convert coordinate files between STAR, BOX, CSV, Topaz and cryoSPARC .cs.

    epick convert picks/*.star --to box --out boxes/ --diameter 108
    epick convert boxes/ --to star --out stars/
    epick convert stars/ --to cs --out cs/ --micrographs micrographs/

Per-micrograph formats (star, box, csv) give one file per micrograph, ``OUT/KEY.SUFFIX`` where KEY
is the micrograph name without folders, extension or _autopick-like suffixes; topaz and cs give
one file (``OUT/picks_topaz.txt``, ``OUT/particles.cs``). All writes are atomic.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from ..cli_args import positive_float
from ..errors import CoordinateError
from ..picks import Picks

MULTI_FILE_NAMES = {"topaz": "picks_topaz.txt", "cs": "particles.cs"}
EXAMPLES = """
epick convert picks/ --to box --out boxes/ --diameter 108
epick convert particles.cs --to star --out stars/
epick convert AutoPick/job006/ --to cs --out cs/ --exposures J3_exposures_accepted.cs
"""
WRITES = """
OUT/KEY_autopick.star, OUT/KEY.box or OUT/KEY.csv   one file per micrograph (--to star, box, csv)
OUT/picks_topaz.txt or OUT/particles.cs            one file for all micrographs (--to topaz, cs)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `epick convert`."""
    from ..io.coordinates import WRITE_FORMATS

    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="coordinate files or folders of them (.star .box .csv .txt .cs .thi)")
    parser.add_argument("--to", required=True, choices=WRITE_FORMATS, help="output format")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--diameter", type=positive_float, default=None, metavar="PX",
                        help="particle box size in original pixels (needed for .box unless the input carries it)")
    parser.add_argument("--box-size", type=positive_float, default=None, metavar="PX",
                        help="--to box: box size in original pixels when it differs from the particle diameter")
    parser.add_argument("--micrographs", type=Path, default=None, metavar="DIR",
                        help="folder of the micrographs: their sizes are read for .cs output, and their "
                             "paths become the micrograph names there")
    parser.add_argument("--exposures", type=Path, default=None, metavar="CS",
                        help="--to cs: the cryoSPARC exposures .cs of the micrographs; the particles take their "
                             "uid, path, shape, pixel size and exposure group")
    parser.add_argument("--cs-format", choices=("numpy", "csdat"), default="numpy",
                        help="--to cs: NumPy .cs (every cryoSPARC version) or cryosparc-tools' CSDAT stream")


def _micrograph_index(folder: Path) -> dict[str, Path]:
    """Micrograph key -> file, for the micrographs in ``folder``."""
    from ..io.micrograph import find_micrographs  # lazy: written by another module owner
    from ..picks import micrograph_key

    if not folder.is_dir():
        raise CoordinateError(folder, "is not a folder", "pass --micrographs DIR with the micrographs")
    return {micrograph_key(p.name): p for p in find_micrographs([folder])}


def _attach_micrographs(picks_list: list[Picks], folder: Path, need_shape: bool) -> None:
    """Fill shape (and, for cs, the micrograph path) from the micrographs in ``folder``."""
    from ..io.micrograph import read_micrograph_shape

    index = _micrograph_index(folder)
    for picks in picks_list:
        mic = index.get(picks.key)
        if mic is None:
            if need_shape and picks.shape is None:
                raise CoordinateError(folder, f"has no micrograph matching {picks.micrograph}",
                                      "pass the folder that holds the picked micrographs")
            continue
        if picks.shape is None and need_shape:
            picks.shape = tuple(int(v) for v in read_micrograph_shape(mic))
        picks.micrograph = str(mic)


def convert(inputs: list[str | Path], to: str, out: Path, *, diameter: float | None = None, box_size: float | None = None,
            micrographs: Path | None = None, progress: bool = True, exposures: Path | None = None,
            cs_format: str = "numpy") -> list[Path]:
    """Convert coordinate files to format ``to`` under ``out``; returns the files written."""
    from tqdm import tqdm

    from ..io.coordinates import SUFFIXES, find_coordinate_files, read_picks, write_picks

    files = find_coordinate_files(inputs)
    picks_list: list[Picks] = []
    for path in tqdm(files, desc="reading", unit="file", disable=not progress or len(files) < 2):
        picks_list.extend(read_picks(path, diameter=diameter))
    if to == "cs" and micrographs is None and exposures is None:
        lacking = [p.micrograph for p in picks_list if p.shape is None]
        if lacking:
            raise CoordinateError(Path(out) / MULTI_FILE_NAMES["cs"], f"cs writing needs micrograph sizes, unknown for {len(lacking)} "
                                  f"micrograph(s) such as {lacking[0]}",
                                  "pass --micrographs DIR so the sizes can be read from the micrographs")
    if micrographs is not None:
        _attach_micrographs(picks_list, Path(micrographs), need_shape=(to == "cs"))
    out = Path(out)
    if to == "cs":
        from ..io.cryosparc import write_cs

        return [write_cs(picks_list, out / MULTI_FILE_NAMES[to], exposures=exposures, cs_format=cs_format)]
    if to in MULTI_FILE_NAMES:
        return [write_picks(picks_list, out / MULTI_FILE_NAMES[to], to, diameter=diameter)]
    duplicates = sorted(k for k, n in Counter(p.key for p in picks_list).items() if n > 1)
    if duplicates:
        raise CoordinateError(out, f"several inputs map to the same output name {duplicates[0]}{SUFFIXES[to]}",
                              "convert inputs for different micrograph sets into different --out folders")
    written = []
    for picks in tqdm(picks_list, desc=f"writing {to}", unit="file", disable=not progress or len(picks_list) < 2):
        written.append(write_picks(picks, out / f"{picks.key}{SUFFIXES[to]}", to,
                                   diameter=box_size if to == "box" and box_size else diameter))
    return written


def run(args: argparse.Namespace) -> int:
    """Run `epick convert`."""
    written = convert(args.inputs, args.to, args.out, diameter=args.diameter, box_size=args.box_size,
                      micrographs=args.micrographs,
                      exposures=args.exposures, cs_format=args.cs_format)
    print(f"wrote {len(written)} {args.to} file(s) to {args.out}")
    return 0
