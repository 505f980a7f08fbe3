"""Training checkpoints for ``--resume``: one safetensors file, no pickle.

Tensors: ``net.*`` (current weights), ``best.*`` (best weights so far), ``opt.<i>.<key>`` (Adam
state of parameter i: step, exp_avg, exp_avg_sq), ``ema.*`` (the weight average, when trained with
one). ``__metadata__['epick_checkpoint']`` is JSON: ``epoch`` (last completed, 0-based),
``best_ap``, ``best_epoch``, ``log`` (per-epoch rows), ``config`` (the TrainConfig it was made
with) and ``ema_updates``. Random state needs no saving: every epoch's
shuffling and augmentation is seeded from (seed, epoch).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from epick.runtime.errors import ModelFileError
from epick.runtime.io.atomic import atomic_path

KEY = "epick_checkpoint"


@dataclass
class Checkpoint:
    """State to continue training after ``epoch``."""

    epoch: int
    net: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor]
    optimizer: dict
    best_ap: float | None = None
    best_epoch: int | None = None
    log: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    ema: dict[str, torch.Tensor] | None = None   # weight average (trainer/ema.py), if any
    ema_updates: int = 0


def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous copies of ``state`` under ``prefix`` + key (safetensors names)."""
    return {prefix + k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors named ``prefix`` + key, by key."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` atomically."""
    from safetensors.torch import save_file

    tensors = {**_prefixed("net.", ckpt.net), **_prefixed("best.", ckpt.best), **_prefixed("ema.", ckpt.ema or {})}
    groups = ckpt.optimizer["param_groups"]
    for idx, state in ckpt.optimizer["state"].items():
        for key, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(float(value))
            tensors[f"opt.{idx}.{key}"] = t.detach().cpu().contiguous().clone()
    meta = {"epoch": ckpt.epoch, "best_ap": ckpt.best_ap, "best_epoch": ckpt.best_epoch, "log": ckpt.log,
            "config": ckpt.config, "param_groups": groups, "ema_updates": ckpt.ema_updates}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={KEY: json.dumps(meta, default=str)})
    return Path(path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; ModelFileError when it is not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})[KEY])
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:
        raise ModelFileError(path, f"is not a readable training checkpoint ({type(exc).__name__}: {exc})",
                             "delete it and train without --resume") from exc
    net, best, ema = (_unprefixed(prefix, tensors) for prefix in ("net.", "best.", "ema."))
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    optimizer = {"state": state, "param_groups": meta["param_groups"]}
    return Checkpoint(meta["epoch"], net, best, optimizer, meta.get("best_ap"), meta.get("best_epoch"),
                      meta.get("log", []), meta.get("config", {}), ema or None, int(meta.get("ema_updates", 0)))
