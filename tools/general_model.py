"""Recipe: train the general model (issue 16), checkpointed and resumable, and score it on real data.

    python -m tools.general_model sim     --work W                      # simulation only
    python -m tools.general_model shipped --work W [--leave-out SET]   # simulation + real sets
    python -m tools.general_model ceiling --work W --real SET          # label-ceiling probe
    python -m tools.general_model bundle  --work W --out runtime/models

``sim``: the narrow network (width 0.25; ``--width``) trained from scratch only on simulated micrographs
(``tools.general_data.simulated_samples``, recipes and counts ``--sim``): its AP on the real sets is the
sim-to-real figure. ``shipped``: trained from scratch on the same simulated set plus the training
micrographs of the real sets (``held_out_names``: the rest of each set is held out and never
trained on); ``--leave-out SET`` drops that real set entirely (the honest generality figure). ``ceiling``: the
same network trained on every micrograph of one real set (``--real SET``, held-out ones included, no
simulation, no validation: the last epoch is kept) and then scored on those same micrographs, so its
AP is what the network reaches on labels it has seen: how high AP on those labels can go, not a
generalisation figure.
Every micrograph is resampled to width 1024 (the paper's fixed-width mode; ``--particle-px N``
trains the particle-size mode instead) and low-passed by a Gaussian of sigma ``--lowpass`` network
pixels (default ``LOWPASS``), then has a Gaussian background of sigma ``--highpass`` subtracted
(default ``HIGHPASS``); 0 turns either off. The default simulated set is ``SIM`` (12 beta-gal
look-alikes and 24 varied micrographs). The bundled model is ``shipped --seed 0`` (best validation AP
of seeds 0-2), bundled with ``BUNDLE_TEST_FLIPS``.
``--appearance`` and ``--zoom`` turn on the trainer's appearance jitter and zoom augmentation
(``TrainConfig.appearance`` / ``.zoom``); ``--test-flips`` averages the heatmap over mirror images
when picking (``NetworkConfig.test_flips``; set by ``bundle`` on the trained weights, default
``BUNDLE_TEST_FLIPS``, before the threshold is chosen). Both stages write ``W/<stage>.epick`` (+ ``.ckpt`` after
every epoch; rerunning resumes), score the model on the real micrographs with ``score_samples`` and
write ``W/<stage>.json``. ``bundle`` chooses the default threshold on the stage's validation
micrographs, exports ONNX and copies both model files into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

# held-out micrographs of each real set, never trained on by any stage: the last N by name (for
# EMPIAR-10017 the same 4 the bundled betagal model held out)
N_HELD_OUT = {"betagal": 4, "empiar10947": 3}
# Filters of the general model's preprocessing (Gaussian sigmas, network px): the low-pass makes noisy
# raw-looking and denoised micrographs look alike, the background subtraction keeps ice gradients and
# carbon from setting the grey levels; together they let the model transfer to samples it never saw
LOWPASS = 2.0
HIGHPASS = 32.0
# simulated training micrographs per recipe (tools.general_data.RECIPES): with the filters, the varied
# set lifted the score on a real set left out of training (docs/GENERAL_MODEL.md, "How the recipe was chosen")
SIM = ("lookalike:12", "varied:24")
# the bundled model averages its heatmap over the image and its three mirror images when picking
BUNDLE_TEST_FLIPS = 4
# the default threshold is chosen on validation among multiples of this step
THRESHOLD_STEP = 0.01
# the bundled model, told the particle diameter, resamples micrographs whose particles would span more than
# MAX_PARTICLE_PX network pixels at width 1024 (above every size it trains on: simulated 16-64 px, the
# labelled EMPIAR-10947 disks 60 px) so that they span RESCALE_PX, the size of its look-alike simulations
# (PreprocessParams.max_particle_px / rescale_px; measured: benchmarks/bench_particle_size.py)
MAX_PARTICLE_PX = 64.0
RESCALE_PX = 32.0


def held_out_names(name: str) -> list[str]:
    """Stems of the held-out micrographs of real set ``name``."""
    from tools.general_data import REAL_SETS, shared_data

    stems = sorted(p.stem for p in (shared_data() / REAL_SETS[name]).iterdir() if p.suffix == ".star")
    return stems[-N_HELD_OUT[name]:]


def params(particle_px: float = 0.0, lowpass: float = LOWPASS, highpass: float = HIGHPASS):
    """The general model's preprocessing: width 1024, or the particle-size mode (``particle_px`` > 0);
    ``lowpass``: Gaussian sigma, ``highpass``: sigma of the Gaussian background subtracted, both in
    network pixels (0: none)."""
    from epick.runtime.preprocess import PreprocessParams

    return PreprocessParams(particle_px=particle_px, lowpass=lowpass, highpass=highpass)


def sim_cache(work: Path, n: int, seed: int, recipe: str, prep) -> list:
    """``n`` simulated micrographs of ``recipe`` (a ``tools.general_data.RECIPES`` name), simulated once
    and cached in ``work`` (npz, no pickle)."""
    from epick.trainer.data import Sample
    from tools.general_data import RECIPES, simulated_samples

    path = work / (f"sim_{recipe}_{n}_{seed}_p{prep.particle_px:g}" + (f"_lp{prep.lowpass:g}" if prep.lowpass else "")
                   + (f"_hp{prep.highpass:g}" if prep.highpass else "") + ".npz")
    if path.is_file():
        z = np.load(path)
        meta = json.loads(str(z["meta"]))
        return [Sample(m["name"], m["dataset"], z[f"img{i}"], z[f"pts{i}"], diameter=m["diameter"],
                       scale=m["scale"]) for i, m in enumerate(meta)]
    samples = simulated_samples(n, prep, seed=seed, recipe=RECIPES[recipe], prefix=f"{recipe}{seed}_")
    arrays = {f"img{i}": s.image for i, s in enumerate(samples)} | {f"pts{i}": s.points for i, s in enumerate(samples)}
    meta = [{"name": s.name, "dataset": s.dataset, "diameter": s.diameter, "scale": s.scale} for s in samples]
    np.savez(path, meta=json.dumps(meta), **arrays)
    return samples


def real_split(name: str, held_out: bool, prep) -> list:
    """Training (held_out False) or held-out micrographs of a real set."""
    from tools.general_data import real_samples

    held = set(held_out_names(name))
    return [s for s in real_samples(name, prep) if (s.name in held) == held_out]


def training_samples(work: Path, record: dict, prep) -> list:
    """The simulated sets plus the real training micrographs that ``record`` (a stage's JSON) names."""
    samples = []
    for recipe, n in record["sim"].items():
        samples += sim_cache(work, n, record["sim_seed"], recipe, prep)
    for real in record["real_sets"]:
        if record.get("every_micrograph"):
            from tools.general_data import real_samples
            samples += real_samples(real, prep)
        else:
            samples += real_split(real, False, prep)
    return samples


def score_all(network, prep, leave_out: str | None = None) -> dict:
    """Scores on every real set: all micrographs, and the held-out ones only."""
    from tools.general_data import REAL_SETS, real_samples, score_samples

    out = {}
    for name in REAL_SETS:
        every = real_samples(name, prep)
        names = set(held_out_names(name))
        held = [s for s in every if s.name in names]
        out[name] = {"all": score_samples(network, every), "held_out": score_samples(network, held),
                     "left_out_of_training": name == leave_out}
    return out


def choose_threshold(network, samples, step: float = THRESHOLD_STEP) -> tuple[float, dict]:
    """The score threshold (a multiple of ``step`` in [0.05, 0.95]) with the best mean F1 over the
    datasets of the validation ``samples``."""
    from tools.general_data import score_samples

    grid = np.round(np.arange(0.05, 0.95 + step / 2, step), 4)
    per = {name: score_samples(network, [s for s in samples if s.dataset == name], grid)
           for name in sorted({s.dataset for s in samples})}
    thresholds = list(next(iter(per.values()))["by_threshold"])
    mean_f1 = {t: float(np.mean([p["by_threshold"][t]["f1"] or 0.0 for p in per.values()])) for t in thresholds}
    best = max(mean_f1, key=mean_f1.get)
    return float(best), {"mean_f1": mean_f1, "datasets": sorted(per)}


def with_rescale(preprocess: dict) -> dict:
    """The bundled model's preprocessing: ``preprocess`` with MAX_PARTICLE_PX / RESCALE_PX set."""
    from epick.runtime.preprocess import PreprocessParams

    return PreprocessParams.from_dict({**preprocess, "max_particle_px": MAX_PARTICLE_PX,
                                       "rescale_px": RESCALE_PX}).to_dict()


def bundle(work: Path, stage: str, out_dir: Path, record: dict, test_flips: int = BUNDLE_TEST_FLIPS) -> dict:
    """Choose the default threshold on the stage's validation micrographs, store it in the model
    file with the large-particle rescaling (``with_rescale``), export ONNX, and copy both into
    ``out_dir`` (the package's bundled models); ``test_flips`` replaces the model's test-time flips
    first (same weights)."""
    import shutil
    from dataclasses import replace

    from epick.runtime.preprocess import PreprocessParams
    from epick.trainer.data import split_validation
    from epick.trainer.modelfile import read_model_file, save_model
    from .steps import epick

    model = read_model_file(work / f"{stage}.epick")
    model.network.config = replace(model.network.config, test_flips=test_flips)
    prep = PreprocessParams.from_dict(model.metadata["preprocess"])
    _, val = split_validation(training_samples(work, record, prep), record["config"]["val_fraction"],
                              record["config"]["seed"])
    threshold, how = choose_threshold(model.network, val)
    meta = dict(model.metadata, threshold=threshold, preprocess=with_rescale(model.metadata["preprocess"]))
    tuned = work / f"{stage}-bundled.epick"
    save_model(tuned, model.network, meta, model.exemplars)
    out_dir.mkdir(parents=True, exist_ok=True)
    epick("export", tuned, "--onnx", out_dir / "general.onnx")
    shutil.copyfile(tuned, out_dir / "general.epick")
    return {"threshold": threshold, "test_flips": model.network.config.test_flips, "validation": how,
            "validation_micrographs": [s.name for s in val]}


def _jittered(names: list[str] | None) -> tuple[str, ...]:
    """TrainConfig.appearance from --appearance: absent -> none, given empty -> all ("*")."""
    return () if names is None else (tuple(names) or ("*",))


def main(argv=None) -> int:
    """Run one stage; print the scores."""
    import torch

    from epick.trainer.modelfile import read_model_file
    from epick.trainer.train import TrainConfig, train_samples
    from tools.general_data import RECIPES

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=("sim", "shipped", "ceiling", "bundle"))
    ap.add_argument("--from-stage", default="shipped", help="bundle: the stage whose model is bundled")
    ap.add_argument("--out", type=Path, help="bundle: folder of the bundled models (runtime/models)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--sim", nargs="+", default=list(SIM), metavar="RECIPE:N",
                    help=f"simulated training micrographs per recipe ({', '.join(sorted(RECIPES))})")
    ap.add_argument("--sim-seed", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=4, help="random crops of each micrograph per epoch (0: tiles)")
    ap.add_argument("--crop", type=int, default=256, help="side of the training crops, network pixels")
    ap.add_argument("--batch-size", type=int, default=4, help="crops per optimiser step")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-steps", type=int, nargs="*", default=None, help="epochs where lr drops 10x")
    ap.add_argument("--val-fraction", type=float, default=0.17)
    ap.add_argument("--particle-px", type=float, default=0.0, help="particle-size mode (0: width 1024)")
    ap.add_argument("--lowpass", type=float, default=LOWPASS, help="Gaussian low-pass sigma, network pixels (0: none)")
    ap.add_argument("--highpass", type=float, default=HIGHPASS,
                    help="sigma of the Gaussian background subtracted, network pixels (0: none)")
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--leave-out", choices=("betagal", "empiar10947"), help="shipped: train without this real set")
    ap.add_argument("--real", choices=("betagal", "empiar10947"), help="ceiling: the real set trained and scored on")
    ap.add_argument("--appearance", nargs="*", default=None, metavar="DATASET",
                    help="blur / noise / grey-level jitter of the training crops of these datasets (sim, betagal, "
                         "empiar10947; none named: all)")
    ap.add_argument("--zoom", type=float, nargs=2, default=(1.0, 1.0), metavar=("LOW", "HIGH"),
                    help="training crops rescaled by a log-uniform factor in [LOW, HIGH] (particle sizes)")
    ap.add_argument("--test-flips", type=int, choices=(1, 2, 4), default=None,
                    help="heatmap averaged over this many mirror images when picking (training: default 1; "
                         f"bundle: default {BUNDLE_TEST_FLIPS})")
    ap.add_argument("--ema", type=float, default=0.0, help="decay per step of the weight average kept (0: none)")
    ap.add_argument("--grad-clip", type=float, default=0.0,
                    help="maximum global L2 norm of the gradients per optimiser step (0: no clipping)")
    ap.add_argument("--width", type=float, default=0.25, help="channel multiplier of the DLA-34 (1: full width)")
    ap.add_argument("--tag", default="", help="suffix of the output names")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.stage == "bundle":
        record = json.loads((args.work / f"{args.from_stage}.json").read_text())
        done = bundle(args.work, args.from_stage, args.out, record, args.test_flips or BUNDLE_TEST_FLIPS)
        record["bundle"] = done
        (args.work / f"{args.from_stage}.json").write_text(json.dumps(record, indent=1, default=str))
        print(f"default threshold {done['threshold']:g} (best mean F1 on {len(done['validation_micrographs'])} "
              f"validation micrographs), test flips {done['test_flips']}; bundled into {args.out}")
        return 0
    ceiling = args.stage == "ceiling"
    if ceiling != (args.real is not None) or (ceiling and args.leave_out):
        ap.error("the ceiling stage takes --real SET and no --leave-out, the other stages no --real: "
                 "python -m tools.general_model ceiling --work W --real betagal")
    name = (args.stage + (f"-{args.real}" if ceiling else "") + (f"-no-{args.leave_out}" if args.leave_out else "")
            + args.tag)
    prep = params(args.particle_px, args.lowpass, args.highpass)
    sim = {} if ceiling else {recipe: int(n) for recipe, n in (spec.split(":") for spec in args.sim)}
    if not set(sim) <= set(RECIPES):
        ap.error(f"--sim: recipes are {', '.join(sorted(RECIPES))}")
    real_sets = [args.real] if ceiling else [r for r in N_HELD_OUT if args.stage == "shipped" and r != args.leave_out]
    record = {"stage": args.stage, "leave_out": args.leave_out, "sim": sim, "sim_seed": args.sim_seed,
              "real_sets": real_sets, "every_micrograph": ceiling}
    t0 = time.perf_counter()
    samples = training_samples(args.work, record, prep)
    t_data = time.perf_counter() - t0
    config = TrainConfig(mode="joint", epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         lr_steps=tuple(args.lr_steps) if args.lr_steps is not None else None,
                         crop=args.crop, repeats=args.repeats, val_fraction=0.0 if ceiling else args.val_fraction,
                         seed=args.seed,
                         width=args.width, particle_px=args.particle_px, lowpass=args.lowpass, highpass=args.highpass,
                         appearance=_jittered(args.appearance), test_flips=args.test_flips or 1, ema=args.ema,
                         grad_clip=args.grad_clip, zoom=tuple(args.zoom),
                         progress=True)
    out = args.work / f"{name}.epick"
    t0 = time.perf_counter()
    path, result = train_samples(samples, config, out, checkpoint=out.with_name(out.name + ".ckpt"), resume=True)
    t_train = time.perf_counter() - t0
    model = read_model_file(path)
    scores = score_all(model.network, prep, args.leave_out)
    record |= {"model": str(path), "config": asdict(config), "datasets": sorted({s.dataset for s in samples}),
               "n_train_micrographs": len(samples), "seconds": {"data": t_data, "train": t_train},
               "best_epoch": result.best_epoch + 1, "val_ap": result.best_ap, "log": result.log, "scores": scores,
               "held_out": {k: held_out_names(k) for k in N_HELD_OUT}}
    (args.work / f"{name}.json").write_text(json.dumps(record, indent=1, default=str))
    for real, s in scores.items():
        a, h = s["all"], s["held_out"]
        seen = ceiling and real == args.real   # its held-out micrographs were trained on too
        tail = " (every micrograph trained on)" if seen else f" | held-out: AP {h['ap']:.3f} best F1 {h['best_f1']:.3f}"
        print(f"{real:<12} all: AP {a['ap']:.3f} AR {a['ar']:.3f} best F1 {a['best_f1']:.3f} @ {a['best_threshold']:g}"
              + tail)
    print(f"train {t_train / 60:.1f} min; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
