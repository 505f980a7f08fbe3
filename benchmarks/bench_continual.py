"""Benchmark of ACCURACY: the EPicker continual-learning experiment, reproduced on simulated particles.

    python benchmarks/bench_continual.py [--datasets 4] [--epochs 20] [--target-width 256] ...

Data: the first K particle datasets of the simulator's ``continual10`` suite (ribosome, proteasome,
apoferritin, toxin, ...), each ``--n-train`` training and ``--n-test`` held-out test micrographs,
simulated once into ``--data-dir`` (reused when already there; the suite seed fixes every pixel).
By default all datasets share one pixel size (``--pixel-size 2.2`` A/px), so particle sizes in
pixels differ as their physical sizes do (as between real data sets); ``--pixel-size 0`` keeps the
suite's own pixel sizes, which make every particle about the same size in pixels.

Methods, over the sequence of datasets 1..K (step k = after learning dataset k):
- step 1 of every method is the same model: joint training on dataset 1 from random weights;
- (a) joint:     from scratch on datasets 1..k at once (the upper bound), at every step k >= 2
                 (``--joint-last-only``: only at step K);
- (b) finetune:  step k starts from the step k-1 model and trains on dataset k alone, L_OD;
- (c) continual: step k starts from the step k-1 model; exemplars of old datasets, distillation
                 from the frozen old model and parameter regularisation (``epick.trainer``).

After each step: AP/AR on the TEST micrographs of every dataset learned so far, and, before
learning dataset k+1, its complexity C = 100 / 10^(AP+AR) under the current model. Forgetting rate
of a step (``epick.runtime.evaluate.forgetting``): mean AP (and AR) drop over the old datasets from
the previous step's model to this step's model; the method's forgetting rate is the mean over steps.

Evaluation is in network pixels with the trainer's public ``evaluate_samples`` (the runtime's
peak decoding and ``evaluate``; IoU >= 0.5 of boxes of the particle diameter). Training uses one
torch thread (the CPU is shared). Prints an accuracy table and a timing table; writes
``bench_results/continual-<stamp>.json`` through ``benchmarks/_report.py`` (each step is a timed
case whose notes hold every raw number) and, unless ``--no-figure``, ``docs/continual_forgetting.png``
with ``benchmarks/figure_continual.py``.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core per library, before numpy/torch load

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import asdict  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, timed  # noqa: E402

METHODS = ("joint", "finetune", "continual")
PACKAGES = ("numpy", "scipy", "torch", "safetensors", "numba", "epick")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line settings of the experiment (sizes, epochs, network width, data folder)."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=4, help="K: number of particle datasets in the sequence")
    parser.add_argument("--names", nargs="*", help="dataset names of continual10 in learning order (default: first K)")
    parser.add_argument("--shape", type=int, default=1024, help="simulated micrograph side, original pixels")
    parser.add_argument("--n-train", type=int, default=10, help="training micrographs per dataset")
    parser.add_argument("--n-test", type=int, default=5, help="held-out test micrographs per dataset")
    parser.add_argument("--suite-seed", type=int, default=0)
    parser.add_argument("--pixel-size", type=float, default=2.2,
                        help="one pixel size (A/px) for every dataset, so particle sizes in pixels follow their "
                             "physical diameters as in real data (ribosome 131 px, apoferritin 66 px at 2.2 A and "
                             "1024 px); 0 keeps the suite's per-dataset pixel size (every particle ~80-100 px)")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "epick-continual-data",
                        help="where the simulated suite is written (or reused)")
    parser.add_argument("--target-width", type=int, default=256, help="preprocessed micrograph width, px")
    parser.add_argument("--width", type=float, default=0.25, help="network channel multiplier (0.25: narrow)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of every training step")
    parser.add_argument("--crop", type=int, default=128, help="training crop, network px (multiple of 32)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="random crops per training micrograph per epoch")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--exemplar-passes", type=int, default=0,
                        help="continual: passes over the exemplars per epoch (0, the trainer's default: an equal "
                             "share; 1: the paper's single pass)")
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="training micrographs held out for best-epoch choice (the test set is never seen)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--joint-last-only", action="store_true",
                        help="train joint only on all K datasets (default: on datasets 1..k at every step k)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench_results/)")
    parser.add_argument("--figure", type=Path, default=None, help="figure path (default docs/continual_forgetting.png)")
    parser.add_argument("--no-figure", action="store_true")
    parser.add_argument("--progress", action="store_true", help="per-epoch progress bars of the trainer")
    return parser.parse_args(argv)


def dataset_names(args: argparse.Namespace) -> list[str]:
    """Names of the K particle datasets, in learning order."""
    from epick.simulator.suites import CONTINUAL10

    particles = [s.name for s in CONTINUAL10 if s.object == "particle"]
    names = list(args.names) if args.names else particles[:args.datasets]
    unknown = [n for n in names if n not in particles]
    if unknown or len(names) < 2:
        raise SystemExit(f"need at least two particle datasets of continual10 ({', '.join(particles)}); "
                         f"got {', '.join(names)}")
    return names


def ensure_suite(args: argparse.Namespace, names: list[str]) -> tuple[Path, float, bool]:
    """Simulate the datasets into a folder keyed by the settings, unless done; (folder, seconds, reused)."""
    size_key = f"{args.pixel_size:g}A" if args.pixel_size else "auto"
    folder = args.data_dir / f"continual10-{args.shape}px-{size_key}-s{args.suite_seed}-{args.n_train}+{args.n_test}"
    missing = [n for n in names if not (folder / n / "manifest.json").is_file()]
    if not missing:
        return folder, 0.0, True
    with timed() as t:
        if args.pixel_size:
            write_common_pixel_size(args, folder, missing)
        else:
            from epick.simulator.suites import write_suite

            # --only keeps each dataset's seed, so datasets added later match a full run
            write_suite("continual10", folder, shape=(args.shape, args.shape), seed=args.suite_seed,
                        n_train=args.n_train, n_test=args.n_test, only=missing)
    return folder, t.seconds, False


def write_common_pixel_size(args: argparse.Namespace, folder: Path, names: list[str]) -> None:
    """Write continual10 datasets ``names`` with one pixel size (``args.pixel_size`` A/px) for all.

    Each dataset keeps its suite seed (``write_suite``'s rule: suite seed * 100 + place in the
    suite) and its density/SNR ranges; only ``pixel_scale`` changes so that the automatic pixel
    size times the scale equals the common pixel size.
    """
    from dataclasses import replace

    from tqdm import tqdm

    from epick.simulator.micrograph import auto_pixel_size
    from epick.simulator.particles import particle_diameter_a
    from epick.simulator.suites import CONTINUAL10, write_dataset

    shape = (args.shape, args.shape)
    with tqdm(total=len(names) * (args.n_train + args.n_test), desc="simulate", unit="mic") as bar:
        for place, spec in enumerate(CONTINUAL10):
            if spec.name not in names:
                continue
            auto = auto_pixel_size(particle_diameter_a(spec.particle), shape, spec.object)
            spec = replace(spec, pixel_scale=args.pixel_size / auto)
            write_dataset(spec, folder, shape, args.n_train, args.n_test, args.suite_seed * 100 + place, bar)


def load_split(folder: Path, name: str, split: str, params) -> list:
    """Preprocessed samples of one split of one dataset (diameter from the manifest, original px)."""
    from epick.trainer.data import load_dataset

    manifest = json.loads((folder / name / "manifest.json").read_text())
    return load_dataset(folder / name / split, folder / name / split, params, dataset=name,
                        diameter=float(manifest["diameter_px"]), progress=False)


def train_config(args: argparse.Namespace, mode: str):
    """The trainer settings shared by every step (only the mode differs)."""
    from epick.trainer.train import TrainConfig

    return TrainConfig(mode=mode, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, crop=args.crop,
                       repeats=args.repeats, val_fraction=args.val_fraction, seed=args.seed, width=args.width,
                       target_width=args.target_width, exemplar_passes=args.exemplar_passes, progress=args.progress)


def train_step(args, mode: str, samples: list, out: Path, params, init=None):
    """Train one step with the trainer's public ``train_samples``; returns (ModelFile, FitResult)."""
    from epick.trainer.modelfile import read_model_file
    from epick.trainer.train import train_samples

    path, result = train_samples(samples, train_config(args, mode), out, init=init, preprocess=params.to_dict())
    return read_model_file(path), result


