"""Quantizers: the functions that turn real values into binary (or few-bit) ones.

Each quantizer is three small pieces, in the style of larq's ``quantizers.py``:

* an :class:`torch.autograd.Function` holding the forward rule and its custom
  (straight-through) gradient,
* a functional form (``ste_sign(x, clip_value=1.0)``),
* an :class:`torch.nn.Module` form (``SteSign(clip_value=1.0)``) that stores the
  hyper-parameters, exposes ``precision`` (bits per value) and ``get_config()``.

Quantizers are registered by name so that layers, recipes and the command line
can refer to them as strings::

    q = onebit.quantizers.get("ste_sign")                 # SteSign()
    q = onebit.quantizers.get("ste_sign", clip_value=1.3)
    q = onebit.quantizers.get({"name": "swish_sign", "beta": 10.0})

Notation in the docstrings: ``x`` is the input, ``g`` the gradient arriving from
the loss, ``sign(0) = +1`` everywhere (so that every value has a bit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "ApproxSign",
    "DoReFa",
    "MagnitudeAwareSign",
    "Quantizer",
    "RESIDUAL_SCALES",
    "ResidualSign",
    "SteHeaviside",
    "SteSign",
    "SteTern",
    "SwishSign",
    "approx_sign",
    "dorefa",
    "get",
    "list_quantizers",
    "magnitude_aware_sign",
    "precision_of",
    "register",
    "residual_sign",
    "sign",
    "ste_heaviside",
    "ste_sign",
    "ste_tern",
    "swish_sign",
    "xnor_activation_scale",
    "xnor_weight_scale",
]


def sign(x: Tensor) -> Tensor:
    """``sign(x)`` with ``sign(0) = +1``: every value maps to exactly -1 or +1.

    ``torch.sign`` maps 0 to 0, which has no 1-bit encoding; binary networks
    need the two-valued version.
    """
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def _ste_mask(x: Tensor, clip_value: float) -> Tensor:
    """Indicator ``|x| <= clip_value`` in x's dtype (the hard-tanh STE)."""
    return (x.abs() <= clip_value).to(x.dtype)


# --------------------------------------------------------------------------- #
# Autograd functions: one per gradient rule.
# --------------------------------------------------------------------------- #


class _SteSignFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, clip_value: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        return sign(x)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return g * _ste_mask(x, ctx.clip_value), None


class _ApproxSignFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        ax = x.abs()
        return g * torch.where(ax <= 1, 2.0 - 2.0 * ax, torch.zeros_like(x))


class _SwishSignFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, beta: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.beta = beta
        return sign(x)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        b = ctx.beta
        bx = b * x
        # cosh overflows to inf for large |x|: the quotient correctly becomes 0.
        grad = b * (2.0 - bx * torch.tanh(bx / 2.0)) / (1.0 + torch.cosh(bx))
        return g * grad, None


class _SteHeavisideFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, clip_value: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return g * _ste_mask(x, ctx.clip_value), None


class _SteTernFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, threshold: Tensor | float, clip_value: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        # larq's forward, sign(sign(x + t) + sign(x - t)) with sign(0) = 0: +-1 from |x| = t on,
        # 0 strictly inside (-t, t) and, for t = 0, at x = 0. Both sums are exact at the
        # boundary (x - t == 0 only when x == t), so this is the comparison it looks like.
        return torch.sign(torch.sign(x + threshold) + torch.sign(x - threshold))

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return g * _ste_mask(x, ctx.clip_value), None, None


class _DoReFaFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, k_bit: int) -> Tensor:
        ctx.save_for_backward(x)
        levels = 2**k_bit - 1
        return torch.round(x.clamp(0.0, 1.0) * levels) / levels

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        inside = ((x >= 0) & (x <= 1)).to(g.dtype)
        return g * inside, None


#: Where :func:`residual_sign` takes its means (its ``scale`` argument).
RESIDUAL_SCALES = ("channel", "sample")


def _residual_dims(x: Tensor, scale: str) -> tuple[int, ...] | None:
    """Dims the means of :func:`residual_sign` run over (None: the whole tensor)."""
    if scale == "sample":
        return tuple(range(1, x.dim()))
    # "channel": per channel for NCHW activations, per feature for (N, C), both over the batch
    return (0, 2, 3) if x.dim() == 4 else ((0,) if x.dim() == 2 else None)


