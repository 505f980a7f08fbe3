"""Draw docs/false_positives_<set>.png: what a model picks that the labels do not have, beside what they do.

    python benchmarks/figure_false_positives.py [--set betagal|empiar10947 | --micrographs IMG ...]
                                                [--model ONNX] [--n 30] [--out PNG]

Defaults: the held-out micrographs of ``--set`` (default ``betagal``: the 4 held-out EMPIAR-10017
micrographs; ``empiar10947``: its 3; ``tools.general_model.held_out_names``, no model of the recipe
trained on them) and the bundled general model. Every micrograph is picked
through ``epick.runtime.Picker`` at the model's default threshold and matched to its STAR truth
(``benchmarks/figure_picks.pick_and_match``: box IoU >= 0.5, greedy by score). The sheet shows
crops of the network image (what the model saw), one particle diameter and a half across: the
``--n`` highest-scoring false positives, ``--n`` true positives drawn at random (seed 0) and ``--n``
missed true particles drawn at random. If the top false positives look like the true positives, the
labels miss particles, and AP against them is bounded below 1 for any picker. Each block's title
also gives its centre contrast (``centre_contrast``, over all its crops, not only those drawn): how
much darker than its surroundings the centre of the average crop is; ~0 where nothing is centred.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from figure_picks import REPO, held_out_micrographs, pick_and_match  # noqa: E402

DEFAULT_MODEL = REPO / "runtime" / "models" / "general.onnx"
PER_ROW = 10
CENTRE_RADIUS = 0.15   # x the particle diameter: the disk whose darkness centre_contrast measures


def crops(image: np.ndarray, transform, x: np.ndarray, y: np.ndarray, half: int) -> list[np.ndarray]:
    """Square crops (2 * half px, network image) centred on original-pixel positions (x, y), edge-padded."""
    u, v = transform.to_network(np.asarray(x, float), np.asarray(y, float))
    padded = np.pad(np.asarray(image), half, mode="edge")
    return [padded[int(round(b)):int(round(b)) + 2 * half, int(round(a)):int(round(a)) + 2 * half]
            for a, b in zip(u, v)]


def centre_contrast(tiles: list[np.ndarray]) -> float | None:
    """Crop mean minus the mean of the disk of radius CENTRE_RADIUS diameters at the centre, in units of
    the crop's standard deviation, averaged over ``tiles`` (crops 1.5 diameters across): > 0 for dark centres."""
    values, disks = [], {}
    for crop in tiles:
        c = np.asarray(crop, np.float64)
        if c.shape not in disks:   # one mask per crop shape (all crops of a sheet share it)
            h, w = c.shape
            yy, xx = np.mgrid[:h, :w]
            disks[c.shape] = np.hypot(xx - (w - 1) / 2, yy - (h - 1) / 2) <= CENTRE_RADIUS * w / 1.5
        disk = disks[c.shape]
        if c.std() > 0:
            values.append((c.mean() - c[disk].mean()) / c.std())
    return float(np.mean(values)) if values else None


def block_contrast(found: dict) -> dict:
    """``centre_contrast`` of every kind's crops (all of them, not only those drawn)."""
    return {k: centre_contrast([c for _, c in v]) for k, v in found.items()}


def collect(micrographs: list[Path], model: Path, threads: int) -> tuple[dict, float]:
    """Per kind (fp, tp, fn): lists of (score, crop), crops 1.5 diameters across; the picker's threshold."""
    found: dict[str, list] = {"fp": [], "tp": [], "fn": []}
    threshold = 0.0
    for path in micrographs:
        result, truth, m, _, threshold, diameter = pick_and_match(path, path.with_suffix(".star"), model, threads)
        tr, picks = result.transform, result.picks
        half = int(round(0.75 * diameter / tr.scale_x))
        for kind, sel, src in (("fp", m.pick_to_truth < 0, picks), ("tp", m.pick_to_truth >= 0, picks),
                               ("fn", m.truth_to_pick < 0, truth)):
            idx = np.flatnonzero(sel)
            scores = src.score[idx] if src.score is not None else np.ones(idx.size)
            found[kind] += list(zip(scores, crops(result.image, tr, src.x[idx], src.y[idx], half)))
    return found, threshold


def draw(found: dict, n: int, threshold: float, model: Path, out: Path, what: str, dpi: int = 110,
         contrast: dict | None = None) -> Path:
    """Three labelled blocks of crops (top false positives, random true positives, random misses), titled with
    ``contrast`` (``block_contrast`` of ``found``, computed here when None); atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from epick.runtime.io.atomic import atomic_path

    rng = np.random.default_rng(0)
    fp = sorted(found["fp"], key=lambda t: -t[0])[:n]
    contrast = contrast if contrast is not None else block_contrast(found)
    dark = lambda k: f"; centre {contrast[k]:+.2f} sd over all {len(found[k])}" if contrast[k] is not None else ""  # noqa: E731
    blocks = [(fp, f"{len(fp)} highest-scoring false positives (score {fp[-1][0]:.2f}-{fp[0][0]:.2f}){dark('fp')}"
               if fp else "no false positives")]
    for kind, label in (("tp", "true positives"), ("fn", "missed true particles")):
        pool = found[kind]
        pick = [pool[i] for i in rng.choice(len(pool), min(n, len(pool)), replace=False)] if pool else []
        blocks.append((pick, f"{len(pick)} {label}, drawn at random{dark(kind)}"))
    rows = sum(max(1, -(-len(b) // PER_ROW)) for b, _ in blocks)
    fig, axes = plt.subplots(rows, PER_ROW, figsize=(PER_ROW * 0.9, rows * 0.9 + 0.9), dpi=dpi, squeeze=False)
    r = 0
    for items, title in blocks:
        n_rows = max(1, -(-len(items) // PER_ROW))
        axes[r, 0].set_title(title, loc="left", fontsize=8, x=0.0)
        for k in range(n_rows * PER_ROW):
            ax = axes[r + k // PER_ROW, k % PER_ROW]
            ax.set_axis_off()
            if k < len(items):
                ax.imshow(items[k][1], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        r += n_rows
    fig.suptitle(f"{model.name} at its default threshold {threshold:g}: {what}", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.5 / (rows * 0.9 + 0.9), wspace=0.05, hspace=0.35)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("betagal", "empiar10947"), default="betagal",
                        help="real set of the shared data whose held-out micrographs are drawn (default betagal)")
    parser.add_argument("--micrographs", type=Path, nargs="+", default=None,
                        help="these micrographs instead (STAR truth beside each)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--n", type=int, default=30, help="crops per block")
    parser.add_argument("--out", type=Path, default=None, help="default docs/false_positives_<set>.png")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    what = f"{len(args.micrographs)} micrographs" if args.micrographs else f"held-out {args.set} micrographs"
    out = args.out or REPO / "docs" / f"false_positives_{args.set}.png"
    if args.micrographs is None:
        args.micrographs = held_out_micrographs(args.set)
    found, threshold = collect(args.micrographs, args.model, args.threads)
    contrast = block_contrast(found)
    draw(found, args.n, threshold, args.model, out, what, contrast=contrast)
    print("; ".join(f"{len(found[k])} {label} (centre contrast {contrast[k]:+.2f} sd)" if contrast[k] is not None
                    else f"0 {label}" for k, label in (("fp", "false positives"), ("tp", "true positives"),
                                                       ("fn", "missed"))) + f"; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