def metrics_of(network, test: dict[str, list], names: list[str]) -> dict[str, dict]:
    """AP, AR, precision, recall, F1, complexity and per-micrograph AP/recall on each named test set."""
    from epick.trainer.validate import evaluate_samples

    per = evaluate_samples(network, [s for n in names for s in test[n]])["datasets"]
    out = {}
    for name in names:
        m = per[name]
        out[name] = {k: m[k] for k in ("ap", "ar", "precision", "recall", "f1", "complexity", "tp", "fp", "fn")}
        out[name]["micrographs"] = {r["micrograph"]: {"ap": r["ap"], "recall": r["recall"]} for r in m["micrographs"]}
    return out


def step_forgetting(before: dict[str, dict], after: dict[str, dict]) -> dict | None:
    """Mean AP/AR drop over the datasets in ``before`` (None at step 1: nothing old)."""
    from epick.runtime.evaluate import forgetting

    return forgetting(before, after) if before else None


def run_sequence(args, method: str, base, names: list[str], train: dict, test: dict, params, work: Path,
                 report: Report, records: dict) -> None:
    """Steps 2..K of finetune or continual from the shared step-1 model; fills ``records[method]``."""
    model = base
    for k in range(1, len(names)):
        new = names[k]
        complexity_new = metrics_of(model.network, test, [new])[new]
        with timed() as t:
            model, fit = train_step(args, method, train[new], work / f"{method}-{k + 1}.epick", params, init=model)
        seen = names[:k + 1]
        record_step(report, records, method, k + 1, t.seconds, metrics_of(model.network, test, seen), fit,
                    complexity_new=complexity_new)