class _ResidualSignFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, bits: int, clip_value: float, scale: str) -> Tensor:
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        r = x
        out = torch.zeros_like(x)
        dims = _residual_dims(x, scale)
        for _ in range(bits):
            a = r.abs().mean(dim=dims, keepdim=True) if dims else r.abs().mean()
            step = a * sign(r)
            out = out + step
            r = r - step
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None, None, None]:
        (x,) = ctx.saved_tensors
        return g * _ste_mask(x, ctx.clip_value), None, None, None


# --------------------------------------------------------------------------- #
# Functional forms.
# --------------------------------------------------------------------------- #


def ste_sign(x: Tensor, clip_value: float = 1.0) -> Tensor:
    r"""Sign binarization with the straight-through estimator (BinaryNet).

    Forward: :math:`q(x) = \mathrm{sign}(x)`, with ``sign(0) = +1``.

    Gradient: :math:`\partial L/\partial x = g \cdot 1_{|x| \le c}` with
    ``c = clip_value``: the gradient of hard-tanh, so values far outside the
    clip range stop receiving updates ("cancelling the gradient when too large").

    References: Courbariaux et al., *Binarized Neural Networks*, arXiv:1602.02830.
    """
    return _SteSignFn.apply(x, float(clip_value))


def approx_sign(x: Tensor) -> Tensor:
    r"""Sign with Bi-Real Net's piecewise-polynomial gradient.

    Forward: :math:`\mathrm{sign}(x)`, ``sign(0) = +1``.

    Gradient: :math:`g \cdot (2 - 2|x|)` for :math:`|x| \le 1`, else 0: the
    derivative of the quadratic approximation of sign, a closer fit than the
    box of the plain STE.

    References: Liu et al., *Bi-Real Net*, arXiv:1808.00278.
    """
    return _ApproxSignFn.apply(x)


def swish_sign(x: Tensor, beta: float = 5.0) -> Tensor:
    r"""Sign with the SignSwish gradient (BNN+).

    Forward: :math:`\mathrm{sign}(x)`, ``sign(0) = +1``.

    Gradient: :math:`g \cdot \beta\,(2 - \beta x \tanh(\beta x / 2)) / (1 + \cosh(\beta x))`,
    the derivative of :math:`2\sigma(\beta x)(1 + \beta x(1 - \sigma(\beta x))) - 1`;
    larger ``beta`` approaches the true sign more tightly.

    References: Darabi et al., *BNN+*, arXiv:1812.11800.
    """
    if beta <= 0:
        raise ValueError(f"swish_sign: beta must be > 0, got {beta}")
    return _SwishSignFn.apply(x, float(beta))


def magnitude_aware_sign(x: Tensor, clip_value: float = 1.0) -> Tensor:
    r"""Scaled sign: :math:`\alpha \cdot \mathrm{sign}(x)` with XNOR-Net's alpha.

    Forward: :math:`\alpha_c \mathrm{sign}(x)` where :math:`\alpha_c = \mathrm{mean}|x|`
    over all dimensions but the first (per output channel / filter for a weight,
    per sample otherwise). A 1-D (or 0-D) input has one channel per element, so
    :math:`\alpha = |x|` element by element and the output is ``x`` itself, as in
    larq (which averages over every axis but its channel axis, none for 1-D).

    Gradient: alpha is a constant (detached); through the sign as
    :func:`ste_sign`: :math:`g \cdot \alpha_c \cdot 1_{|x| \le c}`.

    References: Rastegari et al., *XNOR-Net*, arXiv:1603.05279; Liu et al., Bi-Real Net.
    """
    alpha = xnor_weight_scale(x).detach()
    return alpha * ste_sign(x, clip_value)


def ste_heaviside(x: Tensor, clip_value: float = 1.0) -> Tensor:
    r"""Binarize to {0, 1} with the straight-through estimator.

    Forward: 1 if ``x > 0`` else 0. Gradient: :math:`g \cdot 1_{|x| \le c}` as :func:`ste_sign`.
    """
    return _SteHeavisideFn.apply(x, float(clip_value))


