"""Draw docs/add_sample_betagal.png: what continual learning keeps and fine-tuning forgets, as picks.

    python benchmarks/figure_add_sample.py --model LABEL=ONNX [LABEL=ONNX ...]
                                           [--micrographs IMG ...] [--width 480] [--out PNG]

One row per micrograph, one column per model (in the order given): each panel is the micrograph as
the model saw it (network image, 1024 px wide, shrunk to ``--width`` px for the sheet) with true
positives, false positives and missed labels drawn in ``figure_picks``' colours, at the model's own
threshold, and the panel's AP, precision and recall (box IoU >= 0.5 at the set's diameter). The
labels are the STAR file beside each micrograph. Default micrographs: the first held-out micrograph
of EMPIAR-10947 (the old sample) and of beta-gal (the new one), which no model of the recipe
trained on. The models come from ``bench_add_sample.py --work W`` (``W/continual.epick``,
``W/finetune.epick``) and the general model it started from, each exported with
``epick export M.epick --onnx M.onnx``.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from figure_picks import REPO, draw_matched, held_out_micrographs, legend_handles, pick_and_match  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "add_sample_betagal.png"
TITLE_IN = 0.42   # inches above each panel for its two-line title


def parse_model(text: str) -> tuple[str, Path]:
    """``LABEL=PATH`` -> (label, path); a bare path is labelled by its file name."""
    label, sep, path = text.partition("=")
    return (label, Path(path)) if sep else (Path(text).stem, Path(text))


def panel(micrograph: Path, model: Path, width: int, threads: int = 2):
    """Pick ``micrograph`` with ``model``; return (drawn image shrunk to ``width`` px, metrics row with the
    picker's ``threshold``, (TP, FP, FN) counts)."""
    from PIL import Image

    result, truth, m, row, threshold, diameter = pick_and_match(micrograph, micrograph.with_suffix(".star"),
                                                               model, threads)
    img, (tp, fp, fn) = draw_matched(result, truth, m, diameter)
    height = max(1, round(img.height * width / img.width))
    return img.resize((width, height), Image.LANCZOS), {**row, "threshold": threshold}, (len(tp), len(fp), len(fn))


def _fmt(value: float | None, digits: int) -> str:
    """A metric for a title; '-' where it is undefined (no picks: no precision)."""
    return "-" if value is None else f"{value:.{digits}f}"


def draw(panels: list[list[tuple]], labels: list[str], names: list[str], out: Path, dpi: int = 100) -> Path:
    """Lay out ``panels[row][col]`` = (image, row metrics, counts) with titles; write ``out`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from epick.runtime.io.atomic import atomic_path

    rows, cols = len(panels), len(labels)
    w_in = max(img.width for line in panels for img, _, _ in line) / dpi
    h_in = max(img.height for line in panels for img, _, _ in line) / dpi + TITLE_IN
    fig, axes = plt.subplots(rows, cols, figsize=(cols * w_in, rows * h_in), dpi=dpi, squeeze=False)
    for r, line in enumerate(panels):
        for c, (img, row, counts) in enumerate(line):
            ax = axes[r][c]
            ax.imshow(np.asarray(img), interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(f"{labels[c]}: {names[r]}\nAP {_fmt(row['ap'], 3)}  precision {_fmt(row['precision'], 2)}  "
                         f"recall {_fmt(row['recall'], 2)}  (threshold {row['threshold']:g})", fontsize=8)
            ax.legend(handles=legend_handles(*counts), loc="lower right", fontsize=6, framealpha=0.8)
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.005, top=1 - 0.6 * TITLE_IN / (rows * h_in),
                        wspace=0.02, hspace=TITLE_IN / (h_in - TITLE_IN))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    # the noisy micrographs make a full-colour PNG of several MB: 256 colours keep the picks' colours
    sheet = Image.open(buffer).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", required=True, type=parse_model, metavar="LABEL=ONNX",
                        help="the models, one column each, in this order")
    parser.add_argument("--micrographs", nargs="+", type=Path, default=None,
                        help="default: the first held-out micrograph of EMPIAR-10947 and of beta-gal")
    parser.add_argument("--width", type=int, default=480, help="panel width on the sheet, px")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    for _, path in args.model:
        if not path.is_file():
            parser.error(f"{path}: no such model (export a .epick with: epick export M.epick --onnx M.onnx)")
    micrographs = args.micrographs or [held_out_micrographs("empiar10947")[0], held_out_micrographs("betagal")[0]]
    panels = []
    for mic in micrographs:
        line = []
        for label, model in args.model:
            img, row, (tp, fp, fn) = panel(mic, model, args.width, args.threads)
            line.append((img, row, (tp, fp, fn)))
            print(f"{mic.name:<60} {label:<12} AP {_fmt(row['ap'], 3)}  TP {tp} FP {fp} FN {fn}  "
                  f"threshold {row['threshold']:g}")
        panels.append(line)
    names = [m.stem if len(m.stem) <= 28 else m.stem[:25] + "..." for m in micrographs]
    out = draw(panels, [label for label, _ in args.model], names, args.out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
