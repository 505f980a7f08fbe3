"""The training loop and the three modes (joint, finetune, continual), METHOD.md defaults.

- joint:     random initialisation, every dataset given at once, L_OD.
- finetune:  start from a model file, train on the new data, L_OD.
- continual: start from a model file; a frozen copy (teacher, branch A) stays beside the trained
             copy (branch B). Every epoch passes the new data AND the whole exemplar set, shuffled
             together; the exemplar set as many times as gives it about as many crops as the new
             data (``exemplar_passes`` 0; 1 is the authors' single pass, which let the old datasets
             be forgotten when a few exemplar windows met many new micrographs: README, "The
             exemplars' share of an epoch"); the loss is L_OD + 0.1 L_distill (exemplar images
             only) + 0.01 L_reg.

An epoch covers every training micrograph fully: each one is cut into crop-sized tiles on a grid
shifted at random every epoch (``repeats=0``, the default), so the authors' schedule (120 epochs
over whole micrographs) means what it says; ``repeats=N`` takes N random crops per micrograph.
Each epoch's shuffling and augmentation is seeded from (seed, epoch), so a run is deterministic for
a seed on a CPU and ``--resume`` continues exactly. Validation AP picks the best epoch: on the
held-out new micrographs, and in continual mode on them and the exemplars of the old datasets
together (mean AP over datasets), so forgetting counts in the choice. The saved model holds the
best weights, the history and the exemplar set (old + new).
"""
from __future__ import annotations

import copy
import datetime as _dt
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from epick.runtime.errors import EpickError

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import Sample, load_dataset, make_batch, split_validation
from .ema import WeightAverage
from .exemplars import select_exemplars
from .losses import detection_loss, distillation_loss, parameter_regularisation
from .modelfile import ModelFile, build_metadata, read_model_file, save_model
from .network import TEST_FLIP_DIMS, Detector, NetworkConfig, build_detector
from .validate import evaluate_samples

MODES = ("joint", "finetune", "continual")
AUTHORS_EPOCHS = 120
AUTHORS_LR_STEPS = (70, 90)  # lr / 10 at these epochs of 120; scaled for other epoch counts