def ste_tern(
    x: Tensor,
    threshold_value: float = 0.05,
    ternary_weight_networks: bool = False,
    clip_value: float = 1.0,
) -> Tensor:
    r"""Ternarize to {-1, 0, +1} with the straight-through estimator.

    Forward (larq's): :math:`q(x) = \mathrm{sign}(\mathrm{sign}(x + t) + \mathrm{sign}(x - t))`
    with the three-valued sign (``sign(0) = 0``), i.e. +1 for :math:`x \ge t`, -1 for
    :math:`x \le -t`, 0 for :math:`|x| < t` (the threshold itself maps to ±1, and for
    ``t = 0`` the output is ``torch.sign(x)``, 0 at 0), with ``t = threshold_value``, or
    :math:`t = 0.7\,\mathrm{mean}|x|` (the TWN rule, computed over the whole tensor) when
    ``ternary_weight_networks``.

    Gradient: :math:`g \cdot 1_{|x| \le c}` as :func:`ste_sign`.

    References: Li et al., *Ternary Weight Networks*, arXiv:1605.04711.
    """
    if threshold_value < 0:
        raise ValueError(f"ste_tern: threshold_value must be >= 0, got {threshold_value}")
    threshold: Tensor | float
    if ternary_weight_networks:
        threshold = 0.7 * x.detach().abs().mean()
    else:
        threshold = float(threshold_value)
    return _SteTernFn.apply(x, threshold, float(clip_value))


def dorefa(x: Tensor, k_bit: int = 2) -> Tensor:
    r"""DoReFa-Net's k-bit uniform quantizer on [0, 1].

    Forward: :math:`\mathrm{round}(\mathrm{clip}(x, 0, 1)\,(2^k - 1)) / (2^k - 1)`.

    Gradient: :math:`g` where :math:`0 \le x \le 1`, else 0 (the clip's gradient).

    References: Zhou et al., *DoReFa-Net*, arXiv:1606.06160.
    """
    if not isinstance(k_bit, int) or k_bit < 1:
        raise ValueError(f"dorefa: k_bit must be an integer >= 1, got {k_bit!r}")
    return _DoReFaFn.apply(x, k_bit)


def residual_sign(x: Tensor, bits: int = 2, clip_value: float = 1.0, scale: str = "channel") -> Tensor:
    r"""Multiple binarizations of activations (Tang et al. 2017).

    Forward: :math:`r_1 = x`, :math:`a_i = \mathrm{mean}|r_i|`,
    :math:`r_{i+1} = r_i - a_i\,\mathrm{sign}(r_i)`; output
    :math:`\sum_{i=1}^{bits} a_i\,\mathrm{sign}(r_i)`: each extra bit binarizes the
    residual the previous bits left. The means are computed from the data, in
    training and at inference alike, over:

    * ``scale="channel"`` (the default, what the zoo's recipes and docs/experiments.md
      train with): per channel of a 4-D NCHW input over the batch and the pixels
      (dims 0, 2, 3), per feature of a 2-D input over the batch (dim 0), over the
      whole tensor otherwise. The scales depend on the whole batch: an image's
      output changes with the images batched with it (at batch 1 a 2-D input is
      reproduced exactly, ``a_1 = |x|``).
    * ``scale="sample"`` (opt-in): one scale per sample, the mean over all its
      other dims (channels and pixels); needs a batch dim (``x.dim() >= 2``).

    Deployment: a binary conv sums :math:`x_c w_c` over input channels ``c`` with a
    popcount, so only a scale that is constant over those channels factors out:
    :math:`\mathrm{conv}(\sum_i a_i s_i, W) = \sum_i a_i\,\mathrm{conv}(s_i, W)` holds
    for ``"sample"`` (the engine runs every plane through the XNOR-popcount kernel and
    sums the results scaled, at about ``bits`` times the 1-bit cost), not for
    ``"channel"``, whose per-input-channel :math:`a_i[c]` leave no popcount: it is
    exported exactly but as a float convolution with ±1 weights (the ``residual_sign``
    engine op, then ``conv2d``/``dense`` with binary weights). See docs/deployment.md,
    "Multi-bit activations".

    Gradient: straight-through with the clip of :func:`ste_sign`:
    :math:`g \cdot 1_{|x| \le c}`.

    References: Tang, Hua, Wang, *How to Train a Compact Binary Neural Network
    with High Accuracy?*, AAAI 2017.
    """
    if not isinstance(bits, int) or bits < 1:
        raise ValueError(f"residual_sign: bits must be an integer >= 1, got {bits!r}")
    if scale not in RESIDUAL_SCALES:
        raise ValueError(f"residual_sign: scale must be one of {RESIDUAL_SCALES}, got {scale!r}")
    if scale == "sample" and x.dim() < 2:
        raise ValueError(f"residual_sign: scale='sample' needs a batch dim, got shape {tuple(x.shape)}")
    return _ResidualSignFn.apply(x, bits, float(clip_value), scale)