def record_step(report: Report, records: dict, method: str, step: int, seconds: float, metrics: dict, fit,
                complexity_new: dict | None = None, case: str | None = None) -> dict:
    """Store one step: metrics on seen datasets, forgetting vs the previous step, complexity, timing."""
    steps = records.setdefault(method, [])
    before = steps[-1]["metrics"] if steps else {}
    entry = {"step": step, "seconds": seconds, "metrics": metrics,
             "forgetting": step_forgetting(before, {n: metrics[n] for n in before}),
             "complexity_new": complexity_new, "best_epoch": fit.best_epoch + 1, "val_ap": fit.best_ap}
    steps.append(entry)
    report.add(case or f"{method} step {step}", seconds, **{k: v for k, v in entry.items() if k != "seconds"})
    seen = "  ".join(f"{n} {m['ap']:.3f}" for n, m in metrics.items())
    print(f"[{case or method + ' step ' + str(step)}] {seconds:.0f} s  AP: {seen}", flush=True)
    return entry


def run_joint(args, names, train, test, params, work, report, records) -> None:
    """Joint training from scratch on datasets 1..k (every k >= 2, or k = K with --joint-last-only)."""
    for k in range(2, len(names) + 1):
        if k < len(names) and args.joint_last_only:
            continue
        samples = [s for n in names[:k] for s in train[n]]
        with timed() as t:
            model, fit = train_step(args, "joint", samples, work / f"joint-{k}.epick", params)
        record_step(report, records, "joint", k, t.seconds, metrics_of(model.network, test, names[:k]), fit)


def summarise(records: dict, names: list[str]) -> dict:
    """Per method: mean forgetting rate over steps, final AP/AR per dataset, mean final AP."""
    out = {}
    for method, steps in records.items():
        drops = [s["forgetting"] for s in steps if s["forgetting"] is not None]
        last = steps[-1]
        out[method] = {
            "forgetting_ap": sum(d["ap"] for d in drops) / len(drops) if drops else None,
            "forgetting_ar": sum(d["ar"] for d in drops) / len(drops) if drops else None,
            "final_step": last["step"],
            "final_ap": {n: last["metrics"][n]["ap"] for n in last["metrics"]},
            "final_ar": {n: last["metrics"][n]["ar"] for n in last["metrics"]},
            "final_mean_ap": sum(m["ap"] for m in last["metrics"].values()) / len(last["metrics"]),
            "first_dataset_ap": {s["step"]: s["metrics"][names[0]]["ap"] for s in steps},
            "mean_seen_ap": {s["step"]: sum(m["ap"] for m in s["metrics"].values()) / len(s["metrics"])
                             for s in steps},
            "last_step_seconds": last["seconds"],
            "train_seconds": sum(s["seconds"] for s in steps),
        }
    return out