@dataclass
class TrainConfig:
    """Settings of one training run (defaults: METHOD.md, the authors' Adam 1e-4, batch 4, 120 epochs)."""

    mode: str = "joint"
    object_type: str = "particle"
    epochs: int = AUTHORS_EPOCHS
    batch_size: int = 4
    lr: float = 1e-4
    lr_steps: tuple[int, ...] | None = None  # None: 70/120 and 90/120 of ``epochs``
    crop: int = 512  # square training crop, network pixels (multiple of 32)
    repeats: int = 0  # 0: tiles covering each micrograph fully per epoch; N > 0: N random crops each
    sparse: bool = False
    appearance: tuple[str, ...] = ()  # datasets ("*": all) whose training crops get blur / noise / grey-level jitter
    zoom: tuple[float, float] = (1.0, 1.0)  # training crops rescaled by a log-uniform factor in this range
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "cpu"
    amp: bool = True  # mixed precision, CUDA only
    width: float = 1.0  # channel multiplier of a new network (0.25 = narrow variant)
    target_width: int = 1024  # preprocessing of a new model (a loaded model keeps its own)
    particle_px: float = 0.0  # > 0: particle-size mode of a new model (diameter -> this many network px)
    lowpass: float = 0.0  # Gaussian low-pass sigma (network px) in the preprocessing of a new model
    highpass: float = 0.0  # sigma (network px) of the Gaussian background it subtracts (0: none)
    test_flips: int = 1  # a new network's heatmap averaged over 1, 2 or 4 mirror images when picking
    ema: float = 0.0  # > 0: validate and keep an exponential moving average of the weights (decay per step)
    grad_clip: float = 0.0  # > 0: the gradients' global L2 norm is clipped to this before each optimiser step
    exemplar_objects: int = 200
    # continual: passes over the exemplar set per epoch; 0: as many as give the exemplars about as many
    # crops as the new micrographs (at least one pass; the paper's single pass thins them out)
    exemplar_passes: int = 0
    progress: bool = True
    ddp: bool = False  # one process of a torchrun job (trainer/distributed.py); batch_size is the global batch

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise EpickError(f"unknown training mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.crop % 32:
            raise EpickError(f"--crop must be a multiple of 32, got {self.crop}")
        if self.batch_size < 1 or self.epochs < 1:
            raise EpickError("--batch-size and --epochs must be at least 1")
        self.zoom = (float(self.zoom[0]), float(self.zoom[1]))
        if not 0 < self.zoom[0] <= self.zoom[1]:
            raise EpickError(f"zoom range must be 0 < low <= high, got {self.zoom}")
        if self.repeats < 0:
            raise EpickError(f"--repeats must be 0 (tiles covering every micrograph) or more, got {self.repeats}")
        if self.exemplar_passes < 0:
            raise EpickError(f"--exemplar-passes must be 0 (an equal share) or more, got {self.exemplar_passes}")
        if not 0.0 <= self.ema < 1.0:
            raise EpickError(f"--ema is a decay per step in [0, 1) (0: off), got {self.ema}")
        if not self.grad_clip >= 0.0:
            raise EpickError(f"--grad-clip is a maximum gradient norm >= 0 (0: off), got {self.grad_clip}")
        if self.ema and self.ddp:
            raise EpickError("--ema is not available with --ddp; train without one of them")
        if self.test_flips not in TEST_FLIP_DIMS:
            raise EpickError(f"--test-flips must be one of {', '.join(map(str, sorted(TEST_FLIP_DIMS)))}, "
                             f"got {self.test_flips}")

    def milestones(self) -> tuple[int, ...]:
        """Epochs (0-based) from which the learning rate is divided by 10 once more."""
        if self.lr_steps is not None:
            return tuple(int(s) for s in self.lr_steps)
        return tuple(int(round(s * self.epochs / AUTHORS_EPOCHS)) for s in AUTHORS_LR_STEPS)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (0-based)."""
        return self.lr * 0.1 ** sum(epoch >= m for m in self.milestones())

    def new_preprocess(self):
        """The PreprocessParams of a new model trained with this config (a loaded model keeps its own)."""
        from epick.runtime.preprocess import PreprocessParams

        try:
            return PreprocessParams(target_width=self.target_width, particle_px=self.particle_px, lowpass=self.lowpass,
                                    highpass=self.highpass)
        except ValueError as exc:
            raise EpickError(f"preprocessing settings: {exc}") from exc


@dataclass
class DatasetSpec:
    """One dataset to learn: micrographs (files, folders or globs), coordinates (files or folders)."""

    name: str
    micrographs: Sequence[str | Path]
    coordinates: Sequence[str | Path]
    diameter: float | None = None  # original micrograph pixels
    allow_unlabelled: bool = False


@dataclass
class FitResult:
    """Outcome of ``fit``: best weights, the epoch they come from, and one log row per epoch."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_ap: float | None
    log: list[dict] = field(default_factory=list)
    # fine-tuning / continual learning: AP on each old dataset's exemplars, {name: {"before", "after"}}
    old_exemplar_ap: dict[str, dict[str, float | None]] = field(default_factory=dict)


def _device(name: str) -> torch.device:
    """torch device for --device: 'auto' (CUDA when torch sees a GPU, else CPU), 'cpu' or 'cuda[:N]'."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EpickError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def tile_origins(length: int, crop: int, rng: np.random.Generator) -> list[int]:
    """Crop origins along one axis covering ``[0, length)`` fully: a grid of step ``crop`` shifted by
    a random offset, each origin clipped into the image (images shorter than ``crop`` give [0])."""
    if length <= crop:
        return [0]
    shift = int(rng.integers(0, crop))
    starts = range(-shift, length, crop)
    return sorted({min(max(0, s), length - crop) for s in starts})


def epoch_items(samples: Sequence[Sample], kind: str, config: TrainConfig, rng: np.random.Generator
                ) -> list[tuple[str, int, tuple[int, int] | None]]:
    """(kind, sample index, crop origin (y0, x0) or None = random) of one epoch over ``samples``:
    tiles covering each image fully (``repeats`` 0), else ``repeats`` random crops per image."""
    items = []
    for i, s in enumerate(samples):
        if config.repeats:
            items += [(kind, i, None)] * config.repeats
            continue
        H, W = s.image.shape
        items += [(kind, i, (y0, x0)) for y0 in tile_origins(H, config.crop, rng)
                  for x0 in tile_origins(W, config.crop, rng)]
    return items


def exemplar_passes(n_new: int, n_exemplar: int, config: TrainConfig) -> int:
    """Passes over the exemplar set in one epoch: ``config.exemplar_passes``, or when that is 0 the
    number that gives ``n_exemplar`` exemplar crops about the ``n_new`` crops of the new data (>= 1)."""
    if config.exemplar_passes:
        return config.exemplar_passes
    return max(1, round(n_new / n_exemplar)) if n_exemplar else 1


def _batches(new: Sequence[Sample], ex: Sequence[Sample], config: TrainConfig, rng: np.random.Generator
             ) -> list[list[tuple[str, int, tuple[int, int] | None]]]:
    """Batches of one epoch: every new sample and (continual mode) every exemplar, covered as
    ``epoch_items`` says, the exemplars ``exemplar_passes`` times (each pass its own tile offsets),
    shuffled together."""
    new_items, ex_items = epoch_items(new, "new", config, rng), epoch_items(ex, "ex", config, rng)
    items = new_items + ex_items
    for _ in range(exemplar_passes(len(new_items), len(ex_items), config) - 1):
        items += epoch_items(ex, "ex", config, rng)
    order = rng.permutation(len(items))
    return [[items[j] for j in order[b:b + config.batch_size]] for b in range(0, len(items), config.batch_size)]


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of ``module``'s state (weights kept as the best or final model)."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def fit(network: Detector, train: Sequence[Sample], val: Sequence[Sample], config: TrainConfig, *,
        exemplars: Sequence[Sample] = (), teacher: Detector | None = None,
        checkpoint: str | Path | None = None, resume: bool = False) -> FitResult:
    """Train ``network`` in place; returns the best weights (by validation AP, else the last)."""
    from tqdm import tqdm

    from . import distributed

    ddp = distributed.active() if config.ddp else None
    if config.ddp and ddp is None:
        raise EpickError("ddp=True needs the torchrun process group (epick train --ddp starts it)")
    if ddp and config.batch_size < ddp.world:
        raise EpickError(f"--batch-size {config.batch_size} is the global batch; give at least one item per "
                         f"process ({ddp.world})")
    dev = ddp.device if ddp else _device(config.device)
    network.to(dev).train()
    forward_all = distributed.wrap(network, ddp) if ddp else network.forward_all
    use_amp = bool(config.amp and dev.type == "cuda")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    trained = [p for g in optimizer.param_groups for p in g["params"]]  # what --grad-clip clips
    teacher_params = None
    if teacher is not None:
        teacher = teacher.to(dev).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher_params = {k: v.detach() for k, v in teacher.named_parameters()}
    best_state: dict[str, torch.Tensor] | None = None  # never the untrained weights
    best_ap, best_epoch, log, start, ck = None, -1, [], 0, None
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        ck = load_checkpoint(checkpoint)
        network.load_state_dict(ck.net)
        optimizer.load_state_dict(ck.optimizer)
        best_state, best_ap, best_epoch, log, start = ck.best, ck.best_ap, ck.best_epoch, ck.log, ck.epoch + 1
    elif resume:
        print(f"epick train: --resume: no checkpoint at {checkpoint}; starting from epoch 0", file=sys.stderr)
    average = WeightAverage(network, config.ema) if config.ema else None
    if average is not None and ck is not None and ck.ema:
        average.load_state_dict(ck.ema, ck.ema_updates)
    judged = average.module if average is not None else network   # the weights validated and kept
    new, ex = list(train), list(exemplars)
    # continual: the kept epoch is chosen on the new validation micrographs and the old datasets'
    # exemplars together (mean AP over datasets), so forgetting counts in the choice
    selection = list(val) + ([e for e in ex if e.labelled and e.count] if teacher is not None and val else [])
    fallback_diam = float(np.median([s.diameter for s in new + ex if s.diameter] or [20.0]))
    crop = (config.crop, config.crop)
    for epoch in range(start, config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(epoch)
        sums: dict[str, float] = {}
        batches = _batches(new, ex, config, rng)
        if ddp:
            batches = distributed.full_batches(batches, config.batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not config.progress,
                   leave=False)
        for b, items in enumerate(bar):
            if ddp:   # this rank's slots of the global batch, augmented per slot
                slots = distributed.local_slots(items, ddp)
                mine = [items[j] for j in slots]
                samples = [new[i] if kind == "new" else ex[i] for kind, i, _ in mine]
                batch = distributed.local_batch(samples, slots, crop, fallback_diam, seed=config.seed,
                                                epoch=epoch, batch=b, origins=[o for _, _, o in mine],
                                                appearance=config.appearance, zoom=config.zoom)
            else:
                samples = [new[i] if kind == "new" else ex[i] for kind, i, _ in items]
                batch = make_batch(samples, crop, fallback_diam, rng, origins=[o for _, _, o in items],
                                   appearance=config.appearance, zoom=config.zoom)
            image = torch.from_numpy(batch.image).to(dev)
            with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp):
                feats, outs = forward_all(image)
            tgt = [torch.from_numpy(a).to(dev) for a in (batch.heatmap, batch.offset, batch.size, batch.mask)]
            terms = detection_loss(outs, tgt[0], tgt[1], tgt[2] if len(outs) > 2 else None, tgt[3],
                                   sparse=config.sparse)
            if teacher is not None:
                idx = torch.from_numpy(np.flatnonzero(batch.exemplar)).to(dev)
                if idx.numel():
                    with torch.no_grad(), torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp):
                        t_feats, t_outs = teacher.forward_all(image[idx])
                    terms.distill = distillation_loss(feats[idx], t_feats, outs[0][idx], t_outs[0],
                                                      outs[1][idx], t_outs[1])
                terms.reg = parameter_regularisation(network, teacher_params)
            if ddp:
                terms = distributed.global_loss(terms, outs, tgt[0], tgt[3], int(batch.exemplar.sum()),
                                                sparse=config.sparse, ctx=ddp)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms.total).backward()
            if config.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trained, config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if average is not None:
                average.update(network)
            values = terms.as_floats()
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()})
        means = {k: v / len(batches) for k, v in sums.items()}
        row = {"epoch": epoch + 1, "lr": config.lr_at(epoch),
               **(distributed.mean_over_ranks(means, ddp) if ddp else means)}
        if ddp and not ddp.is_main:   # rank 0 validates, logs and writes; the others go on training
            log.append(row)
            continue
        if selection:
            metrics = evaluate_samples(judged, selection, dev)
            row.update(val_ap=metrics["ap"], val_ar=metrics["ar"])
            if len(metrics["datasets"]) > 1:
                row.update({f"val_ap_{k}": m["ap"] for k, m in metrics["datasets"].items()})
            if metrics["ap"] is not None and (best_ap is None or metrics["ap"] > best_ap):
                best_ap, best_epoch = metrics["ap"], epoch
                best_state = _cpu_state(judged)
        if best_ap is None:  # no validation, or no validation AP yet: the latest weights
            best_epoch = epoch
            best_state = _cpu_state(judged)
        log.append(row)
        if config.progress:
            tqdm.write("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        if checkpoint is not None:
            save_checkpoint(checkpoint, Checkpoint(epoch, network.state_dict(), best_state, optimizer.state_dict(),
                                                   best_ap, best_epoch, log, asdict(config),
                                                   average.state_dict() if average is not None else None,
                                                   average.updates if average is not None else 0))
    if ddp:
        distributed.plain_batchnorm(network)
    if best_state is None:  # resumed after the last epoch: the checkpoint had none either
        best_state = _cpu_state(judged)
        best_epoch = config.epochs - 1
    if selection and best_ap is None:
        print("epick train: no validation AP in any epoch (the validation micrographs hold no labelled "
              "particles); kept the weights of the last epoch, not the best", file=sys.stderr)
    return FitResult(best_state, best_epoch, best_ap, log)


def _history_entry(name: str, mode: str, samples: Sequence[Sample], result: FitResult, config: TrainConfig) -> dict:
    labelled = [s for s in samples if s.dataset == name]
    return {"name": name, "mode": mode, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "particles": int(sum(s.count for s in labelled)), "micrographs": len(labelled),
            "epochs": config.epochs, "best_epoch": result.best_epoch + 1, "val_ap": result.best_ap,
            "sparse": config.sparse}


def init_size_bias(network: Detector, samples: Sequence[Sample]) -> None:
    """Start a new size head at the median training diameter (network pixels, x then y).

    The head regresses diameters of tens to hundreds of network pixels; from a zero bias L_size
    starts at the full diameter and a short run never gets there (radii came out ~30% off).
    """
    sizes = [s.sizes for s in samples if s.sizes is not None and len(s.sizes)]
    if network.size is None or not sizes:
        return
    median = np.median(np.concatenate(sizes), axis=0)
    with torch.no_grad():
        network.size[-1].bias.copy_(torch.as_tensor(median, dtype=network.size[-1].bias.dtype))


def train_samples(samples: Sequence[Sample], config: TrainConfig, output: str | Path, *,
                  init: ModelFile | None = None, preprocess: dict | None = None,
                  particle_diameter: float | None = None, checkpoint: str | Path | None = None,
                  resume: bool = False) -> tuple[Path, FitResult]:
    """Train on already loaded ``samples`` (any number of datasets) and write the model file ``output``."""
    if config.mode == "joint" and init is not None:
        raise EpickError("joint training starts from random weights; drop --model, or use --mode finetune/continual")
    if config.mode != "joint" and init is None:
        raise EpickError(f"--mode {config.mode} starts from a model: give it with --model MODEL.epick")
    if init is not None and init.metadata["object_type"] != config.object_type:
        raise EpickError(f"the model picks {init.metadata['object_type']}s but --object is {config.object_type}; "
                         "train a new model with --mode joint for another object type")
    if not any(s.labelled and s.count for s in samples):
        raise EpickError("no labelled objects in the training data; check the coordinate files")
    train, val = split_validation(list(samples), config.val_fraction, config.seed)
    torch.manual_seed(config.seed)
    if init is None:
        network = build_detector(NetworkConfig(width=config.width, with_size=config.object_type == "vesicle",
                                               test_flips=config.test_flips))
        init_size_bias(network, train)
    else:
        network = copy.deepcopy(init.network)
    teacher = copy.deepcopy(init.network) if config.mode == "continual" else None
    old_ex = list(init.exemplars) if init is not None else []
    replay = _exemplars_to_replay(old_ex, samples) if teacher is not None else []
    result = fit(network, train, val, config, exemplars=replay, teacher=teacher, checkpoint=checkpoint,
                 resume=resume)
    from . import distributed

    if config.ddp and not distributed.active().is_main:   # rank 0 writes the model file
        return Path(output), result
    network.load_state_dict(result.best_state)
    network.cpu().eval()
    names = sorted({s.dataset for s in samples})
    exemplars = [e for e in old_ex if e.dataset not in names]
    if init is not None:
        result.old_exemplar_ap = old_exemplar_ap(init.network, network, exemplars)
    for name in names:
        exemplars += select_exemplars([s for s in samples if s.dataset == name], config.exemplar_objects)
    history = list(init.metadata["history"]) if init is not None else []
    history += [_history_entry(n, config.mode, samples, result, config) for n in names]
    if result.old_exemplar_ap:
        for entry in history[-len(names):]:   # this step's entries
            entry["old_exemplar_ap"] = result.old_exemplar_ap
    diam_net = float(np.median([s.diameter for s in samples if s.diameter] or [0.0]))
    if init is not None:
        preprocess = init.metadata["preprocess"]
        particle_diameter = particle_diameter or init.metadata.get("particle_diameter")
    if preprocess is None:
        preprocess = config.new_preprocess().to_dict()
    meta = build_metadata(network.config, object_type=config.object_type, preprocess=preprocess,
                          particle_diameter=particle_diameter, diameter_network=diam_net, history=history,
                          training={**asdict(config), "log": result.log})
    return save_model(output, network, meta, exemplars), result


def old_exemplar_ap(before: Detector, after: Detector, exemplars: Sequence[Sample]
                    ) -> dict[str, dict[str, float | None]]:
    """AP of the model ``before`` and ``after`` training on each old dataset's labelled ``exemplars``:
    a check of what was kept (both models have trained on these micrographs, so it is not a
    held-out score)."""
    labelled = [e for e in exemplars if e.labelled and e.count]
    if not labelled:
        return {}
    was, now = evaluate_samples(before, labelled)["datasets"], evaluate_samples(after, labelled)["datasets"]
    return {name: {"before": was[name]["ap"], "after": now[name]["ap"]} for name in sorted(was)}


def _exemplars_to_replay(exemplars: Sequence[Sample], samples: Sequence[Sample]) -> list[Sample]:
    """The model's exemplars that continual training replays: all but those whose micrograph is among the
    new ``samples`` of the same dataset (a dataset added again with the same name), which train as new data."""
    new = {(s.dataset, s.name) for s in samples}
    again = sorted({f"{e.dataset}/{e.name}" for e in exemplars if (e.dataset, e.name) in new})
    if again:
        print(f"epick train: exemplar micrograph(s) {', '.join(again)} of the model are among the new micrographs: "
              "they train as new data, not as exemplars", file=sys.stderr)
    return [e for e in exemplars if (e.dataset, e.name) not in new]


def checkpoint_path(output: str | Path) -> Path:
    """Where training towards the model file ``output`` checkpoints: ``<output>.ckpt``."""
    output = Path(output)
    return output.with_name(output.name + ".ckpt")


def train_model(specs: Sequence[DatasetSpec], config: TrainConfig, output: str | Path, *,
                init_model: str | Path | None = None, resume: bool = False) -> tuple[Path, FitResult]:
    """Read the datasets (preprocessed with the model's settings), train, write ``output``.

    Checkpoints go to ``<output>.ckpt`` after every epoch; ``resume`` continues from it.
    """
    from epick.runtime.preprocess import PreprocessParams

    init = read_model_file(init_model) if init_model is not None else None
    params = (PreprocessParams.from_dict(init.metadata["preprocess"]) if init is not None
              else config.new_preprocess())
    samples: list[Sample] = []
    for spec in specs:
        samples += load_dataset(spec.micrographs, spec.coordinates, params, dataset=spec.name,
                                object_type=config.object_type, diameter=spec.diameter,
                                allow_unlabelled=spec.allow_unlabelled, progress=config.progress)
    missing = [s.name for s in samples if s.labelled and s.diameter is None]
    if missing and config.object_type != "vesicle":
        raise EpickError(f"no particle diameter for {missing[0]} (the coordinate file carries none); "
                         "give it in original pixels with --diameter")
    diameters = [spec.diameter for spec in specs if spec.diameter]
    if not diameters:  # the coordinate files carry it (STAR "# diameter_px"): keep it in original pixels
        last = [s.diameter * s.scale for s in samples if s.diameter and s.dataset == specs[-1].name]
        diameters = [float(np.median(last))] if last else []
    output = Path(output)
    return train_samples(samples, config, output, init=init, preprocess=params.to_dict(),
                         particle_diameter=diameters[-1] if diameters else None,
                         checkpoint=checkpoint_path(output), resume=resume)
