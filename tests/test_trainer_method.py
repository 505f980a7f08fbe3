"""The method corrections of issue 16: full coverage per epoch, the whole exemplar set (its equal
share) per epoch in continual mode, selection on old + new validation, never an untrained "best" model, explicit
He-normal initialisation, a frozen teacher (weights and BatchNorm statistics) in continual mode, and
the optional gradient clipping.

Tiny images and one epoch each, so the file runs in seconds on one CPU thread.
"""

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from epick.trainer.data import Sample
from epick.trainer.network import HEAD_INIT_STD, HEATMAP_BIAS, NetworkConfig, build_detector
from epick.trainer.train import TrainConfig, _batches, epoch_items, fit, tile_origins

QUICK = dict(crop=64, width=0.25, lr=2e-3, progress=False, batch_size=2)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sample(name, dataset, shape=(96, 128), n=6, seed=0, exemplar=False):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=shape, dtype=np.uint8)
    pts = rng.uniform(8, min(shape) - 8, size=(n, 2))
    return Sample(name, dataset, img, pts, exemplar=exemplar, diameter=12.0)


@pytest.mark.parametrize("length,crop", [(64, 64), (100, 64), (257, 64), (40, 64), (1000, 192)])
def test_tiles_cover_every_pixel_and_stay_inside(length, crop):
    for seed in range(5):
        starts = tile_origins(length, crop, np.random.default_rng(seed))
        covered = np.zeros(max(length, crop), bool)
        for s in starts:
            assert 0 <= s and (s + crop <= length or (length <= crop and s == 0))
            covered[s:s + crop] = True
        assert covered[:length].all()
        assert len(starts) <= -(-length // crop) + 1


def test_an_epoch_covers_each_micrograph_fully_and_repeats_keeps_random_crops():
    samples = [_sample("a", "d", (96, 128)), _sample("b", "d", (200, 70), seed=1)]
    config = TrainConfig(repeats=0, **QUICK)
    items = epoch_items(samples, "new", config, np.random.default_rng(0))
    for i, s in enumerate(samples):
        covered = np.zeros(s.image.shape, bool)
        for _, j, (y0, x0) in (it for it in items if it[1] == i):
            covered[y0:y0 + 64, x0:x0 + 64] = True
        assert covered.all(), s.name
    assert epoch_items(samples, "new", TrainConfig(repeats=3, **QUICK), np.random.default_rng(0)) == \
        [("new", 0, None)] * 3 + [("new", 1, None)] * 3


def test_continual_epoch_passes_the_whole_exemplar_set():
    new = [_sample(f"n{i}", "new", seed=i) for i in range(8)]
    ex = [_sample(f"e{i}", "old", (64, 64), seed=10 + i, exemplar=True) for i in range(3)]
    batches = _batches(new, ex, TrainConfig(mode="continual", repeats=0, **QUICK), np.random.default_rng(1))
    flat = [it for b in batches for it in b]
    assert sorted({i for kind, i, _ in flat if kind == "ex"}) == [0, 1, 2]
    assert sorted({i for kind, i, _ in flat if kind == "new"}) == list(range(8))
    assert all(len(b) <= 2 for b in batches)


def test_continual_epoch_gives_the_exemplars_about_as_many_crops_as_the_new_data():
    new = [_sample(f"n{i}", "new", seed=i) for i in range(8)]
    ex = [_sample(f"e{i}", "old", (64, 64), seed=10 + i, exemplar=True) for i in range(2)]

    def count(**kw):
        batches = _batches(new, ex, TrainConfig(mode="continual", repeats=4, **QUICK, **kw), np.random.default_rng(1))
        kinds = [kind for b in batches for kind, _, _ in b]
        return kinds.count("new"), kinds.count("ex")

    assert count() == (32, 32)                      # 8 x 4 new crops, 2 x 4 exemplar crops passed 4 times
    assert count(exemplar_passes=1) == (32, 8)      # the paper's single pass
    assert count(exemplar_passes=2) == (32, 16)
    many = [_sample(f"e{i}", "old", (64, 64), seed=10 + i, exemplar=True) for i in range(20)]
    batches = _batches(new, many, TrainConfig(mode="continual", repeats=4, **QUICK), np.random.default_rng(1))
    assert [kind for b in batches for kind, _, _ in b].count("ex") == 80   # never fewer than one pass


def test_each_exemplar_pass_tiles_the_exemplars_with_its_own_offsets():
    """With tiles (--repeats 0) every extra pass over the exemplars draws its own grid offsets, as
    random crops are drawn afresh; with random crops the batches are what one draw gives."""
    new = [_sample(f"n{i}", "new", (256, 256), seed=i) for i in range(4)]
    ex = [_sample("e0", "old", (160, 160), seed=10, exemplar=True)]
    batches = _batches(new, ex, TrainConfig(mode="continual", repeats=0, exemplar_passes=6, **QUICK),
                       np.random.default_rng(3))
    origins = [origin for b in batches for kind, _, origin in b if kind == "ex"]
    assert len(origins) >= 6 * 4                  # six passes of at least a 2 x 2 grid of 64-px tiles
    assert len(set(origins)) > len(origins) / 6   # not six copies of one grid
    crops = _batches(new, ex, TrainConfig(mode="continual", repeats=2, exemplar_passes=3, **QUICK), np.random.default_rng(3))
    assert [kind for b in crops for kind, _, _ in b].count("ex") == 6
    assert all(origin is None for b in crops for _, _, origin in b)


def test_fit_never_returns_the_untrained_weights(capsys):
    torch.manual_seed(0)
    net = build_detector(NetworkConfig.narrow())
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    train = [_sample("t", "d")]
    empty_val = [Sample("v", "d", np.zeros((64, 64), np.uint8), np.zeros((0, 2)), diameter=12.0)]
    result = fit(net, train, empty_val, TrainConfig(epochs=2, repeats=1, **QUICK))
    assert result.best_ap is None and result.best_epoch == 1
    changed = [k for k in initial if not torch.equal(initial[k], result.best_state[k])]
    assert changed, "fit returned the initial weights as 'best'"
    assert all(torch.equal(result.best_state[k], v.cpu()) for k, v in net.state_dict().items())
    assert "no validation AP" in capsys.readouterr().err


def test_explicit_he_normal_initialisation():
    torch.manual_seed(1)
    net = build_detector(NetworkConfig(width=0.5))
    conv = net.backbone.level3.tree1.tree1.conv1  # 3x3, out channels 64 at width 0.5
    expected = (2.0 / (conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels)) ** 0.5
    assert float(conv.weight.detach().std()) == pytest.approx(expected, rel=0.1)
    assert float(net.heatmap[0].weight.detach().std()) == pytest.approx(HEAD_INIT_STD, rel=0.1)
    assert float(net.heatmap[-1].bias[0].detach()) == pytest.approx(HEATMAP_BIAS)
    assert float(net.offset[-1].bias.detach().abs().max()) == 0.0
    bn = net.backbone.level2.tree1.bn1
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_teacher_weights_and_batchnorm_statistics_stay_frozen_in_continual_training():
    torch.manual_seed(2)
    student = build_detector(NetworkConfig.narrow())
    teacher = build_detector(NetworkConfig.narrow())
    with torch.no_grad():  # give the teacher non-trivial BatchNorm statistics to keep
        teacher.train()
        teacher(torch.rand(2, 1, 64, 64))
    teacher.eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    new = [_sample("n", "new")]
    ex = [_sample("e", "old", (64, 64), seed=3, exemplar=True)]
    val = [_sample("v", "new", (64, 64), seed=4)]
    result = fit(student, new, val, TrainConfig(mode="continual", epochs=1, repeats=1, **QUICK),
                 exemplars=ex, teacher=teacher)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v.cpu(), before[k]), k  # running_mean / running_var / num_batches_tracked too
    assert not teacher.training
    # the kept epoch was chosen on the new validation AND the old exemplars
    assert {"val_ap_new", "val_ap_old"} <= set(result.log[0])


def _grad_norms_at_each_step(config: TrainConfig) -> list[float]:
    """Global L2 norm of the gradients each optimiser step of a tiny ``fit`` receives."""
    seen: list[float] = []

    def record(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    handle = register_optimizer_step_pre_hook(record)
    try:
        torch.manual_seed(0)
        net = build_detector(NetworkConfig.narrow())
        fit(net, [_sample("t", "d", seed=1), _sample("u", "d", seed=2)], [_sample("v", "d", seed=3)], config)
    finally:
        handle.remove()
    return seen


def test_grad_clip_caps_the_gradient_norm_of_every_optimiser_step():
    free = _grad_norms_at_each_step(TrainConfig(epochs=1, repeats=2, **QUICK))
    cap = 0.5 * min(free)
    clipped = _grad_norms_at_each_step(TrainConfig(epochs=1, repeats=2, grad_clip=cap, **QUICK))
    assert len(clipped) == len(free) >= 2
    assert max(clipped) <= cap * (1 + 1e-4)
    assert min(free) > cap   # without the option the same steps' gradients exceed the cap
    with pytest.raises(Exception, match="grad-clip"):
        TrainConfig(grad_clip=-1.0)
