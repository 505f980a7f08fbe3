"""Draw docs/continual_forgetting.png from a bench_continual JSON (the newest one by default).

    python benchmarks/figure_continual.py [bench_results/continual-STAMP.json] [--out docs/continual_forgetting.png]

Left panel: AP on the TEST micrographs of dataset 1 after each learning step, for joint training
(upper bound), sequential fine-tuning and continual learning. Right panel: mean AP over every
dataset learned so far. Joint training is drawn only at the steps where it was trained (step 1 is
the model all methods share). Needs matplotlib (``pip install 'epick[dev]'``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FIGURE = REPO / "docs" / "continual_forgetting.png"
STYLE = {"joint": ("tab:green", "s", "joint (upper bound)"), "finetune": ("tab:red", "o", "fine-tuning"),
         "continual": ("tab:blue", "^", "continual learning")}


def newest_result(folder: Path = REPO / "bench_results") -> Path:
    """The most recent ``continual-*.json`` in ``folder`` (stamps sort by time)."""
    found = sorted(folder.glob("continual-*.json"))
    if not found:
        raise SystemExit(f"no continual-*.json in {folder}; run benchmarks/bench_continual.py first")
    return found[-1]


def _series(per_step: dict) -> tuple[list[int], list[float]]:
    steps = sorted(int(k) for k in per_step)
    return steps, [per_step[str(k)] if str(k) in per_step else per_step[k] for k in steps]


def draw_figure(result: str | Path, out: str | Path = DEFAULT_FIGURE) -> Path:
    """Plot AP on dataset 1 and mean AP over seen datasets per step; write ``out`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from epick.runtime.io.atomic import atomic_path

    record = json.loads(Path(result).read_text())
    params = record["params"]
    summary, names = params["summary"], params["dataset_names"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, title in ((axes[0], "first_dataset_ap", f"AP on dataset 1 ({names[0]})"),
                           (axes[1], "mean_seen_ap", "mean AP over datasets learned so far")):
        for method, (color, marker, label) in STYLE.items():
            if method in summary:
                steps, values = _series(summary[method][key])
                ax.plot(steps, values, color=color, marker=marker, label=label,
                        linestyle=":" if method == "joint" and len(steps) < len(names) else "-")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step k (after learning dataset k)")
        ax.set_xticks(range(1, len(names) + 1),
                      [f"{k}\n{n}" for k, n in enumerate(names, start=1)], fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AP (test micrographs)")
    axes[0].legend(loc="best", fontsize=8)
    pixel = f"{params['pixel_size']:g} A/px" if params.get("pixel_size") else "suite pixel sizes"
    passes = params.get("exemplar_passes")   # absent in runs before the option: one pass
    share = ("equal exemplar share" if passes == 0 else
             f"{1 if passes is None else passes} exemplar pass{'es' if passes and passes > 1 else ''}/epoch")
    fig.suptitle(f"Simulated particles ({params['n_train']} train / {params['n_test']} test micrographs of "
                 f"{params['shape']} px, {pixel}), narrow network (width {params['width']}), input "
                 f"{params['target_width']} px, {params['epochs']} epochs/step, {share}, seed {params['seed']}, CPU",
                 fontsize=9)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


def main() -> int:
    """Draw the figure from the given or the newest result file."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", nargs="?", type=Path, help="bench_continual JSON (default: newest)")
    parser.add_argument("--out", type=Path, default=DEFAULT_FIGURE)
    args = parser.parse_args()
    print(f"wrote {draw_figure(args.result or newest_result(), args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
