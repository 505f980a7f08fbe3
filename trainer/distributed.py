"""Multi-process training with torch DDP: ``torchrun --nproc_per_node N --no-python epick train ... --ddp``.

One process per GPU (NCCL), or per CPU worker (gloo). The contract: N processes train the model
that ONE process would train on the same global batches (``--batch-size`` is the global batch),
up to floating-point reduction order, so N can change between runs and on ``--resume``:

- Global batches: every rank builds the epoch's batch list from (seed, epoch) exactly as one
  process does (``train._batches``: new data + the exemplar share of each batch) and takes slots
  ``rank, rank + N, ...`` of each batch: the strided split of ``DistributedSampler``, applied per
  batch so that new and exemplar items are both split across ranks and every step sees the same
  global batch whatever N is. (A sampler over the epoch would pad with duplicates and mix
  exemplars per rank.) A short last batch is filled up with the epoch's first items, as
  DistributedSampler pads, so no rank is ever idle; ``--batch-size`` must be at least N.
- Augmentation of a slot is seeded by (seed, epoch, batch, slot), not by the rank.
- BatchNorm uses the statistics of the global batch: ``nn.SyncBatchNorm`` on CUDA,
  :class:`GlobalBatchNorm2d` (an all-reduce of sums) on CPU/gloo, where SyncBatchNorm refuses.
- Losses are normalised by global counts: each rank's terms are rescaled so that DDP's gradient
  average equals the gradient of the global-batch loss (:func:`global_loss`).
- Only rank 0 validates, writes checkpoints and the model file; every rank reads a checkpoint on
  ``--resume`` (saved with whatever N), so training continues with any number of processes.

With N = 1 this is a one-process run with per-slot augmentation seeds (so its random crops differ
from a plain run without ``--ddp``; the trained models are equally good, not bit-identical).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from epick.runtime.errors import EpickError

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DDPContext:
    """This process's place in the job: ``rank`` of ``world`` processes, and its torch device."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that validates and writes files."""
        return self.rank == 0


def active() -> DDPContext | None:
    """The context of the process group started by :func:`process_group`, or None outside one."""
    return _ACTIVE[0]


_ACTIVE: list[DDPContext | None] = [None]


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[DDPContext]:
    """Join the torchrun job (env RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT): NCCL with one
    GPU per process (cuda:LOCAL_RANK) when CUDA is used, else gloo on the CPU."""
    missing = [v for v in TORCHRUN_VARS if v not in os.environ]
    if missing:
        raise EpickError(f"--ddp runs one process per GPU under torchrun ({', '.join(missing)} not set); start it "
                         "as: torchrun --nproc_per_node N --no-python epick train ... --ddp")
    local_rank = int(os.environ["LOCAL_RANK"])
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if torch.cuda.device_count() <= local_rank:
            raise EpickError(f"--ddp: process {local_rank} has no GPU (torch sees {torch.cuda.device_count()}); "
                             "give torchrun --nproc_per_node at most the number of GPUs")
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    ctx = DDPContext(dist.get_rank(), dist.get_world_size(),
                     torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu"))
    _ACTIVE[0] = ctx
    try:
        yield ctx
    finally:
        _ACTIVE[0] = None
        dist.destroy_process_group()


# ---------------------------------------------------------------- global-batch BatchNorm
class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; its gradient on each rank is the sum over ranks of the upstream gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over the global batch of all ranks (sums all-reduced, differentiable); CPU/gloo."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        c = x.shape[1]
        xf = x.float()
        count = xf.new_tensor([xf.numel() / c])
        stats = _AllReduceSum.apply(torch.cat([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)), count]))
        n = stats[-1].clamp(min=1.0)
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp(min=0.0)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1).clamp(min=1.0))
        shape = (1, c, 1, 1)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return (y * self.weight.view(shape) + self.bias.view(shape)).to(x.dtype)


def _swap_batchnorm(module: nn.Module, make) -> None:
    """Replace every BatchNorm2d child (recursively) by ``make(old)``, sharing parameters and buffers."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            new = make(child)
            new.weight, new.bias = child.weight, child.bias
            new.running_mean, new.running_var = child.running_mean, child.running_var
            new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            setattr(module, name, new)
        else:
            _swap_batchnorm(child, make)


def global_batchnorm(network: nn.Module, device: torch.device) -> None:
    """Make ``network``'s BatchNorm layers use global-batch statistics (in place)."""
    cls = nn.SyncBatchNorm if device.type == "cuda" else GlobalBatchNorm2d
    _swap_batchnorm(network, lambda bn: cls(bn.num_features, bn.eps, bn.momentum, bn.affine,
                                            bn.track_running_stats))


def plain_batchnorm(network: nn.Module) -> None:
    """Undo :func:`global_batchnorm` (the saved network is an ordinary one)."""
    _swap_batchnorm(network, lambda bn: nn.BatchNorm2d(bn.num_features, bn.eps, bn.momentum, bn.affine,
                                                       bn.track_running_stats))


