"""Draw docs/large_particles_betagal.png: the general model on real particles too large for its width.

    python benchmarks/figure_network_width.py [--model ONNX] [--side 1024] [--width 480] [--out PNG]

A ``--side`` px square tile from the centre of the first held-out beta-gal micrograph
(4096 px wide, particles 108 px; never trained on by the bundled model), picked as a micrograph of
its own, so its particles span 108 x 1024 / SIDE px at the model's 1024-px width (SIDE 1024: 108 px,
beyond the 64 px it learnt; the situation of a binned micrograph of large particles). Two panels,
as ``epick pick`` gives them at the model's threshold: without a diameter (fixed width) and with
``--diameter 108`` (resampled so that the particles span 32 px). True positives, false positives and
missed labels in ``figure_picks``' colours (box IoU >= 0.5 at 108 px); each title has AP, precision
and recall, and the legend the counts. Labels within half a diameter of the tile's border and picks
there are left out, as in ``bench_particle_size.py --real-tiles``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_particle_size import away_from_border, network_size  # noqa: E402
from figure_add_sample import _fmt, draw  # noqa: E402
from figure_picks import REPO, draw_matched, held_out_micrographs  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "large_particles_betagal.png"


def tile_and_truth(side: int):
    """(centre tile image, truth Picks in tile pixels, diameter) of the first held-out beta-gal micrograph."""
    from epick.runtime.io.coordinates import read_picks
    from epick.runtime.io.micrograph import read_micrograph
    from epick.runtime.picks import Picks

    micrograph = held_out_micrographs("betagal")[0]
    full = read_micrograph(micrograph).data
    y0, x0 = (full.shape[0] - side) // 2, (full.shape[1] - side) // 2
    data = full[y0:y0 + side, x0:x0 + side].astype(np.float32)
    (truth,) = read_picks(micrograph.with_suffix(".star"))
    d = float(truth.diameter)
    x, y = truth.x - x0, truth.y - y0
    inside = away_from_border(x, y, side, d / 2)
    return data, Picks("tile", x[inside], y[inside], diameter=d), d


def panel(model: Path, data: np.ndarray, truth, diameter: float, given: float | None, width: int, threads: int):
    """Pick ``data`` (``given``: the --diameter, or None) and draw it; (image, metrics row, counts)."""
    from PIL import Image

    from epick.runtime import Picker
    from epick.runtime.evaluate import match, micrograph_metrics

    with Picker(str(model), threads=threads, diameter=given) as picker:
        [result] = list(picker.pick_many([data], keep_images=1))
        threshold = picker.threshold
    side = data.shape[1]
    p = result.picks
    keep = away_from_border(p.x, p.y, side, diameter / 2)
    result = SimpleNamespace(picks=p.subset(np.flatnonzero(keep)), image=result.image, transform=result.transform)
    m = match(result.picks, truth, diameter)
    row = micrograph_metrics(result.picks, truth, diameter)
    img, (tp, fp, fn) = draw_matched(result, truth, m, diameter)
    height = max(1, round(img.height * width / img.width))
    return img.resize((width, height), Image.LANCZOS), {**row, "threshold": threshold}, (len(tp), len(fp), len(fn))


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "runtime" / "models" / "general.onnx")
    parser.add_argument("--side", type=int, default=1024, help="tile side, original px")
    parser.add_argument("--width", type=int, default=480, help="panel width on the sheet, px")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    data, truth, diameter = tile_and_truth(args.side)
    labels = ["no --diameter", f"--diameter {diameter:g}"]
    line = []
    for label, given in zip(labels, (None, diameter)):
        img, row, counts = panel(args.model, data, truth, diameter, given, args.width, args.threads)
        line.append((img, row, counts))
        print(f"{label:<30} AP {_fmt(row['ap'], 3)}  TP {counts[0]} FP {counts[1]} FN {counts[2]}  "
              f"threshold {row['threshold']:g}")
    span = network_size(diameter, args.side)
    out = draw([line], labels, [f"particles {span:g} px at width 1024"], args.out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