# --------------------------------------------------------------------------- #
# XNOR-Net scaling factors (used by the layers' ``scaling="xnor"`` option).
# --------------------------------------------------------------------------- #


def xnor_weight_scale(w: Tensor) -> Tensor:
    r"""XNOR-Net's :math:`\alpha`: ``mean(|W|)`` per output filter (dim 0), broadcastable to W.

    A 1-D (or 0-D) tensor has one output channel per element: its alpha is ``|W|``
    element by element (larq's rule, whose channel axis is the last one, gives the same).
    """
    if w.dim() <= 1:
        return w.abs()
    dims = tuple(range(1, w.dim()))
    return w.abs().mean(dim=dims, keepdim=True)


def xnor_activation_scale(
    x: Tensor,
    kernel_size: tuple[int, int],
    stride: tuple[int, int] | int = 1,
    padding: tuple[int, int] | int = 0,
    dilation: tuple[int, int] | int = 1,
) -> Tensor:
    r"""XNOR-Net's activation scale :math:`K = A * k` for a convolution.

    :math:`A = \mathrm{mean}_c |x_c|` (N, 1, H, W), convolved with the box filter
    :math:`k = 1/(k_h k_w)` of the conv's kernel size, with the conv's stride,
    padding and dilation: one scale per output position, (N, 1, H', W'). The
    padded border counts as zeros (a smaller average near the edges), as in the paper.
    """
    a = x.abs().mean(dim=1, keepdim=True)
    kh, kw = kernel_size
    k = torch.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype, device=x.device)
    return nn.functional.conv2d(a, k, stride=stride, padding=padding, dilation=dilation)


# --------------------------------------------------------------------------- #
# Module forms and the registry.
# --------------------------------------------------------------------------- #

_REGISTRY: dict[str, type[Quantizer]] = {}


def register(*names: str) -> Callable[[type[Quantizer]], type[Quantizer]]:
    """Class decorator: make a quantizer reachable by :func:`get` under ``names``."""

    def wrap(cls: type[Quantizer]) -> type[Quantizer]:
        for n in names:
            if n in _REGISTRY and _REGISTRY[n] is not cls:
                raise ValueError(f"quantizer name {n!r} is already registered")
            _REGISTRY[n] = cls
        cls.name = names[0]
        return cls

    return wrap


