"""Quantizers: forward values and gradients against the closed forms of their docstrings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from onebit import quantizers as Q

X = [-2.0, -1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0]


def _grad(fn, xs, **kw):
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    y = fn(x, **kw)
    y.backward(torch.ones_like(y))
    return y.detach().numpy(), x.grad.numpy()


def np_sign(x):
    x = np.asarray(x)
    return np.where(x >= 0, 1.0, -1.0)


@pytest.mark.parametrize("clip", [1.0, 0.5, 1.3])
def test_ste_sign(clip):
    y, g = _grad(Q.ste_sign, X, clip_value=clip)
    np.testing.assert_array_equal(y, np_sign(X))
    np.testing.assert_array_equal(g, (np.abs(X) <= clip).astype(float))


def test_sign_of_zero_is_plus_one():
    for fn in (Q.ste_sign, Q.approx_sign, Q.swish_sign, Q.sign):
        assert fn(torch.zeros(3)).tolist() == [1.0, 1.0, 1.0]


def test_ste_sign_edge_at_clip_value_passes_gradient():
    _, g = _grad(Q.ste_sign, [1.0, -1.0, 1.0000001, -1.0000001])
    assert g.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_approx_sign():
    y, g = _grad(Q.approx_sign, X)
    np.testing.assert_array_equal(y, np_sign(X))
    ax = np.abs(X)
    np.testing.assert_allclose(g, np.where(ax <= 1, 2 - 2 * ax, 0.0))
    assert g[X.index(0.0)] == 2.0 and g[X.index(1.0)] == 0.0


@pytest.mark.parametrize("beta", [5.0, 10.0, 1.0])
def test_swish_sign(beta):
    y, g = _grad(Q.swish_sign, X, beta=beta)
    np.testing.assert_array_equal(y, np_sign(X))
    x = np.array(X)
    expected = beta * (2 - beta * x * np.tanh(beta * x / 2)) / (1 + np.cosh(beta * x))
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    assert g[X.index(0.0)] == pytest.approx(beta)  # peak: beta * 2 / 2


def test_swish_sign_gradient_is_derivative_of_swish_curve():
    # SignSwish(x) = 2 sigmoid(bx)(1 + bx(1 - sigmoid(bx))) - 1; its derivative is the stated gradient.
    beta = 5.0
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    s = torch.sigmoid(beta * x)
    curve = 2 * s * (1 + beta * x * (1 - s)) - 1
    (auto,) = torch.autograd.grad(curve.sum(), x)
    _, g = _grad(Q.swish_sign, x.detach().tolist(), beta=beta)
    np.testing.assert_allclose(g, auto.numpy(), rtol=1e-9, atol=1e-12)


def test_swish_sign_large_inputs_have_zero_finite_gradient():
    _, g = _grad(Q.swish_sign, [-500.0, 500.0], beta=5.0)
    assert np.all(np.isfinite(g)) and np.all(g == 0)


def test_magnitude_aware_sign_per_output_channel():
    w = torch.tensor([[0.5, -1.5, 0.0], [-0.2, 0.2, 0.8]], dtype=torch.float64, requires_grad=True)
    y = Q.magnitude_aware_sign(w)
    alpha = np.array([[2.0 / 3], [0.4]])
    np.testing.assert_allclose(y.detach().numpy(), alpha * np_sign(w.detach().numpy()))
    y.sum().backward()
    # alpha is a constant in the backward pass: g * alpha * 1_{|x| <= 1}
    mask = (w.detach().abs() <= 1).double().numpy()
    np.testing.assert_allclose(w.grad.numpy(), alpha * mask)


def test_magnitude_aware_sign_one_dimensional_has_one_channel_per_element():
    # dim 0 is the channel: each element is its own channel, alpha = |x| (larq: a mean over no axes)
    x = torch.tensor([0.5, -1.5, 0.0, -0.2, 2.0], dtype=torch.float64, requires_grad=True)
    y = Q.magnitude_aware_sign(x)
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy())
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 0.0, 0.0, 0.2, 0.0])  # |x| * 1_{|x| <= 1}
    np.testing.assert_array_equal(Q.xnor_weight_scale(x.detach()).numpy(), np.abs(x.detach().numpy()))


def test_magnitude_aware_sign_conv_weight_shape():
    w = torch.randn(4, 3, 3, 3)
    y = Q.magnitude_aware_sign(w)
    alpha = w.abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(y.abs().amax(dim=(1, 2, 3)), alpha)


def test_ste_heaviside():
    y, g = _grad(Q.ste_heaviside, X)
    np.testing.assert_array_equal(y, (np.array(X) > 0).astype(float))
    assert y[X.index(0.0)] == 0.0
    np.testing.assert_array_equal(g, (np.abs(X) <= 1).astype(float))


def test_ste_tern_fixed_threshold():
    xs = [-1.0, -0.06, -0.05, -0.04, 0.0, 0.04, 0.05, 0.06, 2.0]
    y, g = _grad(Q.ste_tern, xs, threshold_value=0.05)
    # larq: sign(sign(x + t) + sign(x - t)); |x| = t itself maps to +-1, only |x| < t to 0
    assert y.tolist() == [-1.0, -1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert g.tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def np_larq_tern(x: np.ndarray, t: float) -> np.ndarray:
    """larq's ternarization, written with numpy's three-valued sign."""
    return np.sign(np.sign(x + t) + np.sign(x - t))


@pytest.mark.parametrize("t", [0.0, 0.05, 0.25, 1.0])
def test_ste_tern_matches_larq_formula_at_and_around_the_threshold(t):
    t32 = float(np.float32(t))  # the threshold as the float32 tensor sees it
    edge = np.float32(t32)
    xs = np.array(
        [
            0.0,
            edge,
            -edge,
            np.nextafter(edge, np.float32(0)),
            np.nextafter(edge, np.float32(9)),
            -np.nextafter(edge, np.float32(0)),
            -np.nextafter(edge, np.float32(9)),
            3.0,
            -3.0,
        ],
        dtype=np.float32,
    )
    y = Q.ste_tern(torch.from_numpy(xs), threshold_value=t32).numpy()
    np.testing.assert_array_equal(y, np_larq_tern(xs, np.float32(t32)))
    if t > 0:
        assert y[1] == 1.0 and y[2] == -1.0 and y[0] == 0.0
    else:
        assert y[0] == 0.0  # t = 0: torch.sign, 0 stays 0 as in larq


def test_ste_tern_twn_threshold():
    xs = [-1.0, -0.2, 0.1, 0.5, 1.0]  # mean|x| = 0.56 -> t = 0.392
    y, _ = _grad(Q.ste_tern, xs, ternary_weight_networks=True)
    assert y.tolist() == [-1.0, 0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_dorefa(k):
    xs = [-0.5, 0.0, 0.1, 0.2, 0.5, 0.7, 1.0, 1.5]
    y, g = _grad(Q.dorefa, xs, k_bit=k)
    n = 2**k - 1
    np.testing.assert_allclose(y, np.round(np.clip(xs, 0, 1) * n) / n)
    assert g.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert len(np.unique(y)) <= n + 1


def test_residual_sign_two_bits_by_hand():
    x = torch.tensor([0.9, -0.3, 0.1, -1.5], dtype=torch.float64, requires_grad=True)
    y = Q.residual_sign(x, bits=2)  # 1-D input: one mean per binarization
    r1 = np.array([0.9, -0.3, 0.1, -1.5])
    a1 = np.abs(r1).mean()
    r2 = r1 - a1 * np_sign(r1)
    a2 = np.abs(r2).mean()
    expected = a1 * np_sign(r1) + a2 * np_sign(r2)
    np.testing.assert_allclose(y.detach().numpy(), expected)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (np.abs(r1) <= 1).astype(float))


def test_residual_sign_per_channel_and_more_bits_approximate_better():
    torch.manual_seed(0)
    x = torch.randn(8, 4, 5, 5)
    errs = [(Q.residual_sign(x, bits=b) - x).abs().mean().item() for b in (1, 2, 3)]
    assert errs[0] > errs[1] > errs[2]
    one = Q.residual_sign(x, bits=1)
    alpha = x.abs().mean(dim=(0, 2, 3), keepdim=True)
    torch.testing.assert_close(one, alpha * Q.sign(x))


def test_residual_sign_sample_scale_by_hand():
    x = torch.tensor([[0.9, -0.3, 0.1], [-1.5, 2.0, 0.5]], dtype=torch.float64)
    y = Q.residual_sign(x, bits=2, scale="sample").numpy()
    for n, row in enumerate(x.numpy()):  # each sample its own mean, per plane
        a1 = np.abs(row).mean()
        r2 = row - a1 * np_sign(row)
        a2 = np.abs(r2).mean()
        np.testing.assert_allclose(y[n], a1 * np_sign(row) + a2 * np_sign(r2))


def test_residual_sign_sample_scale_ignores_the_batch_and_channel_scale_does_not():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5)
    alone = torch.cat([Q.residual_sign(x[i : i + 1], bits=3, scale="sample") for i in range(4)])
    torch.testing.assert_close(Q.residual_sign(x, bits=3, scale="sample"), alone)
    # the default rule averages over the batch: an image's output depends on its batch mates
    per_channel = Q.residual_sign(x, bits=3)
    assert not torch.allclose(per_channel[:1], Q.residual_sign(x[:1], bits=3))


def test_residual_sign_scale_is_validated_and_kept_in_the_config():
    with pytest.raises(ValueError, match="scale"):
        Q.residual_sign(torch.zeros(2, 3), scale="pixel")
    with pytest.raises(ValueError, match="batch dim"):
        Q.residual_sign(torch.zeros(3), scale="sample")
    with pytest.raises(ValueError, match="scale"):
        Q.ResidualSign(scale="tensor")
    q = Q.get({"name": "residual_sign", "bits": 3, "scale": "sample"})
    assert q.get_config() == {"bits": 3, "clip_value": 1.0, "scale": "sample"}
    assert Q.get("residual_sign").scale == "channel"  # the default is the rule the recipes train with


@pytest.mark.parametrize("scale", ["channel", "sample"])
@pytest.mark.parametrize("shape", [(3, 5, 4, 4), (6, 7)])
def test_residual_sign_engine_reference_is_the_quantizer(scale, shape):
    """runtime/reference.py (numpy, NHWC) defines the engine's residual_sign op: the training forward."""
    from onebit.runtime.reference import _op_residual_sign

    torch.manual_seed(1)
    x = torch.randn(*shape)
    want = Q.residual_sign(x, bits=3, scale=scale).numpy()
    nhwc = x.numpy().transpose(0, 2, 3, 1) if x.dim() == 4 else x.numpy()
    got = _op_residual_sign(nhwc, {"attrs": {"bits": 3, "scale": scale}}, {})
    got = got.transpose(0, 3, 1, 2) if x.dim() == 4 else got
    # the means differ only in summation order (float64 here, float32 in torch): the same planes,
    # scales a few ulps apart (a flipped plane would differ by a whole a_i, about 0.1 here)
    np.testing.assert_allclose(got, want, rtol=5e-6, atol=1e-6)


