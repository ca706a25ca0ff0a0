import math

import torch
import torch.nn.functional as F

from onebit.training.distill import LogitCache, alpha_for_epoch, distillation_loss


def _manual(s, t, y, alpha, T):
    ps = torch.softmax(s / T, 1)
    pt = torch.softmax(t / T, 1)
    kl = (pt * (pt.log() - ps.log())).sum(1).mean()
    ce = -torch.log_softmax(s, 1)[torch.arange(len(y)), y].mean()
    return alpha * T * T * kl + (1 - alpha) * ce


def test_distillation_loss_matches_formula():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    for alpha, T in ((0.9, 4.0), (0.5, 1.0), (0.0, 2.0), (1.0, 3.0)):
        got = distillation_loss(s, t, y, alpha, T)
        assert torch.allclose(got, _manual(s, t, y, alpha, T), atol=1e-6), (alpha, T)


def test_distillation_edge_cases():
    s = torch.randn(4, 3)
    # identical logits: no soft loss
    assert distillation_loss(s, s.clone(), None, 1.0, 4.0).abs() < 1e-6
    # alpha = 0 is plain cross-entropy
    y = torch.tensor([0, 1, 2, 0])
    assert torch.allclose(distillation_loss(s, torch.randn(4, 3), y, 0.0, 4.0), F.cross_entropy(s, y))
    # the T^2 factor keeps the soft gradient's scale: gradient at large T ~ (s - t) / (n * classes)
    s2 = torch.zeros(1, 2, requires_grad=True)
    distillation_loss(s2, torch.tensor([[1.0, -1.0]]), None, 1.0, 100.0).backward()
    assert math.isclose(float(s2.grad[0, 0]), -1.0 / 2, rel_tol=1e-2)


def test_wu_schedule():
    assert [alpha_for_epoch(0.5, 2, e) for e in range(4)] == [1.0, 1.0, 0.5, 0.5]


def test_logit_cache_calls_teacher_once_per_sample():
    calls = []

    def teacher(x):
        calls.append(len(x))
        return x[:, :3] * 2

    c = LogitCache(10, 3)
    x = torch.randn(4, 5)
    idx = torch.tensor([1, 3, 5, 7])
    a = c.get(teacher, x, idx)
    b = c.get(teacher, x, idx)
    assert torch.equal(a, b) and torch.allclose(a, x[:, :3] * 2) and calls == [4]
