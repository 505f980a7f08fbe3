"""The weight average kept by `--ema` (trainer/ema.py): the update rule, its warm-up, integer buffers."""
import pytest
import torch

from epick.trainer.ema import WeightAverage


def test_average_follows_the_rule_with_warm_up_and_copies_integer_buffers():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    avg = WeightAverage(net, decay=0.9)
    start = {k: v.clone() for k, v in avg.state_dict().items()}
    assert all(not p.requires_grad for p in avg.module.parameters()) and not avg.module.training
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net[1].num_batches_tracked += 7
    d = avg.rate()
    assert d == pytest.approx(0.1)   # first update: (1 + 0) / (10 + 0)
    avg.update(net)
    now = net.state_dict()
    for k, v in avg.state_dict().items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, d * start[k] + (1 - d) * now[k]), k
        else:
            assert torch.equal(v, now[k]), k
    avg.updates = 1000
    assert avg.rate() == pytest.approx(0.9)   # after warm-up: the decay asked for
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(net, decay=1.0)
