"""`epick train --ddp`: 2 CPU processes on gloo train the model one process trains on the same
global batches, and a run checkpointed by 2 processes resumes on 1.

"Equal" is judged on what the model computes: the heatmap logits of the two trained networks on
held-out images differ by less than TOL of how far training moved them from the initial network,
||f_a(x) - f_b(x)|| / ||f_a(x) - f_0(x)|| < 2e-3 (measured 1.3e-4). Parameters are not compared
element-wise: Adam's first steps move every weight by ~lr * sign(gradient), so weights whose
gradient is ~0 (the 2 x 2 maps of the last level at a 64-px crop) take a +-lr step decided by
float rounding in either run without changing what the network computes.
"""
from __future__ import annotations

import contextlib
import os
import socket

import numpy as np
import pytest
import torch

from epick.trainer.data import Sample

TOL = 2e-3
CROP = 64


def samples(n: int, seed: int, dataset: str = "d", exemplar: bool = False) -> list[Sample]:
    """Noise images with dark blobs at known centres (network pixels)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.normal(150, 20, (96, 96))
        pts = rng.uniform(10, 86, (int(rng.integers(2, 6)), 2))
        yy, xx = np.mgrid[:96, :96]
        for x, y in pts:
            img -= 80 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 18.0)
        out.append(Sample(f"{dataset}{i}", dataset, np.clip(img, 0, 255).astype(np.uint8), pts,
                          diameter=8.0, exemplar=exemplar))
    return out


def config(**kw):
    from epick.trainer.train import TrainConfig

    # repeats=1: one random crop per image and epoch, 3 steps per epoch (float rounding differences
    # between 1 and 2 processes grow with the number of Adam steps on this tiny network)
    base = dict(epochs=2, batch_size=4, crop=CROP, lr=1e-3, lr_steps=(), width=0.125, progress=False,
                val_fraction=0.0, ddp=True, amp=False, repeats=1)
    return TrainConfig(**{**base, **kw})


def network(seed: int = 0):
    from epick.trainer.network import NetworkConfig, build_detector

    torch.manual_seed(seed)
    return build_detector(NetworkConfig(width=0.125, head_conv=32))


def continual(cfg, checkpoint=None, resume=False):
    """Continual learning: 7 new samples + 3 exemplars shuffled together into global batches of 4
    (a rank may hold exemplars and distil while the other does not), a frozen teacher; the last
    batch of 2 is filled up to 4."""
    from epick.trainer.train import fit

    result = fit(network(0), samples(7, 1), [], cfg, exemplars=samples(3, 2, "old", True), teacher=network(1),
                 checkpoint=checkpoint, resume=resume)
    return result.best_state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def group(rank: int, world: int, port: int):
    """Join a gloo group as torchrun would set it up (environment variables)."""
    from epick.trainer.distributed import process_group

    env = dict(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port))
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with process_group("cpu") as ctx:
            yield ctx
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def two_ranks(rank: int, port: int, folder: str) -> None:
    """One of 2 gloo processes: 1 epoch of continual learning (rank 0 writes its checkpoint), then
    epoch 2 resumed from the checkpoint of a 1-process epoch 1."""
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    with group(rank, 2, port):
        continual(config(epochs=1), checkpoint=os.path.join(folder, "two.ckpt"))
        state = continual(config(epochs=2), checkpoint=os.path.join(folder, "one.ckpt"), resume=True)
        if rank == 0:
            save_file(state, os.path.join(folder, "resumed_on_two.safetensors"))


def heatmaps(state: dict | None) -> torch.Tensor:
    """Heatmap logits of a network with ``state`` (None: the initial one) on 3 held-out images."""
    net = network(0)
    if state is not None:
        net.load_state_dict(state)
    x = torch.from_numpy(np.stack([s.image[:CROP, :CROP] for s in samples(3, 9)])[:, None].astype(np.float32) / 255)
    with torch.no_grad():
        return net.eval()(x)[0]


def difference(a: dict, b: dict) -> float:
    """||f_a - f_b|| / ||f_a - f_0|| on the held-out images (see the module docstring)."""
    fa, fb, f0 = heatmaps(a), heatmaps(b), heatmaps(None)
    return float((fa - fb).norm() / (fa - f0).norm())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Continual learning on 1 process: epoch 1 (checkpoint) and 2 epochs straight; on 2 processes:
    epoch 1, and epoch 2 resumed from the 1-process checkpoint."""
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    from epick.trainer.checkpoint import load_checkpoint

    folder = tmp_path_factory.mktemp("ddp")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with group(0, 1, free_port()):
            continual(config(epochs=1), checkpoint=folder / "one.ckpt")
            one = load_checkpoint(folder / "one.ckpt")
            straight = continual(config(epochs=2))
    finally:
        torch.set_num_threads(before)
    mp.spawn(two_ranks, args=(free_port(), str(folder)), nprocs=2, join=True)
    return {"one": one, "two": load_checkpoint(folder / "two.ckpt"), "straight": straight,
            "resumed": load_file(str(folder / "resumed_on_two.safetensors")),
            "resumed_ckpt": load_checkpoint(folder / "one.ckpt")}


