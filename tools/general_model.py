"""Recipe: train the general model (issue 16), checkpointed and resumable, and score it on real data.

    python -m tools.general_model sim     --work W [--n-sim 96 --epochs 4]
    python -m tools.general_model shipped --work W [--epochs 2] [--leave-out SET]

``sim``: a narrow (width 0.25) particle-size-mode model (particle_px 16, crops 128) trained only on simulated
micrographs (``tools.general_data.simulated_samples``): its AP on the real sets is the
sim-to-real figure. ``shipped``: continues from the sim model on the simulated set plus the
training micrographs of the real sets (``held_out_names``: the rest of each set is held out and
never trained on); ``--leave-out SET`` drops that real set entirely (the honest generality
figure). Both stages write ``W/<stage>.epick`` (+ ``.ckpt`` after every epoch; rerunning resumes),
score the model on the real micrographs with ``score_samples`` and write ``W/<stage>.json``.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

PARTICLE_PX = 24.0
CROP = 192
# held-out micrographs of each real set, never trained on by any stage: the last N by name (for
# EMPIAR-10017 the same 4 the bundled betagal model held out)
N_HELD_OUT = {"betagal": 4, "empiar10947": 3}


def held_out_names(name: str) -> list[str]:
    """Stems of the held-out micrographs of real set ``name``."""
    from tools.general_data import REAL_SETS, shared_data

    stems = sorted(p.stem for p in (shared_data() / REAL_SETS[name]).iterdir() if p.suffix == ".star")
    return stems[-N_HELD_OUT[name]:]


def params():
    """The general model's preprocessing: particle-size mode."""
    from epick.runtime.preprocess import PreprocessParams

    return PreprocessParams(particle_px=PARTICLE_PX)


def sim_cache(work: Path, n: int, seed: int):
    """The simulated training set, simulated once and cached in ``work`` (npz, no pickle)."""
    from epick.trainer.data import Sample
    from tools.general_data import simulated_samples

    path = work / f"sim_{n}_{seed}_p{PARTICLE_PX:g}.npz"
    if path.is_file():
        z = np.load(path)
        meta = json.loads(str(z["meta"]))
        return [Sample(m["name"], m["dataset"], z[f"img{i}"], z[f"pts{i}"], diameter=m["diameter"],
                       scale=m.get("scale", m.get("extra", {}).get("scale", 1.0))) for i, m in enumerate(meta)]
    samples = simulated_samples(n, params(), seed=seed)
    arrays = {f"img{i}": s.image for i, s in enumerate(samples)} | {f"pts{i}": s.points for i, s in enumerate(samples)}
    meta = [{"name": s.name, "dataset": s.dataset, "diameter": s.diameter, "scale": s.scale} for s in samples]
    np.savez(path, meta=json.dumps(meta), **arrays)
    return samples


def real_split(name: str, held_out: bool):
    """Training (held_out False) or held-out micrographs of a real set."""
    from tools.general_data import REAL_SETS, real_samples, shared_data

    stems = sorted(p.stem for p in (shared_data() / REAL_SETS[name]).iterdir() if p.suffix == ".star")
    held = held_out_names(name)
    return real_samples(name, params(), names=[s for s in stems if (s in held) == held_out])


def score_all(network, leave_out: str | None = None) -> dict:
    """Scores on every real set: all micrographs, and the held-out ones only."""
    from tools.general_data import REAL_SETS, real_samples, score_samples

    out = {}
    for name in REAL_SETS:
        every = real_samples(name, params())
        held = [s for s in every if s.name in held_out_names(name)]
        out[name] = {"all": score_samples(network, every), "held_out": score_samples(network, held),
                     "left_out_of_training": name == leave_out}
    return out


def choose_threshold(network, samples) -> tuple[float, dict]:
    """The score threshold with the best mean F1 over the datasets of the validation ``samples``."""
    from tools.general_data import score_samples

    per = {name: score_samples(network, [s for s in samples if s.dataset == name])
           for name in sorted({s.dataset for s in samples})}
    thresholds = list(next(iter(per.values()))["by_threshold"])
    mean_f1 = {t: float(np.mean([p["by_threshold"][t]["f1"] or 0.0 for p in per.values()])) for t in thresholds}
    best = max(mean_f1, key=mean_f1.get)
    return float(best), {"mean_f1": mean_f1, "datasets": sorted(per)}


