"""`epick simulate`: micrographs with known truth.

    epick simulate micrographs OUT --type ribosome --n 10 --size 4096 [--seed 0] [--object particle]
    epick simulate suite continual10|general OUT [--size 1024]
    epick simulate list
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from epick.runtime.cli_args import nonnegative_int, positive_float, positive_int
from epick.runtime.picks import OBJECT_TYPES

EXAMPLES = """
epick simulate micrographs sim/ --type ribosome --n 10 --size 4096
epick simulate micrographs fibers/ --object fiber --n 4 --size 1024 --clean
epick simulate suite continual10 suite/
"""
WRITES = """
micrographs: OUT/NAME.mrc and OUT/NAME.star (truth, RELION coordinates) per micrograph, OUT/manifest.json
suite: one such folder per dataset and split, and the suite's manifest
"""


def parse_size(text: str) -> tuple[int, int]:
    """'4096' -> (4096, 4096); '5760x4092' (width x height) -> (4092, 5760) as (ny, nx)."""
    try:
        if "x" in text.lower():
            w, h = (int(v) for v in text.lower().split("x"))
        else:
            w = h = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not N or WIDTHxHEIGHT (e.g. 4096 or 5760x4092)") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small (at least 16 px)")
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `epick simulate`."""
    parser.add_argument("--atomic-models", type=Path, metavar="DIR", default=None,
                        help="folder of the PDB files of the pdb-* particle types (default: $EPICK_ATOMIC_MODELS)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    mic = sub.add_parser("micrographs", help="simulate N micrographs of one kind into OUT")
    mic.add_argument("out", type=Path, help="output folder (MRC + STAR per micrograph, manifest.json)")
    mic.add_argument("--type", default=None,
                     help="particle type (see `epick simulate list`) or fiber type; default ribosome / amyloid")
    mic.add_argument("--object", choices=OBJECT_TYPES, default="particle")
    mic.add_argument("--n", type=positive_int, default=10, help="number of micrographs (default 10)")
    mic.add_argument("--size", type=parse_size, default=(4096, 4096), help="N or WIDTHxHEIGHT px (default 4096)")
    mic.add_argument("--seed", type=int, default=0, help="first seed; micrograph i uses seed + i")
    mic.add_argument("--n-particles", type=nonnegative_int, default=None, help="objects per micrograph (default: from --density)")
    mic.add_argument("--density", type=positive_float, default=None, help="fraction of the area covered by objects")
    mic.add_argument("--pixel-size", type=positive_float, default=None, help="A/px (default: automatic from the size)")
    mic.add_argument("--snr", type=positive_float, default=None, help="per-object SNR after the CTF (default: per object kind)")
    mic.add_argument("--physical", action="store_true", help="physical contrast at --dose instead of a target SNR")
    mic.add_argument("--dose", type=positive_float, default=40.0, help="electrons per A^2 (default 40)")
    mic.add_argument("--defocus", type=positive_float, default=None, help="defocus in um (default: 0.8-3 at random)")
    mic.add_argument("--mtf", action="store_true", help="apply a detector MTF")
    mic.add_argument("--clean", action="store_true", help="no carbon, ice blobs, junk or uneven background")
    mic.add_argument("--persistence", type=positive_float, default=None, help="fiber persistence length (nm)")
    mic.add_argument("--render", choices=("float", "denoised", "stretched"), default="float",
                     help="float32 MRC (default), a denoised-looking 8-bit JPEG, or a contrast-stretched "
                          "8-bit PNG with ~20-30 grey levels (like public EMPIAR JPEG/PNG micrographs)")
    suite = sub.add_parser("suite", help="write a ready-made suite of datasets")
    suite.add_argument("name", choices=("continual10", "general"))
    suite.add_argument("out", type=Path)
    suite.add_argument("--size", type=parse_size, default=(1024, 1024), help="N or WIDTHxHEIGHT px (default 1024)")
    suite.add_argument("--seed", type=int, default=0)
    suite.add_argument("--train", type=positive_int, default=None, help="train micrographs per dataset")
    suite.add_argument("--test", type=positive_int, default=None, help="test micrographs per dataset")
    suite.add_argument("--only", nargs="*", default=None, help="only these dataset names")
    sub.add_parser("list", help="list particle and fiber types with their diameters")


def _run_micrographs(args) -> int:
    from tqdm import tqdm

    from .micrograph import simulate_micrograph
    from .output import MANIFEST_NAME, write_manifest, write_simulated

    snr = None if args.physical else (args.snr if args.snr is not None else "auto")
    rows = []
    for i in tqdm(range(args.n), desc="simulate", unit="mic"):
        sim = simulate_micrograph(args.size, args.type, n_particles=args.n_particles, pixel_size=args.pixel_size,
                                  seed=args.seed + i, object=args.object, density=args.density, snr=snr,
                                  dose=args.dose, defocus_um=args.defocus, mtf=args.mtf, clean=args.clean,
                                  persistence_nm=args.persistence)
        rows.append(write_simulated(sim, args.out, args.render))
    first = rows[0]["params"] if rows else {}
    header = {"object": args.object, "particle": first.get("particle"), "diameter_px": first.get("diameter_px"),
              "diameter_a": first.get("diameter_a"), "pixel_size_a": first.get("pixel_size_a"),
              "seed": args.seed, "shape": list(args.size), "generator": "epick.simulator"}
    path = write_manifest(args.out / MANIFEST_NAME, header, rows)
    print(f"wrote {len(rows)} micrographs and {path}")
    return 0


def _run_list() -> int:
    from .fibers import FIBER_TYPES
    from .particles import ATOMIC_MODELS_HELP, PARTICLE_TYPES

    missing = False
    print(f"{'type':<14}{'diameter':>10}{'mass':>10}  source / description")
    for name, t in PARTICLE_TYPES.items():
        try:
            d, m = f"{t.diameter_a / 10:.1f} nm", f"{t.mass_kda:.0f} kDa"
        except Exception:  # an atomic model that is not available here
            d, m, missing = "?", "?", True
        print(f"{name:<14}{d:>10}{m:>10}  {t.source}: {t.description}")
    for name, f in FIBER_TYPES.items():
        print(f"{name:<14}{f.diameter_nm:>7.1f} nm{'':>10}  fiber: {f.description}")
    print(f"{'vesicle':<14}{'40-200 nm':>10}{'':>10}  lipid bilayer vesicle (--object vesicle)")
    if missing:
        print(f"? the pdb-* types need their atomic models: {ATOMIC_MODELS_HELP}")
    return 0


def run(args) -> int:
    """Run `epick simulate`."""
    if args.atomic_models is not None:
        from .particles import set_atomic_models_dir

        set_atomic_models_dir(args.atomic_models)
    if args.action == "list":
        return _run_list()
    try:
        if args.action == "suite":
            from .suites import write_suite

            path = write_suite(args.name, args.out, args.size, args.seed, args.train, args.test, args.only)
            print(f"wrote {path}")
            return 0
        return _run_micrographs(args)
    except ValueError as exc:  # unknown particle, fiber or dataset name, impossible size
        print(f"epick simulate: error: {exc}", file=sys.stderr)
        return 2