class _ForwardAll(nn.Module):
    """DDP calls ``forward``; the trainer needs features and heads (``Detector.forward_all``)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor):
        return self.network.forward_all(image)


def wrap(network: nn.Module, ctx: DDPContext) -> nn.Module:
    """``network`` (on ``ctx.device``) with global BatchNorm inside DistributedDataParallel; call it
    as ``wrapped(image) -> (features, outputs)``.

    ``static_graph``: DLA-34's ``project`` layers of the deeper trees are computed but never reach
    the loss (as in the authors' code), the same ones at every step; DDP must not wait for them.
    """
    from torch.nn.parallel import DistributedDataParallel

    global_batchnorm(network, ctx.device)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(_ForwardAll(network), device_ids=ids, static_graph=True)


# ---------------------------------------------------------------- batches and losses
def full_batches(batches: list[list], batch_size: int) -> list[list]:
    """The epoch's global batches with a short last batch filled up with the epoch's first items (as
    DistributedSampler pads), so every rank gets a non-empty share of every batch."""
    if batches and len(batches[-1]) < batch_size:
        flat = [item for batch in batches for item in batch]
        need = batch_size - len(batches[-1])
        batches = batches[:-1] + [batches[-1] + (flat * (need // len(flat) + 1))[:need]]
    return batches


def local_slots(items: Sequence, ctx: DDPContext) -> list[int]:
    """Slots of one global batch that this rank trains on (``rank, rank + world, ...``)."""
    return list(range(ctx.rank, len(items), ctx.world))


def local_batch(samples: Sequence, slots: Sequence[int], crop: tuple[int, int], diameter: float, *,
                seed: int, epoch: int, batch: int, origins: Sequence | None = None,
                appearance: Sequence[str] = (), zoom: tuple[float, float] = (1.0, 1.0)):
    """``make_batch`` of this rank's samples, each augmented with its own (seed, epoch, batch, slot)
    generator, cropped at its tile origin (``origins``, None: at random)."""
    from .data import Batch, make_batch

    origins = list(origins) if origins is not None else [None] * len(samples)
    parts = [make_batch([s], crop, diameter, np.random.default_rng([seed, epoch, batch, slot]), origins=[o],
                        appearance=appearance, zoom=zoom)
             for s, slot, o in zip(samples, slots, origins)]
    return Batch(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                   ("image", "heatmap", "offset", "size", "mask", "exemplar")))


def _all_sum(values: Sequence[float], device: torch.device) -> list[float]:
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def global_loss(terms, outputs, heatmap: torch.Tensor, mask: torch.Tensor, n_exemplars: int, *, sparse: bool,
                ctx: DDPContext):
    """Rescale this rank's loss terms (each normalised by LOCAL counts) so that DDP's average of
    the ranks' gradients is the gradient of the loss normalised by the GLOBAL batch's counts.

    A term ``sum_local / max(1, n_local)`` becomes ``world * sum_local / max(1, n_global)``;
    distillation (a mean over exemplar images) is weighted by this rank's share of them; the
    parameter regularisation is the same on every rank and stays as it is.
    """
    from .losses import positive_cells

    n_pos = float(positive_cells(outputs[0], heatmap, sparse=sparse).sum())
    n_mask = float(mask.sum())
    g_pos, g_mask, g_ex = _all_sum([n_pos, n_mask, n_exemplars], ctx.device)
    w = ctx.world
    terms.heatmap = terms.heatmap * (w * max(1.0, n_pos) / max(1.0, g_pos))
    terms.offset = terms.offset * (w * max(1.0, n_mask) / max(1.0, g_mask))
    if terms.size is not None:
        terms.size = terms.size * (w * max(1.0, n_mask) / max(1.0, g_mask))
    if terms.distill is not None and g_ex > 0:
        terms.distill = terms.distill * (w * n_exemplars / g_ex)
    return terms


def mean_over_ranks(values: dict[str, float], ctx: DDPContext) -> dict[str, float]:
    """Epoch log values averaged over ranks (each rank's terms are world x its share of the loss);
    a term absent on some ranks (no exemplar there) counts 0 on them, absent on all it stays out."""
    from dataclasses import fields

    from .losses import LossTerms

    keys = ["loss", *(f.name for f in fields(LossTerms))]
    keys += sorted(set(values) - set(keys))   # must be the same on every rank: unknown keys are a bug
    sums = _all_sum([values.get(k, 0.0) for k in keys] + [float(k in values) for k in keys], ctx.device)
    return {k: sums[i] / ctx.world for i, k in enumerate(keys) if sums[len(keys) + i] > 0}


def barrier() -> None:
    """Wait for every rank (e.g. rank 0 finishing a file before the others go on)."""
    if dist.is_initialized():
        dist.barrier()