def bundle(work: Path, stage: str, out_dir: Path, record: dict) -> dict:
    """Choose the default threshold on the stage's validation micrographs, store it in the model
    file, export ONNX, and copy both into ``out_dir`` (the package's bundled models)."""
    import shutil

    from epick.trainer.data import split_validation
    from epick.trainer.modelfile import read_model_file, save_model
    from .steps import epick

    model = read_model_file(work / f"{stage}.epick")
    samples = sim_cache(work, record["n_sim"], record["config"]["seed"])[:record.get("sim_keep") or None]
    for real in record["real_sets"]:
        samples += real_split(real, held_out=False)
    _, val = split_validation(samples, record["config"]["val_fraction"], record["config"]["seed"])
    threshold, how = choose_threshold(model.network, val)
    meta = dict(model.metadata, threshold=threshold)
    tuned = work / f"{stage}-bundled.epick"
    save_model(tuned, model.network, meta, model.exemplars)
    out_dir.mkdir(parents=True, exist_ok=True)
    epick("export", tuned, "--onnx", out_dir / "general.onnx")
    shutil.copyfile(tuned, out_dir / "general.epick")
    return {"threshold": threshold, "validation": how, "validation_micrographs": [s.name for s in val]}


def main(argv=None) -> int:
    """Run one stage; print the scores."""
    import torch

    from epick.trainer.modelfile import read_model_file
    from epick.trainer.train import TrainConfig, train_samples

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=("sim", "shipped", "bundle"))
    ap.add_argument("--from-stage", default="shipped", help="bundle: the stage whose model is bundled")
    ap.add_argument("--out", type=Path, help="bundle: folder of the bundled models (runtime/models)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--n-sim", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-steps", type=int, nargs="*", default=None, help="epochs where lr drops 10x")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sim-keep", type=int, default=None,
                    help="shipped: train on only the first N simulated micrographs beside the real ones")
    ap.add_argument("--leave-out", choices=("betagal", "empiar10947"), help="shipped: train without this real set")
    ap.add_argument("--tag", default="", help="suffix of the output names")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.stage == "bundle":
        record = json.loads((args.work / f"{args.from_stage}.json").read_text())
        done = bundle(args.work, args.from_stage, args.out, record)
        record["bundle"] = done
        (args.work / f"{args.from_stage}.json").write_text(json.dumps(record, indent=1, default=str))
        print(f"default threshold {done['threshold']:g} (best mean F1 on {len(done['validation_micrographs'])} "
              f"validation micrographs); bundled into {args.out}")
        return 0
    name = args.stage + (f"-no-{args.leave_out}" if args.leave_out else "") + args.tag
    t0 = time.perf_counter()
    samples = sim_cache(args.work, args.n_sim, args.seed)
    init = None
    if args.stage == "shipped":
        samples = samples[:args.sim_keep] if args.sim_keep else samples
        for real in ("betagal", "empiar10947"):
            if real != args.leave_out:
                samples += real_split(real, held_out=False)
        init = read_model_file(args.work / "sim.epick")
    t_data = time.perf_counter() - t0
    config = TrainConfig(mode="joint" if init is None else "finetune", epochs=args.epochs, batch_size=4, lr=args.lr,
                         lr_steps=tuple(args.lr_steps) if args.lr_steps is not None else None,
                         crop=CROP, repeats=0, val_fraction=0.05, seed=args.seed, width=0.25,
                         particle_px=PARTICLE_PX, progress=True)
    out = args.work / f"{name}.epick"
    t0 = time.perf_counter()
    path, result = train_samples(samples, config, out, init=init, preprocess=params().to_dict(),
                                 checkpoint=out.with_name(out.name + ".ckpt"), resume=True)
    t_train = time.perf_counter() - t0
    model = read_model_file(path)
    scores = score_all(model.network, args.leave_out)
    record = {"stage": args.stage, "model": str(path), "leave_out": args.leave_out, "config": asdict(config),
              "datasets": sorted({s.dataset for s in samples}), "n_train_micrographs": len(samples),
              "n_sim": args.n_sim, "sim_keep": args.sim_keep, "real_sets": [r for r in ("betagal", "empiar10947")
                                                   if args.stage == "shipped" and r != args.leave_out],
              "seconds": {"data": t_data, "train": t_train}, "best_epoch": result.best_epoch + 1,
              "val_ap": result.best_ap, "log": result.log, "scores": scores,
              "held_out": {k: held_out_names(k) for k in N_HELD_OUT}}
    (args.work / f"{name}.json").write_text(json.dumps(record, indent=1, default=str))
    for real, s in scores.items():
        a, h = s["all"], s["held_out"]
        print(f"{real:<12} all: AP {a['ap']:.3f} AR {a['ar']:.3f} best F1 {a['best_f1']:.3f} @ {a['best_threshold']:g}"
              f" | held-out: AP {h['ap']:.3f} best F1 {h['best_f1']:.3f}")
    print(f"train {t_train / 60:.1f} min; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
