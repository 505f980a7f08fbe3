"""Each loss term against values worked out by hand on tiny cases."""
import math

import pytest
import torch

from epick.trainer.losses import (LossTerms, distillation_loss, focal_loss, masked_l1,
                                  parameter_regularisation)


def logits_of(probs):
    p = torch.tensor(probs, dtype=torch.float64)
    return torch.log(p / (1 - p)).float().reshape(1, 1, 1, -1)


def heat(values):
    return torch.tensor(values, dtype=torch.float32).reshape(1, 1, 1, -1)


def test_focal_loss_plain_by_hand():
    # Y = [1, 0.5, 0], p = [0.5, 0.5, 0.2], N = 1:
    # pos: (1-.5)^2 log .5 = -0.1732868; neg: (1-.5)^4 .5^2 log .5 = -0.0108304;
    # neg: 1 * .2^2 log .8 = -0.0089257  -> L = 0.1930429
    loss = focal_loss(logits_of([0.5, 0.5, 0.2]), heat([1, 0.5, 0]))
    assert loss.item() == pytest.approx(0.1930429, abs=1e-5)


def test_focal_loss_sparse_by_hand():
    # Y = [1, 0, 0, .5], p = [.5, .8, .6, .3]
    # cell0 labelled pos: .25 log .5 = -0.1732868
    # cell1 p=.8 > tau1: pseudo pos: .2^2 log .8 = -0.0089257
    # cell2 p=.6 in [tau2, tau1]: ignored
    # cell3 p=.3 < tau2: neg .5^4 .3^2 log .7 = -0.0020063
    # N = 2 -> L = 0.0921094
    logits, target = logits_of([0.5, 0.8, 0.6, 0.3]), heat([1, 0, 0, 0.5])
    assert focal_loss(logits, target, sparse=True).item() == pytest.approx(0.0921094, abs=1e-5)
    # plain on the same: negatives .64 log .2 = -1.0300404, .36 log .4 = -0.3298648, -0.0020063; N=1
    assert focal_loss(logits, target).item() == pytest.approx(1.5351983, abs=1e-5)


def test_focal_loss_without_positives_is_the_negative_sum():
    # no centre: N clamps to 1; Y=0, p=.5: .25 log .5 each, two cells -> 0.3465736
    assert focal_loss(logits_of([0.5, 0.5]), heat([0, 0])).item() == pytest.approx(0.3465736, abs=1e-5)


def test_masked_l1_by_hand():
    pred = torch.zeros(1, 2, 2, 2)
    pred[0, :, 0, 0] = torch.tensor([0.25, 0.75])
    pred[0, :, 1, 1] = torch.tensor([5.0, 5.0])  # not a centre: ignored
    target = torch.zeros(1, 2, 2, 2)
    target[0, :, 0, 0] = torch.tensor([0.5, 0.5])
    target[0, :, 1, 0] = torch.tensor([1.0, 0.0])
    mask = torch.zeros(1, 1, 2, 2)
    mask[0, 0, 0, 0] = mask[0, 0, 1, 0] = 1
    # |.25-.5| + |.75-.5| + |0-1| + |0-0| = 1.5, N = 2 -> 0.75
    assert masked_l1(pred, target, mask).item() == pytest.approx(0.75)


def test_distillation_loss_by_hand():
    f_s, f_t = torch.ones(1, 2, 2, 2), torch.zeros(1, 2, 2, 2)  # MSE 1
    h_s, h_t = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)  # sigmoid equal: 0
    h_t[0, 0, 0, 0] = math.log(3.0)  # sigmoid = .75 vs .5: (.25^2)/4 = 0.015625
    o_s, o_t = torch.full((1, 2, 2, 2), 0.5), torch.zeros(1, 2, 2, 2)  # MSE .25
    loss = distillation_loss(f_s, f_t, h_s, h_t, o_s, o_t)
    assert loss.item() == pytest.approx(1 + 0.015625 + 0.25, abs=1e-6)


def test_parameter_regularisation_by_hand():
    torch.manual_seed(0)
    student = torch.nn.Linear(2, 1)
    old = {k: v.detach().clone() for k, v in student.named_parameters()}
    with torch.no_grad():
        student.weight += torch.tensor([[1.0, -2.0]])
        student.bias += 3.0
    # 1 + 4 + 9 = 14
    assert parameter_regularisation(student, old).item() == pytest.approx(14.0, abs=1e-5)


def test_total_uses_paper_weights():
    t = LossTerms(heatmap=torch.tensor(1.0), offset=torch.tensor(2.0), size=torch.tensor(10.0),
                  distill=torch.tensor(10.0), reg=torch.tensor(100.0))
    # 1 + 1.0*2 + 0.1*10 + 0.1*10 + 0.01*100 = 6
    assert t.total.item() == pytest.approx(6.0)
    assert set(t.as_floats()) == {"loss", "heatmap", "offset", "size", "distill", "reg"}