def _f(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def accuracy_table(records: dict, names: list[str]) -> str:
    """Plain-text table: per method and step, AP (AR) on each dataset, forgetting and next complexity."""
    head = ["method", "step"] + [f"AP/AR {n}" for n in names] + ["forget AP", "forget AR", "C(new)"]
    rows = [head]
    for method in METHODS:
        for s in records.get(method, []):
            cells = [f"{_f(s['metrics'][n]['ap'])}/{_f(s['metrics'][n]['ar'], '.2f')}" if n in s["metrics"] else ""
                     for n in names]
            fg = s["forgetting"] or {}
            cn = s["complexity_new"] or {}
            rows.append([method, str(s["step"]), *cells, _f(fg.get("ap")), _f(fg.get("ar")),
                         _f(cn.get("complexity"), ".1f")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def summary_table(summary: dict) -> str:
    """Plain-text table: per method the mean forgetting rate, mean final AP and training times (s)."""
    lines = [f"{'method':<10} {'forget AP':>9} {'forget AR':>9} {'final mean AP':>13} {'last step s':>11} "
             f"{'all steps s':>11}"]
    for method in METHODS:
        s = summary.get(method)
        if s:
            lines.append(f"{method:<10} {_f(s['forgetting_ap']):>9} {_f(s['forgetting_ar']):>9} "
                         f"{_f(s['final_mean_ap']):>13} {s['last_step_seconds']:>11.0f} {s['train_seconds']:>11.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the experiment, print the tables, write the JSON and the figure."""
    import torch

    from epick.runtime.preprocess import PreprocessParams

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    names = dataset_names(args)
    folder, sim_seconds, reused = ensure_suite(args, names)
    params = PreprocessParams(target_width=args.target_width)
    with timed() as t_load:
        train = {n: load_split(folder, n, "train", params) for n in names}
        test = {n: load_split(folder, n, "test", params) for n in names}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    report = Report("continual", params={**settings, "dataset_names": names, "data_folder": str(folder),
                                         "simulate_seconds": sim_seconds, "simulation_reused": reused,
                                         "load_seconds": t_load.seconds, "preprocess": params.to_dict(),
                                         "train_config": {k: v for k, v in asdict(train_config(args, "joint")).items() if k != "mode"},
                                         "diameter_network": {n: train[n][0].diameter for n in names}},
                    packages=PACKAGES)
    records: dict[str, list] = {}
    with tempfile.TemporaryDirectory(prefix="epick-continual-") as tmp:
        work = Path(tmp)
        with timed() as t:
            base, fit = train_step(args, "joint", train[names[0]], work / "step1.epick", params)
        base_entry = record_step(report, records, "joint", 1, t.seconds, metrics_of(base.network, test, names[:1]),
                                 fit, case=f"step 1: joint on {names[0]} (shared by all methods)")
        records["finetune"], records["continual"] = [dict(base_entry)], [dict(base_entry)]
        for method in ("finetune", "continual"):
            run_sequence(args, method, base, names, train, test, params, work, report, records)
        run_joint(args, names, train, test, params, work, report, records)
    summary = summarise(records, names)
    report.params["summary"] = summary
    print()
    print(f"continual learning on {len(names)} simulated datasets ({', '.join(names)}); "
          f"{args.n_train} train / {args.n_test} test micrographs of {args.shape}^2 px each, "
          f"network width {args.width}, input width {args.target_width} px, {args.epochs} epochs per step, "
          f"exemplar passes {args.exemplar_passes} (0: equal share)")
    print(accuracy_table(records, names))
    print()
    print(summary_table(summary))
    print()
    path = report.finish(args.out) if args.out else report.finish()
    if not args.no_figure:
        from figure_continual import draw_figure

        figure = draw_figure(path, args.figure) if args.figure else draw_figure(path)
        print(f"wrote {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