@pytest.mark.slow   # 2 spawned processes + 4 short trainings: ~15 s alone, minutes on the shared 2 cores
def test_two_ranks_train_the_one_rank_model(runs):
    """1 epoch = 3 steps. Measured: 1.3e-4; with per-rank loss normalisation (DDP's plain average
    of per-rank losses) 8.9e-3, with per-rank BatchNorm statistics 0.032: TOL = 2e-3 tells them apart."""
    assert runs["one"].epoch == runs["two"].epoch == 0 and set(runs["two"].net) == set(runs["one"].net)
    d = difference(runs["one"].net, runs["two"].net)
    assert d < TOL, d
    assert runs["one"].log[0]["loss"] == pytest.approx(runs["two"].log[0]["loss"], rel=1e-3)
    assert difference(runs["one"].net, runs["straight"]) > 10 * TOL    # a second epoch is another model


@pytest.mark.slow
def test_resume_on_another_number_of_processes(runs):
    """Epoch 1 on 1 process, epoch 2 resumed on 2 processes == 2 epochs on 1 process."""
    assert runs["resumed_ckpt"].epoch == 1 and len(runs["resumed_ckpt"].log) == 2
    d = difference(runs["straight"], runs["resumed"])
    assert d < TOL, d


def test_global_batchnorm_is_batchnorm_on_one_rank():
    """The CPU global BatchNorm (sums all-reduced) gives BatchNorm2d's outputs, gradients and
    running statistics (cheap stand-in for the slow 2-process tests)."""
    from torch import nn

    from epick.trainer.distributed import GlobalBatchNorm2d

    torch.manual_seed(0)
    x = torch.randn(3, 5, 6, 7) * 3 + 1
    plain, ours = nn.BatchNorm2d(5), GlobalBatchNorm2d(5)
    with torch.no_grad():
        plain.weight.uniform_(0.5, 2)
        plain.bias.uniform_(-1, 1)
    ours.load_state_dict(plain.state_dict())
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    with group(0, 1, free_port()):
        ya, yb = plain(xa), ours(xb)
        (ya * torch.arange(5.0).view(1, 5, 1, 1)).square().sum().backward()
        (yb * torch.arange(5.0).view(1, 5, 1, 1)).square().sum().backward()
    torch.testing.assert_close(yb, ya, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(xb.grad, xa.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.weight.grad, plain.weight.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.running_var, plain.running_var, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.running_mean, plain.running_mean)
    ours.eval()
    plain.eval()
    torch.testing.assert_close(ours(x), plain(x))


def test_global_batches_are_full_and_split_by_slot():
    from epick.trainer.distributed import DDPContext, full_batches, local_slots

    batches = [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert full_batches(batches, 4) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 1, 2, 3]]
    assert full_batches([[1]], 4) == [[1, 1, 1, 1]]
    cpu = torch.device("cpu")
    shares = [local_slots(range(4), DDPContext(r, 3, cpu)) for r in range(3)]
    assert shares == [[0, 3], [1], [2]]


def test_ddp_outside_torchrun_says_how_to_start(monkeypatch):
    from epick.runtime.errors import EpickError
    from epick.trainer.distributed import process_group

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(EpickError, match="torchrun --nproc_per_node N"):
        with process_group("cpu"):
            pass


@pytest.mark.slow   # torchrun starts 2 processes that each import torch and read the data
def test_torchrun_epick_train_ddp_writes_one_model(tmp_path):
    """The command line of the README: `torchrun --nproc_per_node 2 --no-python epick train ... --ddp`;
    rank 0 alone writes the checkpoint and the model file, which loads and holds the run's log."""
    import shutil
    import subprocess
    import sys

    from epick.trainer.checkpoint import load_checkpoint
    from epick.trainer.modelfile import read_model_file
    from test_trainer_common import KINDS, write_dataset

    torchrun = shutil.which("torchrun") or pytest.skip("torchrun is not on PATH")
    mics, stars = write_dataset(tmp_path / "data", "apo", 4, seed=1)
    out = tmp_path / "ddp.epick"
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()), "--no-python",
           sys.executable, "-m", "epick.runtime.cli", "train", "--data", str(mics), str(stars), "apo",
           "--diameter", str(KINDS["apo"]), "--epochs", "2", "--batch-size", "2", "--crop", "128",
           "--width", "0.125", "--target-width", "256", "--val-fraction", "0", "--device", "cpu", "--quiet",
           "-o", str(out), "--ddp", "--keep-checkpoint"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("wrote ") == 1 and "2 processes (cpu), global batch 2" in run.stdout
    model = read_model_file(out)
    assert [row["epoch"] for row in model.metadata["training"]["log"]] == [1, 2]
    assert model.metadata["training"]["ddp"] is True
    assert load_checkpoint(out.with_name(out.name + ".ckpt")).epoch == 1
