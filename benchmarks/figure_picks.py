"""Draw docs/picks_betagal.png: a held-out real beta-gal micrograph picked by the bundled model.

    python benchmarks/figure_picks.py [--micrograph JPG] [--truth STAR] [--model ONNX] [--out PNG]

Defaults: ``Falcon_2012_06_12-16_59_12_0.jpg`` of EMPIAR-10017 (one of the 4 micrographs the
bundled ``runtime/demo/betagal_model.onnx`` was NOT trained on) from ``$EPICK_SHARED_DATA`` or
``../shared/data`` beside the checkout, its RELION STAR of true centres, and the model's own
threshold and diameter. Picking runs through ``epick.runtime.Picker``, matching through
``epick.runtime.evaluate`` (box IoU >= 0.5, greedy by score) and drawing through
``epick.runtime.preview.draw_picks`` on the network image (what the model saw, 1024 px wide):
true positives, false positives and missed truth in three colours. Needs matplotlib
(``pip install 'epick[dev]'``) for the legend and title.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "picks_betagal.png"
DEFAULT_MODEL = REPO / "runtime" / "demo" / "betagal_model.onnx"
DEFAULT_NAME = "Falcon_2012_06_12-16_59_12_0"
# (RGB, legend label): distinct for the common colour-vision deficiencies
TP_COLOUR = ((0, 200, 255), "true positive")
FP_COLOUR = ((255, 60, 60), "false positive")
FN_COLOUR = ((255, 220, 0), "missed truth")
HEADER_IN = 0.45  # inches above the image for the two-line title


def betagal_dir() -> Path:
    """The EMPIAR-10017 folder of the shared data ($EPICK_SHARED_DATA or ../shared/data)."""
    root = Path(os.environ.get("EPICK_SHARED_DATA", REPO.parent / "shared" / "data"))
    return root / "empiar10017_betagal"


def held_out_micrographs(name: str) -> list[Path]:
    """The held-out micrographs of real set ``name`` (``tools.general_model.held_out_names``)."""
    sys.path.insert(0, str(REPO))
    from tools.general_data import REAL_SETS, shared_data
    from tools.general_model import held_out_names

    folder = shared_data() / REAL_SETS[name]
    return [next(p for p in sorted(folder.glob(f"{stem}.*")) if p.suffix.lower() in (".jpg", ".png"))
            for stem in held_out_names(name)]


def pick_and_match(micrograph: Path, truth_path: Path, model: Path, threads: int = 2):
    """Pick one micrograph; return (network image, transform, picks, truth, Match, metrics row, picker threshold)."""
    from epick.runtime import Picker
    from epick.runtime.evaluate import match, micrograph_metrics
    from epick.runtime.io.coordinates import read_picks

    with Picker(str(model), threads=threads) as picker:
        [result] = list(picker.pick_many([str(micrograph)], keep_images=1))
        threshold = picker.threshold
        diameter = picker.diameter
    if result.picks is None:
        raise SystemExit(f"{micrograph}: {result.error}")
    [truth] = read_picks(truth_path, shape=result.picks.shape)
    diameter = diameter or truth.diameter
    m = match(result.picks, truth, diameter)
    row = micrograph_metrics(result.picks, truth, diameter)
    return result, truth, m, row, threshold, diameter


def draw_matched(result, truth, m, diameter: float):
    """The network image of ``result`` with its true positives, false positives and missed truth drawn
    (colours above); returns (PIL image, (tp, fp, fn) pick subsets)."""
    from epick.runtime.preview import draw_picks

    tp = result.picks.subset(np.flatnonzero(m.pick_to_truth >= 0))
    fp = result.picks.subset(np.flatnonzero(m.pick_to_truth < 0))
    fn = truth.subset(np.flatnonzero(m.truth_to_pick < 0))
    img = draw_picks(result.image, fn, result.transform, diameter=diameter, colour=FN_COLOUR[0])
    for part, (colour, _) in ((fp, FP_COLOUR), (tp, TP_COLOUR)):
        draw_picks(None, part, result.transform, diameter=diameter, colour=colour, base=img)
    return img, (tp, fp, fn)


def legend_handles(n_tp: int, n_fp: int, n_fn: int) -> list:
    """Matplotlib legend entries of the three colours with their counts."""
    from matplotlib.patches import Patch

    return [Patch(facecolor="none", edgecolor=np.array(c) / 255, linewidth=2, label=f"{label} ({n})")
            for (c, label), n in ((TP_COLOUR, n_tp), (FP_COLOUR, n_fp), (FN_COLOUR, n_fn))]


def draw_figure(micrograph: Path, truth_path: Path, model: Path, out: Path = DEFAULT_OUT,
                threads: int = 2, dpi: int = 110) -> Path:
    """Pick, match and draw TP / FP / missed truth with legend and metrics; write ``out`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from epick.runtime.io.atomic import atomic_path

    result, truth, m, row, threshold, diameter = pick_and_match(micrograph, truth_path, model, threads)
    img, (tp, fp, fn) = draw_matched(result, truth, m, diameter)

    fig, ax = plt.subplots(figsize=(img.width / dpi, img.height / dpi + HEADER_IN), dpi=dpi)
    ax.imshow(np.asarray(img), interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{micrograph.name} (held out), {model.name}, threshold {threshold:g}\n"
                 f"AP {row['ap']:.3f}   precision {row['precision']:.3f}   recall {row['recall']:.3f}   "
                 f"({row['n_picks']} picks, {row['n_truth']} true; box IoU >= 0.5 at {diameter:g} px)",
                 fontsize=9)
    ax.legend(handles=legend_handles(len(tp), len(fp), len(fn)), loc="upper right", fontsize=8, framealpha=0.85)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1 - HEADER_IN / (img.height / dpi + HEADER_IN))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    print(f"{micrograph.name}: {row['n_picks']} picks, TP {row['tp']} FP {row['fp']} FN {row['fn']}, "
          f"AP {row['ap']:.3f} precision {row['precision']:.3f} recall {row['recall']:.3f}")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--micrograph", type=Path, default=None, help=f"default: {DEFAULT_NAME}.jpg of the shared data")
    parser.add_argument("--truth", type=Path, default=None, help="default: the micrograph's .star beside it")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    micrograph = args.micrograph or betagal_dir() / f"{DEFAULT_NAME}.jpg"
    truth = args.truth or micrograph.with_suffix(".star")
    draw_figure(micrograph, truth, args.model, args.out, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
