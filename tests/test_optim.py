"""Bop, CaseOptimizer, parameter groups, constraints and the bipolar regularizer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from onebit import optim, regularizers
from onebit.nn import QuantConv2d, QuantLinear

BIN = dict(input_quantizer="ste_sign", weight_quantizer="ste_sign", weight_constraint="weight_clip")


def small_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        QuantConv2d(4, 4, 3, padding=1, bias=False, **BIN),
        nn.BatchNorm2d(4),
        nn.Flatten(),
        QuantLinear(4 * 4 * 4, 3, **BIN),
    )


def test_bop_flip_rule_by_hand():
    w = nn.Parameter(torch.tensor([0.3, -0.7, 0.2, -0.1]))
    opt = optim.Bop([w], threshold=0.5, gamma=0.5)
    w.grad = torch.tensor([2.0, -2.0, -2.0, 0.4])
    opt.step()
    # weights become +-1 at the first step; m = 0.5 * g = [1, -1, -1, 0.2]
    # flip where |m| > 0.5 and sign(m) == sign(w): [+1 flips, -1 flips, +1 stays, -1 stays]
    assert w.tolist() == [-1.0, 1.0, 1.0, -1.0]
    w.grad = torch.zeros(4)
    opt.step()  # m = [0.5, -0.5, -0.5, 0.1]: |m| not > 0.5 -> no flip
    assert w.tolist() == [-1.0, 1.0, 1.0, -1.0]
    torch.testing.assert_close(opt.state[w]["m"], torch.tensor([0.5, -0.5, -0.5, 0.1]))


def test_bop_argument_checks():
    p = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="gamma"):
        optim.Bop(p, gamma=0.0)
    with pytest.raises(ValueError, match="threshold"):
        optim.Bop(p, threshold=-1)


def test_case_optimizer_trains_and_round_trips_state():
    m = small_model()
    binary = optim.binary_parameters(m)
    assert len(binary) == 2
    is_bin = optim.is_binary_parameter(m)
    rest = [p for p in m.parameters() if not is_bin(p)]
    opt = optim.CaseOptimizer(optim.Bop(binary, threshold=1e-6, gamma=1e-2), torch.optim.Adam(rest, lr=1e-2))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x, y = torch.randn(8, 1, 4, 4), torch.randint(0, 3, (8,))
    for _ in range(3):
        loss = nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    assert opt.optimizers[1].param_groups[0]["lr"] == pytest.approx(1e-2 / 8)
    for p in binary:
        assert set(p.unique().tolist()) <= {-1.0, 1.0}
    sd = opt.state_dict()
    opt2 = optim.CaseOptimizer(optim.Bop(binary), torch.optim.Adam(rest, lr=1.0))
    opt2.load_state_dict(sd)
    assert opt2.optimizers[1].param_groups[0]["lr"] == pytest.approx(1e-2 / 8)
    torch.testing.assert_close(opt2.state[binary[0]]["m"], opt.state[binary[0]]["m"])


def test_case_optimizer_rejects_overlap_and_empty():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="claimed by optimizer 0"):
        optim.CaseOptimizer(torch.optim.SGD([a, b], lr=1), torch.optim.SGD([b], lr=1))
    with pytest.raises(TypeError, match="not an Optimizer"):
        optim.CaseOptimizer("adam")
    with pytest.raises(ValueError, match="CaseOptimizer state"):
        optim.CaseOptimizer(torch.optim.SGD([a], lr=1)).load_state_dict({})


def test_param_groups_keep_decay_off_binary_weights():
    m = small_model()
    groups = {g["name"]: g for g in optim.param_groups(m, lr=0.1, weight_decay=1e-4)}
    assert groups["binary"]["weight_decay"] == 0.0
    assert len(groups["binary"]["params"]) == 2
    assert groups["float"]["weight_decay"] == 1e-4
    assert groups["float_no_decay"]["weight_decay"] == 0.0
    n_all = sum(p.numel() for p in m.parameters())
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == n_all


def test_binarynet_lr_scaling():
    m = small_model()
    groups = optim.param_groups(m, lr=0.01, binarynet_lr_scaling=True)
    conv = next(g for g in groups if g["name"] == "binary:2")
    fan_in = fan_out = 4 * 9
    assert conv["lr"] == pytest.approx(0.01 / math.sqrt(1.5 / (fan_in + fan_out)))
    lin = next(g for g in groups if g["name"] == "binary:5")
    assert lin["lr"] == pytest.approx(0.01 / math.sqrt(1.5 / (64 + 3)))


def test_constrain_hook_clips_after_each_step():
    m = small_model()
    opt = torch.optim.SGD(m.parameters(), lr=100.0)
    optim.constrain(opt, m)
    m(torch.randn(4, 1, 4, 4)).sum().backward()
    opt.step()
    for p in optim.binary_parameters(m):
        assert p.abs().max() <= 1.0
    assert m[0].weight.abs().max() > 1.0  # float layers untouched


def test_bipolar_regularizer_formula_and_gradient():
    m = small_model()
    reg = regularizers.bipolar(m, lam=0.5)
    ws = optim.binary_parameters(m)
    expected = 0.5 * sum((1 - w.detach() ** 2).sum() for w in ws)
    torch.testing.assert_close(reg.detach(), expected)
    reg.backward()
    torch.testing.assert_close(ws[0].grad, -2 * 0.5 * ws[0].detach())
    assert m[0].weight.grad is None
    # minimizing it moves weights away from 0 toward +-1
    w = nn.Parameter(torch.tensor([0.1, -0.2, 0.9]))
    lin = QuantLinear(3, 1, bias=False, **BIN)
    lin.weight = nn.Parameter(w.view(1, 3))
    before = lin.weight.detach().abs().clone()
    regularizers.bipolar(lin, lam=1.0).backward()
    with torch.no_grad():
        lin.weight -= 0.1 * lin.weight.grad
    assert torch.all(lin.weight.detach().abs() > before)
    with pytest.raises(ValueError):
        regularizers.bipolar(m, lam=-1)