def test_xnor_activation_scale_matches_definition():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 6)
    k = Q.xnor_activation_scale(x, (3, 3), stride=1, padding=1)
    a = x.abs().mean(dim=1)
    # interior position (2, 3): plain 3x3 average of A
    assert k.shape == (2, 1, 6, 6)
    torch.testing.assert_close(k[:, 0, 2, 3], a[:, 1:4, 2:5].mean(dim=(1, 2)))
    # corner: zeros in the padding
    torch.testing.assert_close(k[:, 0, 0, 0], a[:, 0:2, 0:2].sum(dim=(1, 2)) / 9)


class TestRegistry:
    def test_get_by_name_dict_module_callable(self):
        assert isinstance(Q.get("ste_sign"), Q.SteSign)
        assert Q.get("ste_sign", clip_value=1.3).clip_value == 1.3
        q = Q.get({"name": "swish_sign", "beta": 10.0})
        assert isinstance(q, Q.SwishSign) and q.beta == 10.0
        m = Q.ApproxSign()
        assert Q.get(m) is m
        assert Q.get(torch.tanh) is torch.tanh
        assert Q.get(None) is None

    def test_larq_aliases(self):
        assert isinstance(Q.get("SteSign"), Q.SteSign)
        assert isinstance(Q.get("DoReFa", k_bit=3), Q.DoReFa)

    def test_every_registered_quantizer_round_trips_its_config(self):
        for name in Q.list_quantizers():
            q = Q.get(name)
            again = Q.get({"name": name, **q.get_config()})
            assert type(again) is type(q) and again.get_config() == q.get_config()
            x = torch.randn(4, 3, 2, 2)
            torch.testing.assert_close(q(x), again(x))

    def test_precisions(self):
        assert Q.get("ste_sign").precision == 1
        assert Q.get("approx_sign").precision == 1
        assert Q.get("ste_tern").precision == 2
        assert Q.get("dorefa", k_bit=4).precision == 4
        assert Q.get("residual_sign", bits=3).precision == 3
        assert Q.precision_of(None) == 32

    def test_unknown_name_lists_known_names(self):
        with pytest.raises(ValueError, match=r"unknown quantizer 'ste_sgn'.*ste_sign"):
            Q.get("ste_sgn")

    def test_bad_kwargs_and_values(self):
        with pytest.raises(TypeError, match="ste_sign"):
            Q.get("ste_sign", beta=3)
        with pytest.raises(ValueError, match="clip_value"):
            Q.get("ste_sign", clip_value=-1)
        with pytest.raises(ValueError, match="k_bit"):
            Q.dorefa(torch.zeros(2), k_bit=0)
        with pytest.raises(ValueError, match="bits"):
            Q.ResidualSign(bits=0)
        with pytest.raises(ValueError, match="no 'name'"):
            Q.get({"clip_value": 1.0})
        with pytest.raises(ValueError, match="cannot interpret"):
            Q.get(42)

    def test_module_and_functional_agree(self):
        x = torch.randn(10)
        torch.testing.assert_close(Q.SwishSign(beta=3.0)(x), Q.swish_sign(x, beta=3.0))
        assert math.isclose(Q.SteSign(1.2).clip_value, 1.2)
