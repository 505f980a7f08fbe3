"""`epick train`: joint training, fine-tuning or continual learning of a picking model.

Examples:
    epick train --mode joint --data mics/ coords/ betagal --diameter 108 -o betagal.epick
    epick train --mode continual --model betagal.epick --data mics2/ coords2/ ribosome -o both.epick
"""
from __future__ import annotations

import argparse
from pathlib import Path

from epick.runtime.cli_args import nonnegative_float, nonnegative_int, open_fraction, positive_float, positive_int
from epick.runtime.errors import EpickError
from epick.runtime.picks import OBJECT_TYPES

EXAMPLES = """
epick train --mode joint --data mics/ coords/ betagal --diameter 108 -o betagal.epick
epick train --mode continual --model betagal.epick --data mics2/ AutoPick/job006/ ribo -o both.epick
epick train --mode finetune --model betagal.epick --data mics2/ ManualPick/job004/ --sparse -o bgal.epick
"""
WRITES = """
OUTPUT (.epick: weights, exemplars, metadata), OUTPUT.ckpt (checkpoint for --resume, removed at the end)
"""
# the options of the training schedule; in finetune and continual mode the ones not given come from the model
# trained from (a bundled model's measured 'add a sample' values, or a model's own finetune / continual run)
SCHEDULE_OPTIONS = ("epochs", "lr", "crop", "repeats", "val_fraction")
SCHEDULE_NOTE = ("; finetune and continual: the value measured for adding a sample to a bundled model "
                "(`epick models`), or the one a model made by finetune or continual was trained with")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `epick train`."""
    parser.add_argument("--mode", choices=("joint", "finetune", "continual"), default="joint",
                        help="joint: from scratch on all --data; finetune: from --model on new data; "
                             "continual: from --model with its exemplars, distillation and regularisation (default: %(default)s)")
    parser.add_argument("--data", nargs="+", action="append", required=True,
                        metavar="MICROGRAPHS COORDINATES [NAME]",
                        help="one dataset: micrograph folder/glob/file, coordinate folder/file (STAR, BOX, CSV, "
                             "CS, THI) and an optional name; repeat --data for several datasets")
    parser.add_argument("--model", help="model file to start from (finetune, continual), or a bundled model's name "
                                         "(`epick models`; e.g. general)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.epick)")
    parser.add_argument("--object", dest="object_type", choices=OBJECT_TYPES, default="particle",
                        help="what to pick: particles (centres), vesicles (centre + radius, size head) or fibers "
                             "(points along each polyline, linked by line tracing when picking) (default: %(default)s)")
    parser.add_argument("--diameter", type=positive_float, action="append",
                        help="object diameter in ORIGINAL micrograph pixels (one for all --data, or one per --data); "
                             "needed unless the coordinate files carry it")
    parser.add_argument("--sparse", action="store_true",
                        help="sparse annotation: pseudo-labels above 0.7, ignore unlabelled predictions in [0.5, 0.7]")
    parser.add_argument("--exemplar-passes", type=nonnegative_int, default=0,
                        help="continual: passes over the model's exemplars per epoch; 0: as many as give them about "
                             "as many crops as the new micrographs (default: %(default)s)")
    parser.add_argument("--unlabelled-negatives", action="store_true",
                        help="train on micrographs without a coordinate file as negatives instead of stopping")
    parser.add_argument("--epochs", type=positive_int,
                        help=f"passes over the training micrographs (default: 120{SCHEDULE_NOTE})")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="crops per optimisation step (default: %(default)s)")
    parser.add_argument("--lr", type=positive_float, help=f"Adam learning rate (default: 1e-4{SCHEDULE_NOTE})")
    parser.add_argument("--lr-steps", type=positive_int, nargs="*", help="epochs where lr drops 10x (default 70/120, 90/120 of --epochs)")
    parser.add_argument("--crop", type=positive_int,
                        help=f"training crop, network pixels (multiple of 32) (default: 512{SCHEDULE_NOTE})")
    parser.add_argument("--repeats", type=nonnegative_int,
                        help="0: every epoch covers each micrograph fully with crop tiles; N: N random crops of "
                             f"each micrograph per epoch (default: 0{SCHEDULE_NOTE})")
    parser.add_argument("--val-fraction", type=open_fraction,
                        help=f"held-out micrographs for validation AP (default: 0.2{SCHEDULE_NOTE})")
    parser.add_argument("--width", type=positive_float, default=1.0, help="channel multiplier of a new network (0.25: narrow) (default: %(default)s)")
    parser.add_argument("--target-width", type=positive_int, default=1024, help="preprocessing width of a new model (px) (default: %(default)s)")
    parser.add_argument("--particle-px", type=nonnegative_float, default=0.0,
                        help="particle-size mode of a new model: resample every micrograph so the particle diameter "
                             "spans this many network pixels (e.g. 24; needs each dataset's diameter); 0: every "
                             "micrograph to --target-width (default: %(default)s)")
    parser.add_argument("--lowpass", type=nonnegative_float, default=0.0,
                        help="Gaussian low-pass of a new model's preprocessing, sigma in network pixels (e.g. 2: "
                             "noisy and denoised micrographs look alike); 0: none (default: %(default)s)")
    parser.add_argument("--highpass", type=nonnegative_float, default=0.0,
                        help="subtract a Gaussian background of this sigma (network pixels, e.g. 32: ice gradients "
                             "and carbon do not set the contrast) in a new model's preprocessing; 0: none "
                             "(default: %(default)s)")
    parser.add_argument("--test-flips", type=int, choices=(1, 2, 4), default=1,
                        help="a new model's heatmap is averaged over this many mirror images when picking (2: "
                             "left-right, 4: also up-down; 2x / 4x the network time) (default: "
                             "%(default)s)")
    parser.add_argument("--ema", type=float, default=0.0,
                        help="validate and keep an exponential moving average of the weights with this decay per "
                             "step (e.g. 0.99); 0: the raw weights (default: %(default)s)")
    parser.add_argument("--grad-clip", type=float, default=0.0,
                        help="clip the gradients' global L2 norm to this before each optimiser step (e.g. 2 for "
                             "training on one crop per step); 0: no clipping (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when torch sees a GPU, else CPU), cpu or cuda[:N] (default: %(default)s)")
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same model on a CPU) (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT.ckpt after an interruption")
    parser.add_argument("--keep-checkpoint", action="store_true",
                        help="keep OUTPUT.ckpt after a successful run (default: removed once OUTPUT is written)")
    parser.add_argument("--ddp", action="store_true",
                        help="one process of a multi-GPU job: torchrun --nproc_per_node N --no-python epick train ... "
                             "--ddp (NCCL on GPUs, gloo on CPUs); --batch-size is the global batch, split over the "
                             "processes; rank 0 writes checkpoints and the model; --resume works with any N")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def dataset_specs(args: argparse.Namespace):
    """DatasetSpec per --data, with names and diameters resolved."""
    from .train import DatasetSpec

    diameters = args.diameter or []
    if len(diameters) not in (0, 1, len(args.data)):
        raise EpickError(f"give one --diameter for all datasets or one per --data ({len(args.data)}), not {len(diameters)}")
    specs = []
    for i, item in enumerate(args.data):
        if len(item) not in (2, 3):
            raise EpickError(f"--data takes MICROGRAPHS COORDINATES [NAME], got {len(item)} values: {' '.join(item)}")
        name = item[2] if len(item) == 3 else Path(item[0]).name.rstrip("*") or f"dataset{i + 1}"
        diam = diameters[i] if len(diameters) > 1 else (diameters[0] if diameters else None)
        specs.append(DatasetSpec(name, [item[0]], [item[1]], diam, args.unlabelled_negatives))
    if len({s.name for s in specs}) != len(specs):
        raise EpickError("two --data share a name; give each a NAME as the third value")
    return specs


def training_schedule(args: argparse.Namespace, init_model: Path | None) -> dict:
    """--epochs, --lr, --crop, --repeats, --val-fraction: as given; else, in finetune and continual mode,
    the values measured for adding a sample to a bundled model (its catalogue entry) or those a model made
    by finetune or continual learning was trained with (so a model made from the bundled one keeps its
    schedule); else TrainConfig's defaults (the paper's schedule). Says on stderr which values it took."""
    import os
    import sys
    from dataclasses import fields

    from epick.runtime.bundled import as_options
    from .train import TrainConfig

    schedule = {f.name: f.default for f in fields(TrainConfig) if f.name in SCHEDULE_OPTIONS}
    inherited, source = _model_schedule(init_model) if init_model is not None and args.mode != "joint" else ({}, "")
    taken = {k: v for k, v in inherited.items() if k in SCHEDULE_OPTIONS and getattr(args, k) is None}
    schedule.update(taken)
    schedule.update({k: getattr(args, k) for k in SCHEDULE_OPTIONS if getattr(args, k) is not None})
    if taken and os.environ.get("RANK", "0") == "0":   # under torchrun (--ddp) only rank 0 says it
        print(f"epick train: {args.mode} with {source}: {' '.join(as_options(taken))} (give an option to change it)",
              file=sys.stderr)
    return schedule


def _model_schedule(init_model: Path) -> tuple[dict, str]:
    """(schedule options, where they come from) for training from ``init_model``; ({}, "") for none."""
    from epick.runtime.bundled import bundled_model_of
    from .modelfile import read_model_file

    bundled = bundled_model_of(init_model)
    if bundled is not None and bundled.add_sample:
        return bundled.add_sample, f"the schedule measured for adding a sample to the bundled model {bundled.name}"
    training = read_model_file(init_model, verify=False).metadata.get("training") or {}
    if training.get("mode") in ("finetune", "continual"):
        return ({k: training[k] for k in SCHEDULE_OPTIONS if k in training},
                f"the schedule {init_model.name} was trained with ({training['mode']})")
    return {}, ""


def run(args: argparse.Namespace) -> int:
    """Train and write the model file; prints a one-line summary."""
    from .train import TrainConfig, checkpoint_path, train_model

    from epick.runtime.bundled import resolve_model

    init_model = resolve_model(args.model, kind="epick") if args.model is not None else None
    config = TrainConfig(mode=args.mode, object_type=args.object_type, batch_size=args.batch_size,
                         lr_steps=tuple(args.lr_steps) if args.lr_steps else None, sparse=args.sparse, seed=args.seed,
                         device=args.device, amp=not args.no_amp, width=args.width, target_width=args.target_width,
                         particle_px=args.particle_px, lowpass=args.lowpass, highpass=args.highpass,
                         test_flips=args.test_flips, ema=args.ema, grad_clip=args.grad_clip,
                         exemplar_passes=args.exemplar_passes,
                         progress=not args.quiet, ddp=args.ddp,
                         **training_schedule(args, init_model))
    if not args.ddp:
        path, result = train_model(dataset_specs(args), config, args.output, init_model=init_model, resume=args.resume)
    else:
        from .distributed import process_group

        with process_group(args.device) as ctx:
            config.progress = config.progress and ctx.is_main
            path, result = train_model(dataset_specs(args), config, args.output, init_model=init_model,
                                       resume=args.resume)
            if not ctx.is_main:
                return 0
            print(f"epick train: {ctx.world} processes ({ctx.device.type}), global batch {config.batch_size}")
    if not args.keep_checkpoint:   # only a finished run gets here: nothing left to resume
        checkpoint_path(path).unlink(missing_ok=True)
    from epick.runtime.model_card import format_ap

    print(f"wrote {path} (best epoch {result.best_epoch + 1}, validation AP {format_ap(result.best_ap)})")
    for line in kept_message(result.old_exemplar_ap, config.mode):
        print(line)
    return 0


FORGOT_AP = 0.05   # a drop of exemplar AP from which fine-tuning is said to have lost an old dataset


def kept_message(old_ap: dict[str, dict[str, float | None]], mode: str) -> list[str]:
    """Lines saying what the model kept of its old datasets (AP on their exemplars before -> after),
    and, after fine-tuning that lost one, that continual learning keeps it."""
    from epick.runtime.model_card import kept_text

    if not old_ap:
        return []
    lines = ["old datasets, AP on their exemplars before -> after (micrographs the model trained on: "
             "a check, not a held-out score): " + kept_text(old_ap)]
    lost = [name for name, ap in old_ap.items()
            if ap["before"] is not None and ap["after"] is not None and ap["before"] - ap["after"] >= FORGOT_AP]
    if lost and mode == "finetune":
        lines.append(f"fine-tuning lost part of what the model knew of {', '.join(lost)}; "
                     "--mode continual keeps the old datasets (README \"Add my sample\")")
    return lines
