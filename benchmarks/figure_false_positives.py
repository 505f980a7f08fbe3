"""Draw docs/false_positives_betagal.png: what a model picks that the labels do not have, beside what they do.

    python benchmarks/figure_false_positives.py [--micrographs IMG ...] [--model ONNX] [--n 30] [--out PNG]

Defaults: the 4 held-out EMPIAR-10017 beta-gal micrographs (``tools.general_model.held_out_names``;
no model of the recipe trained on them) and the bundled general model. Every micrograph is picked
through ``epick.runtime.Picker`` at the model's default threshold and matched to its STAR truth
(``benchmarks/figure_picks.pick_and_match``: box IoU >= 0.5, greedy by score). The sheet shows
crops of the network image (what the model saw), one particle diameter and a half across: the
``--n`` highest-scoring false positives, ``--n`` true positives drawn at random (seed 0) and ``--n``
missed true particles drawn at random. If the top false positives look like the true positives, the
labels miss particles, and AP against them is bounded below 1 for any picker.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from figure_picks import REPO, betagal_dir, pick_and_match  # noqa: E402

DEFAULT_MODEL = REPO / "runtime" / "models" / "general.onnx"
DEFAULT_OUT = REPO / "docs" / "false_positives_betagal.png"
PER_ROW = 10


def crops(image: np.ndarray, transform, x: np.ndarray, y: np.ndarray, half: int) -> list[np.ndarray]:
    """Square crops (2 * half px, network image) centred on original-pixel positions (x, y), edge-padded."""
    u, v = transform.to_network(np.asarray(x, float), np.asarray(y, float))
    padded = np.pad(np.asarray(image), half, mode="edge")
    return [padded[int(round(b)):int(round(b)) + 2 * half, int(round(a)):int(round(a)) + 2 * half]
            for a, b in zip(u, v)]


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


def draw(found: dict, n: int, threshold: float, model: Path, out: Path, what: str, dpi: int = 110) -> Path:
    """Three labelled blocks of crops (top false positives, random true positives, random misses); atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from epick.runtime.io.atomic import atomic_path

    rng = np.random.default_rng(0)
    fp = sorted(found["fp"], key=lambda t: -t[0])[:n]
    blocks = [(fp, f"{len(fp)} highest-scoring false positives (score {fp[-1][0]:.2f}-{fp[0][0]:.2f})" if fp else
               "no false positives")]
    for kind, label in (("tp", "true positives"), ("fn", "missed true particles")):
        pool = found[kind]
        pick = [pool[i] for i in rng.choice(len(pool), min(n, len(pool)), replace=False)] if pool else []
        blocks.append((pick, f"{len(pick)} {label}, drawn at random (of {len(pool)})"))
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
    parser.add_argument("--micrographs", type=Path, nargs="+", default=None,
                        help="default: the held-out beta-gal micrographs of the shared data (STAR truth beside each)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--n", type=int, default=30, help="crops per block")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    what = f"{len(args.micrographs)} micrographs" if args.micrographs else "held-out beta-gal micrographs"
    if args.micrographs is None:
        sys.path.insert(0, str(REPO))
        from tools.general_model import held_out_names

        args.micrographs = [betagal_dir() / f"{stem}.jpg" for stem in held_out_names("betagal")]
    found, threshold = collect(args.micrographs, args.model, args.threads)
    draw(found, args.n, threshold, args.model, args.out, what)
    print(f"{len(found['fp'])} false positives, {len(found['tp'])} true positives, {len(found['fn'])} missed; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
