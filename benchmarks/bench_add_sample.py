""""Add my sample": a new real sample learned from a few labelled micrographs with `epick train`,
by continual learning and by fine-tuning from the same general model; what each gives (issue 16).

For each mode the command a user runs is timed::

    epick train --mode continual --model MODEL --data TRAIN_MICS TRAIN_MICS NEW -o OUT.epick ...
    epick train --mode finetune  --model MODEL --data ...

with the schedule the bundled general model's catalogue entry gives for adding a sample to it
(`epick models`; what `epick train --model general` uses unless told otherwise), or --epochs / --lr.

then the result is scored (the project's evaluate, box IoU >= 0.5) on:
- NEW: the held-out micrographs of the new real set (never trained on);
- OLD: what the general model knew: the held-out micrographs of the real sets it was trained on
  (``--old``) and fresh simulated micrographs of its simulation recipe (a seed no model trained on).
The general model itself is scored the same way first (the "before" row), and ``--joint`` (a model
trained jointly on everything, the reference continual learning is measured against) is scored too.

    python benchmarks/bench_add_sample.py --model W/shipped-no-empiar10947.epick --old betagal \
        --new empiar10947 --joint W/shipped.epick
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tools/ beside the packages
from _report import Report  # noqa: E402


def link_training_set(name: str, held_out: list[str], folder: Path) -> Path:
    """Symlink the training micrographs (+ STAR) of real set ``name`` into ``folder``."""
    from tools.general_data import REAL_SETS, shared_data

    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((shared_data() / REAL_SETS[name]).iterdir()):
        if path.stem not in held_out and path.suffix.lower() in (".png", ".jpg", ".star"):
            (folder / path.name).symlink_to(path)
    return folder


def main(argv=None) -> int:
    """Run both modes, print the table, write the JSON."""
    import torch

    from epick.runtime.bundled import as_options, default_model
    from epick.runtime.preprocess import PreprocessParams
    from tools.general_data import real_samples, score_samples, simulated_samples
    from epick.trainer.modelfile import read_model_file
    from tools.general_model import held_out_names
    from tools.steps import epick

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="the general model (.epick)")
    ap.add_argument("--new", default="empiar10947", choices=("betagal", "empiar10947"))
    ap.add_argument("--old", nargs="*", default=["betagal"], choices=("betagal", "empiar10947"),
                    help="real sets the model was trained on (their held-out micrographs are the OLD score)")
    ap.add_argument("--joint", type=Path, default=None, help="a model trained jointly on old + new (scored only)")
    schedule = dict(default_model().add_sample)   # epick train option -> value
    ap.add_argument("--epochs", type=int, default=schedule["epochs"])
    ap.add_argument("--lr", type=float, default=schedule["lr"])
    ap.add_argument("--modes", nargs="+", default=["continual", "finetune"])
    ap.add_argument("--seed", type=int, default=0, help="training seed of both modes (epick train --seed)")
    ap.add_argument("--exemplar-passes", type=int, default=0,
                    help="continual: epick train --exemplar-passes (0, its default: the exemplars' equal share)")
    ap.add_argument("--n-sim", type=int, default=8, help="fresh simulated micrographs for the OLD score")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args(argv)
    schedule.update(epochs=args.epochs, lr=args.lr)
    torch.set_num_threads(2)
    work = args.work or Path(tempfile.mkdtemp(prefix="epick-add-"))
    held = held_out_names(args.new)
    train_dir = link_training_set(args.new, held, work / "train")
    params = PreprocessParams.from_dict(read_model_file(args.model).metadata["preprocess"])
    tests = {"new": [s for s in real_samples(args.new, params) if s.name in held],
             "old_real": [s for name in args.old for s in real_samples(name, params, names=held_out_names(name))],
             "old_sim": simulated_samples(args.n_sim, params, seed=987, progress=False)}

    def scores(path: Path) -> dict:
        net = read_model_file(path).network
        return {k: score_samples(net, v) for k, v in tests.items()}

    report = Report("add_sample", params={"model": str(args.model), "new": args.new, "old": args.old,
                                          "joint": str(args.joint), "epochs": args.epochs, "lr": args.lr, "seed": args.seed,
                                          "schedule": schedule, "exemplar_passes": args.exemplar_passes,
                                          "held_out": held, "n_train": len(list(train_dir.glob("*.star")))})
    rows = {"before": scores(args.model)}
    if args.joint is not None:
        rows["joint"] = scores(args.joint)
    options = as_options(schedule)
    for mode in args.modes:
        out = work / f"{mode}.epick"
        t0 = time.perf_counter()
        epick("train", "--mode", mode, "--model", args.model, "--data", train_dir, train_dir, args.new,
              "-o", out, *options, "--seed", args.seed, "--exemplar-passes", args.exemplar_passes, "--quiet")
        report.add(f"epick train --mode {mode}", time.perf_counter() - t0)
        rows[mode] = scores(out)
    report.add("score", 0.0, rows=rows)
    old = "AP old " + "+".join(args.old)
    print(f"\n{'model':<12} {'AP new':>7} {old:>20} {'AP old sim':>11} {'forgot (real)':>14}")
    for name, r in rows.items():
        forgot = rows["before"]["old_real"]["ap"] - r["old_real"]["ap"]
        print(f"{name:<12} {r['new']['ap']:7.3f} {r['old_real']['ap']:20.3f} {r['old_sim']['ap']:11.3f} {forgot:14.3f}")
    report.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
