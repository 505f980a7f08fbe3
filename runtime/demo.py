"""`python -m epick.runtime.demo` (``make demo``): pick the bundled demo micrographs with the bundled general model.

Bundled files live in ``epick/runtime/demo/`` (installed as package data): a few micrographs
(MRC/TIFF/PNG/JPEG), optionally their ground truth as ``NAME.star``, and the small model made for
them (``demo_model.onnx``). The demo runs `epick pick` on them with the default model of `epick
pick` (the bundled general model, ``epick.runtime.bundled``; ``demo_model.onnx`` where no general
model is bundled), previews included, and, when truth is there, prints precision/recall/AP with
``epick.runtime.evaluate``. ``--model`` / ``--micrographs`` replace the bundled files.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / "demo"


DEMO_MODEL_NAME = "demo_model.onnx"


def bundled_model(folder: Path = DEMO_DIR) -> Path | None:
    """The bundled model trained for the bundled (simulated) demo micrographs, or None.

    ``betagal_model.onnx`` beside it was trained on real EMPIAR-10017 micrographs and is not the
    demo's model (it scores AP ~0.05 on the simulated demo micrographs)."""
    path = folder / DEMO_MODEL_NAME
    return path if path.is_file() else None


def demo_model() -> Path | None:
    """The model the demo picks with: `epick pick`'s default (the bundled general model), else ``bundled_model()``."""
    from .bundled import default_model
    from .errors import EpickError

    try:
        return default_model().onnx
    except EpickError:
        return bundled_model()


def truth_diameter(micrographs: list[Path]) -> float | None:
    """The particle diameter (px) the micrographs' ``NAME.star`` truth records, if any (the box size written)."""
    from .io.coordinates import read_picks

    for mic in micrographs:
        star = mic.with_suffix(".star")
        if star.is_file():
            diameter = read_picks(star)[0].diameter
            if diameter:
                return float(diameter)
    return None


def bundled_micrographs(folder: Path = DEMO_DIR) -> list[Path]:
    """The bundled demo micrographs (possibly none)."""
    from .io.micrograph import MICROGRAPH_SUFFIXES

    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in MICROGRAPH_SUFFIXES)


def score_against_truth(out_dir: Path, micrographs: list[Path]) -> dict | None:
    """Evaluate the demo's picks against ``NAME.star`` truth beside the micrographs (None without truth)."""
    from .evaluate import evaluate
    from .io.coordinates import read_picks

    pairs = [(out_dir / f"{m.stem}_autopick.star", m.with_suffix(".star")) for m in micrographs]
    pairs = [(p, t) for p, t in pairs if p.is_file() and t.is_file()]
    if not pairs:
        return None
    picks = [read_picks(p)[0] for p, _ in pairs]
    truth = [read_picks(t)[0] for _, t in pairs]
    return evaluate(picks, truth)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    from .commands import pick

    parser = argparse.ArgumentParser(prog="python -m epick.runtime.demo", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="exported model (default: the bundled general model)")
    parser.add_argument("--micrographs", type=Path, nargs="+", help="micrographs (default: the bundled ones)")
    parser.add_argument("--out", type=Path, default=Path("epick_demo_out"), help="output folder")
    args = parser.parse_args(argv)
    model = args.model or demo_model()
    micrographs = args.micrographs or bundled_micrographs()
    if model is None or not micrographs:
        print(f"epick demo: no bundled {'model' if model is None else 'micrographs'} in {DEMO_DIR} "
              "(pass --model M.onnx --micrographs FILES...)", file=sys.stderr)
        return 2
    diameter = truth_diameter([Path(m) for m in micrographs])   # the box size written (a general model has none)
    formats = "star,box" if diameter else "star"
    rc = pick.main_args(["--model", str(model), "--out", str(args.out), "--format", formats, "--preview", "4",
                         *(["--diameter", f"{diameter:g}"] if diameter else []), *map(str, micrographs)])
    if rc == 0:
        scores = score_against_truth(args.out, [Path(m) for m in micrographs])
        if scores is not None:
            print(f"against the bundled truth: precision {scores['precision']:.3f}, recall {scores['recall']:.3f}, "
                  f"AP {scores['ap']:.3f}, AR {scores['ar']:.3f}")
        print(f"previews with the picks drawn: {args.out / 'preview'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