class Quantizer(nn.Module):
    """Base of the module forms: stores hyper-parameters, knows its ``precision``."""

    name: str = ""
    #: bits per quantized value (1 for binary); read by summaries, optimizers and the exporter.
    precision: int = 32

    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters as a dict such that ``get({"name": ..., **config})`` rebuilds it."""
        return {}

    # Export protocol: how the engine computes this quantizer (read by onebit.export). A
    # quantizer of one's own (a Quantizer subclass or any module) exports by defining these.

    def sign_threshold(self) -> Tensor | float | None:
        """As an activation quantizer: ``t`` with ``forward(x) == sign(x - t)`` (``sign(0) = +1``).

        A scalar or one value per channel (dim 1 of the input); ``None`` when the forward
        is not such a sign, so the engine cannot binarize activations this way.
        """
        return None

    def sign_scale(self, w: Tensor) -> Tensor | float | None:
        """As a weight quantizer: ``a`` with ``forward(w) == a * sign(w)``, ``a`` constant per output channel.

        A scalar or a tensor broadcastable to ``w`` (one value per ``w[i]``); ``None`` when
        the forward is not such a scaled sign.
        """
        return None

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())


@register("ste_sign")
class SteSign(Quantizer):
    """Module form of :func:`ste_sign`."""

    precision = 1

    def sign_threshold(self) -> float:
        """Export: ``forward(x) == sign(x - 0)``."""
        return 0.0

    def sign_scale(self, w: Tensor) -> float:
        """Export: ``forward(w) == 1 * sign(w)``."""
        return 1.0

    def __init__(self, clip_value: float = 1.0) -> None:
        super().__init__()
        if clip_value <= 0:
            raise ValueError(f"ste_sign: clip_value must be > 0, got {clip_value}")
        self.clip_value = float(clip_value)

    def forward(self, x: Tensor) -> Tensor:
        return ste_sign(x, self.clip_value)

    def get_config(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}


@register("approx_sign")
class ApproxSign(Quantizer):
    """Module form of :func:`approx_sign`."""

    precision = 1

    def sign_threshold(self) -> float:
        """Export: ``forward(x) == sign(x - 0)``."""
        return 0.0

    def sign_scale(self, w: Tensor) -> float:
        """Export: ``forward(w) == 1 * sign(w)``."""
        return 1.0

    def forward(self, x: Tensor) -> Tensor:
        return approx_sign(x)


@register("swish_sign")
class SwishSign(Quantizer):
    """Module form of :func:`swish_sign`."""

    precision = 1

    def sign_threshold(self) -> float:
        """Export: ``forward(x) == sign(x - 0)``."""
        return 0.0

    def sign_scale(self, w: Tensor) -> float:
        """Export: ``forward(w) == 1 * sign(w)``."""
        return 1.0

    def __init__(self, beta: float = 5.0) -> None:
        super().__init__()
        if beta <= 0:
            raise ValueError(f"swish_sign: beta must be > 0, got {beta}")
        self.beta = float(beta)

    def forward(self, x: Tensor) -> Tensor:
        return swish_sign(x, self.beta)

    def get_config(self) -> dict[str, Any]:
        return {"beta": self.beta}


@register("magnitude_aware_sign")
class MagnitudeAwareSign(Quantizer):
    """Module form of :func:`magnitude_aware_sign` (1 bit plus one float per channel)."""

    precision = 1

    def __init__(self, clip_value: float = 1.0) -> None:
        super().__init__()
        self.clip_value = float(clip_value)

    def forward(self, x: Tensor) -> Tensor:
        return magnitude_aware_sign(x, self.clip_value)

    def sign_scale(self, w: Tensor) -> Tensor:
        """Export: ``forward(w) == alpha * sign(w)``, alpha = mean |w| per output channel."""
        return xnor_weight_scale(w.detach())

    def get_config(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}


@register("ste_heaviside")
class SteHeaviside(Quantizer):
    """Module form of :func:`ste_heaviside`."""

    precision = 1

    def __init__(self, clip_value: float = 1.0) -> None:
        super().__init__()
        self.clip_value = float(clip_value)

    def forward(self, x: Tensor) -> Tensor:
        return ste_heaviside(x, self.clip_value)

    def get_config(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}


@register("ste_tern")
class SteTern(Quantizer):
    """Module form of :func:`ste_tern` (2 bits per value)."""

    precision = 2

    def __init__(
        self,
        threshold_value: float = 0.05,
        ternary_weight_networks: bool = False,
        clip_value: float = 1.0,
    ) -> None:
        super().__init__()
        if threshold_value < 0:
            raise ValueError(f"ste_tern: threshold_value must be >= 0, got {threshold_value}")
        self.threshold_value = float(threshold_value)
        self.ternary_weight_networks = bool(ternary_weight_networks)
        self.clip_value = float(clip_value)

    def forward(self, x: Tensor) -> Tensor:
        return ste_tern(x, self.threshold_value, self.ternary_weight_networks, self.clip_value)

    def get_config(self) -> dict[str, Any]:
        return {
            "threshold_value": self.threshold_value,
            "ternary_weight_networks": self.ternary_weight_networks,
            "clip_value": self.clip_value,
        }


@register("dorefa")
class DoReFa(Quantizer):
    """Module form of :func:`dorefa` (``k_bit`` bits per value)."""

    def __init__(self, k_bit: int = 2) -> None:
        super().__init__()
        if not isinstance(k_bit, int) or k_bit < 1:
            raise ValueError(f"dorefa: k_bit must be an integer >= 1, got {k_bit!r}")
        self.k_bit = k_bit
        self.precision = k_bit

    def forward(self, x: Tensor) -> Tensor:
        return dorefa(x, self.k_bit)

    def get_config(self) -> dict[str, Any]:
        return {"k_bit": self.k_bit}


@register("residual_sign")
class ResidualSign(Quantizer):
    """Module form of :func:`residual_sign` (``bits`` binary planes per value, ``scale`` rule)."""

    def __init__(self, bits: int = 2, clip_value: float = 1.0, scale: str = "channel") -> None:
        super().__init__()
        if not isinstance(bits, int) or bits < 1:
            raise ValueError(f"residual_sign: bits must be an integer >= 1, got {bits!r}")
        if scale not in RESIDUAL_SCALES:
            raise ValueError(f"residual_sign: scale must be one of {RESIDUAL_SCALES}, got {scale!r}")
        self.bits = bits
        self.clip_value = float(clip_value)
        self.scale = scale
        self.precision = bits

    def forward(self, x: Tensor) -> Tensor:
        return residual_sign(x, self.bits, self.clip_value, self.scale)

    def residual_planes(self) -> tuple[int, str]:
        """Export protocol: the ``(bits, scale)`` of the :func:`residual_sign` ``forward`` computes.

        onebit.export lowers a binary-weight layer whose input quantizer declares this to
        Tang's residual planes (docs/deployment.md, "Multi-bit activations").
        """
        return self.bits, self.scale

    def get_config(self) -> dict[str, Any]:
        return {"bits": self.bits, "clip_value": self.clip_value, "scale": self.scale}


# Aliases in larq's spelling, so recipes written for larq read the same.
_REGISTRY["SteSign"] = SteSign
_REGISTRY["ApproxSign"] = ApproxSign
_REGISTRY["SwishSign"] = SwishSign
_REGISTRY["MagnitudeAwareSign"] = MagnitudeAwareSign
_REGISTRY["SteHeaviside"] = SteHeaviside
_REGISTRY["SteTern"] = SteTern
_REGISTRY["DoReFa"] = DoReFa
_REGISTRY["ResidualSign"] = ResidualSign


def list_quantizers() -> list[str]:
    """Registered quantizer names (snake_case canonical names only)."""
    return sorted(n for n, cls in _REGISTRY.items() if n == cls.name)


def get(identifier: Any, **kwargs: Any) -> nn.Module | Callable[[Tensor], Tensor] | None:
    """Resolve a quantizer from a name, a config dict, a module or a callable.

    * ``None`` -> ``None`` (no quantization: the layer stays float);
    * ``"ste_sign"`` (with optional ``**kwargs``) -> a new module;
    * ``{"name": "ste_sign", "clip_value": 1.3}`` -> a new module;
    * an ``nn.Module`` or any callable -> returned unchanged (kwargs not allowed).

    Raises ``ValueError`` naming the bad identifier and the known names, and
    ``TypeError`` for keyword arguments the quantizer does not take.
    """
    if identifier is None:
        if kwargs:
            raise ValueError("quantizer None takes no keyword arguments")
        return None
    if isinstance(identifier, dict):
        cfg = dict(identifier)
        if "name" not in cfg:
            raise ValueError(f"quantizer config {identifier!r} has no 'name' key")
        name = cfg.pop("name")
        return get(name, **{**cfg, **kwargs})
    if isinstance(identifier, str):
        cls = _REGISTRY.get(identifier)
        if cls is None:
            known = ", ".join(list_quantizers())
            raise ValueError(f"unknown quantizer {identifier!r}; known quantizers: {known}")
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise TypeError(f"quantizer {identifier!r}: {e}") from None
    if callable(identifier):
        if kwargs:
            raise ValueError("keyword arguments are only allowed with a quantizer name")
        return identifier
    raise ValueError(
        f"cannot interpret {identifier!r} as a quantizer: expected None, a name, a config dict or a callable"
    )


def precision_of(quantizer: Any) -> int:
    """Bits per value a quantizer produces: its ``precision``, 32 for None or unknown callables."""
    if quantizer is None:
        return 32
    return int(getattr(quantizer, "precision", 32))
