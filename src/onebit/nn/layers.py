"""Quantized layers: drop-in replacements for ``nn.Conv2d`` and ``nn.Linear``.

A quantized layer is the float layer plus three optional pieces, applied in
this order in the forward pass::

    x_q = input_quantizer(x)             # e.g. sign of the activations
    w_q = weight_quantizer(weight)       # e.g. sign of the latent weights
    y   = conv(x_q, w_q)                 # with binary padding if pad_value is set
    y   = y * scales                     # scaling: "xnor" (alpha, K), "alpha" or "channel"
    y   = y + bias

With both quantizers ``None`` and ``scaling=None`` the layer computes exactly
what the float layer computes (it *is* that layer: ``QuantConv2d`` subclasses
``nn.Conv2d`` and keeps its argument names and defaults), so it can replace it
anywhere, state dicts included.

``precision`` attributes tell the rest of onebit (summary, optimizers,
exporter) what is binary: ``input_precision`` and ``weight_precision`` are the
bits of the quantized input and weight (32 for float), and ``is_binary`` says
both are 1 bit, i.e. the layer can run as XNOR + popcount.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onebit import quantizers as Q
from onebit.nn.constraints import get_constraint

__all__ = ["QuantConv2d", "QuantLinear", "Scale", "SCALINGS", "explicit_padding"]

#: Values of the ``scaling`` argument.
SCALINGS = (None, "xnor", "alpha", "channel")


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def explicit_padding(
    padding: int | tuple[int, int] | str,
    kernel_size: int | tuple[int, int],
    dilation: int | tuple[int, int] = 1,
) -> tuple[int, int, int, int]:
    """A convolution's padding as (left, right, top, bottom), resolving ``"same"`` and ``"valid"``.

    ``"same"`` puts the odd pixel at the end (right, bottom), as ``nn.Conv2d`` does.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
        pads = []
        for d, k in zip(_pair(dilation), _pair(kernel_size), strict=True):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        return (left, right, top, bottom)
    ph, pw = _pair(padding)
    return (pw, pw, ph, ph)


class QuantMixin:
    """Quantizer, constraint and scaling handling shared by the quantized layers."""

    weight: Tensor

    def _init_quant(
        self,
        input_quantizer: Any,
        weight_quantizer: Any,
        weight_constraint: Any,
        scaling: str | None,
        out_features: int,
    ) -> None:
        self.input_quantizer = Q.get(input_quantizer)
        self.weight_quantizer = Q.get(weight_quantizer)
        self.weight_constraint = get_constraint(weight_constraint)
        if scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {scaling!r}; expected one of {SCALINGS}")
        self.scaling = scaling
        if scaling == "channel":
            self.scale = nn.Parameter(torch.ones(out_features))
        else:
            self.register_parameter("scale", None)
        if (
            self.weight_precision == 1
            and self.weight_constraint is None
            and hasattr(self.weight_quantizer, "clip_value")
        ):
            warnings.warn(
                f"{type(self).__name__}: binary weight quantizer "
                f"{type(self.weight_quantizer).__name__} clips its gradient but the layer has "
                "no weight_constraint; latent weights outside the clip range stop learning "
                "(pass weight_constraint='weight_clip', or train with Bop)",
                UserWarning,
                stacklevel=3,
            )
        if self.weight_constraint is not None:
            self.weight_constraint(self.weight)

    @property
    def input_precision(self) -> int:
        """Bits per quantized input value (32 when the input stays float)."""
        return Q.precision_of(self.input_quantizer)

    @property
    def weight_precision(self) -> int:
        """Bits per quantized weight (32 when the weight stays float)."""
        return Q.precision_of(self.weight_quantizer)

    @property
    def is_binary(self) -> bool:
        """True when inputs and weights are both 1-bit: an XNOR-popcount layer."""
        return self.input_precision == 1 and self.weight_precision == 1

    def quantized_weight(self) -> Tensor:
        """The weight the layer computes with: quantized, times alpha under "xnor" or "alpha" scaling.

        Under ``scaling="xnor"`` or ``"alpha"`` alpha (mean |W| per output filter) is part of the
        computation graph, so it receives gradient as in the XNOR-Net paper.
        """
        w = self.weight
        wq = self.weight_quantizer(w) if self.weight_quantizer is not None else w
        if self.scaling in ("xnor", "alpha"):
            wq = wq * Q.xnor_weight_scale(w)
        return wq

    def _scales_output(self) -> bool:
        """Whether a per-sample or per-channel factor multiplies the output before the bias."""
        return self.scaling == "channel" or (self.scaling == "xnor" and self.input_quantizer is not None)

    def weight_sign_and_scale(self) -> tuple[Tensor, Tensor] | None:
        """Export protocol: the ±1 weights and the per-output-channel factor the layer applies.

        ``(signs, scale)`` such that the layer computes ``op(x_q, signs) * scale`` before K
        (``scaling="xnor"`` with a quantized input) and the bias: ``scale`` gathers the
        weight quantizer's own factor (its ``sign_scale``, see
        :meth:`onebit.quantizers.Quantizer.sign_scale`), alpha under ``"xnor"``/``"alpha"``
        and the learned scale under ``"channel"`` (float32, one per output channel).
        ``None`` when the weight quantizer is not a (scaled) sign.
        """
        wq = self.weight_quantizer
        sign_scale = getattr(wq, "sign_scale", None)
        # Means over a filter (alpha) are taken in float64 and rounded once: a float32 sum's
        # order follows the CPU's vector width, so the exported factors would differ in the
        # last bit between CPUs (AVX2 and AVX-512 builds of PyTorch).
        w = self.weight.detach().to(torch.float64)
        a = sign_scale(w) if sign_scale is not None else None
        if a is None:
            return None
        out_ch = w.shape[0]
        scale = torch.ones(out_ch, dtype=torch.float32)
        if isinstance(a, Tensor):
            scale = scale * a.detach().to(torch.float32).cpu().reshape(out_ch)
        elif float(a) != 1.0:
            scale = scale * torch.tensor(float(a), dtype=torch.float32)
        if self.scaling in ("xnor", "alpha"):
            scale = scale * Q.xnor_weight_scale(w).to(torch.float32).cpu().reshape(out_ch)
        if self.scaling == "channel":
            scale = scale * self.scale.detach().to(torch.float32).cpu()
        signs = torch.where(w >= 0, 1.0, -1.0).to(torch.float32)
        return signs, scale

    def _quant_extra_repr(self) -> str:
        # The quantizers are child modules and print as such; add only the rest.
        parts = []
        if self.weight_constraint is not None:
            parts.append(f"weight_constraint={self.weight_constraint!r}")
        if self.scaling is not None:
            parts.append(f"scaling={self.scaling!r}")
        return ", ".join(parts)


class QuantConv2d(QuantMixin, nn.Conv2d):
    """``nn.Conv2d`` with quantized input and weight.

    Args (beyond ``nn.Conv2d``'s, which keep their names and defaults):
        input_quantizer: quantizer of the input (name, config dict, module or
            callable; ``None`` keeps it float). See :func:`onebit.quantizers.get`.
        weight_quantizer: quantizer of the latent weight (``None`` keeps it float).
        weight_constraint: ``"weight_clip"`` keeps latent weights in [-1, 1]
            after every optimizer step (see :func:`onebit.optim.constrain`).
        scaling: ``None``; ``"xnor"`` multiplies by XNOR-Net's alpha (per output
            filter) and, when the input is quantized, by K (the mean absolute
            input over channels, box-filtered to the kernel); ``"alpha"`` by alpha
            only (XNOR-Net's binary-weight scaling without K, for ablations);
            ``"channel"`` by a learned per-output-channel scale (initialized to 1).
        pad_value: value of the padded border *after* input quantization.
            ``None`` or ``0.0``: zero padding as ``nn.Conv2d``; ``1.0`` or
            ``-1.0``: the border is a valid binary value, so the layer runs
            exactly as XNOR-popcount at deployment. Only ``padding_mode="zeros"``.

    Shapes: input (N, C_in, H, W), output (N, C_out, H', W') as ``nn.Conv2d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        input_quantizer: Any = None,
        weight_quantizer: Any = None,
        weight_constraint: Any = None,
        scaling: str | None = None,
        pad_value: float | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )
        if pad_value is not None and float(pad_value) not in (0.0, 1.0, -1.0):
            raise ValueError(f"pad_value must be None, 0.0, 1.0 or -1.0, got {pad_value!r}")
        if pad_value not in (None, 0.0) and padding_mode != "zeros":
            raise ValueError(f"pad_value={pad_value} needs padding_mode='zeros', got {padding_mode!r}")
        self.pad_value = None if pad_value is None else float(pad_value)
        self._init_quant(input_quantizer, weight_quantizer, weight_constraint, scaling, out_channels)

    def explicit_padding(self) -> tuple[int, int, int, int]:
        """Padding as (left, right, top, bottom), resolving ``"same"`` and ``"valid"``."""
        return explicit_padding(self.padding, self.kernel_size, self.dilation)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"{type(self).__name__} expects a 4-D (N, C, H, W) input, got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects {self.in_channels} input channels, got "
                f"{x.shape[1]} (input shape {tuple(x.shape)})"
            )
        x_real = x
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        w = self.quantized_weight()
        # With no scale between them, the bias goes into the conv call itself: the layer then
        # computes exactly what nn.Conv2d does (its kernels may add the bias in a different
        # order from a separate add, which changes the last bit on some CPUs).
        bias = self.bias if not self._scales_output() else None
        if self.pad_value not in (None, 0.0):
            x = F.pad(x, self.explicit_padding(), value=self.pad_value)
            y = F.conv2d(x, w, bias, self.stride, 0, self.dilation, self.groups)
        else:
            y = self._conv_forward(x, w, bias)
        if self.scaling == "xnor" and self.input_quantizer is not None:
            y = y * self._activation_scale(x_real)
        elif self.scaling == "channel":
            y = y * self.scale.view(1, -1, 1, 1)
        if self.bias is not None and bias is None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def _activation_scale(self, x: Tensor) -> Tensor:
        left, right, top, bottom = self.explicit_padding()
        a = x.abs().mean(dim=1, keepdim=True)
        a = F.pad(a, (left, right, top, bottom))  # K counts the border as zeros
        kh, kw = self.kernel_size
        k = torch.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype, device=x.device)
        return F.conv2d(a, k, stride=self.stride, dilation=self.dilation)

    def extra_repr(self) -> str:
        base = super().extra_repr()
        extra = self._quant_extra_repr()
        if self.pad_value not in (None, 0.0):
            extra = f"{extra}, pad_value={self.pad_value}" if extra else f"pad_value={self.pad_value}"
        return f"{base}, {extra}" if extra else base


class QuantLinear(QuantMixin, nn.Linear):
    """``nn.Linear`` with quantized input and weight.

    Arguments beyond ``nn.Linear``'s are those of :class:`QuantConv2d` except
    ``pad_value``. Under ``scaling="xnor"`` K is the mean absolute input per sample.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        input_quantizer: Any = None,
        weight_quantizer: Any = None,
        weight_constraint: Any = None,
        scaling: str | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._init_quant(input_quantizer, weight_quantizer, weight_constraint, scaling, out_features)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects inputs whose last dimension is "
                f"{self.in_features}, got shape {tuple(x.shape)}"
            )
        x_real = x
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        bias = self.bias if not self._scales_output() else None  # as QuantConv2d.forward
        y = F.linear(x, self.quantized_weight(), bias)
        if self.scaling == "xnor" and self.input_quantizer is not None:
            y = y * x_real.abs().mean(dim=-1, keepdim=True)
        elif self.scaling == "channel":
            y = y * self.scale
        if self.bias is not None and bias is None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        base = super().extra_repr()
        extra = self._quant_extra_repr()
        return f"{base}, {extra}" if extra else base


class Scale(nn.Module):
    """Multiply by a scalar: the scale layer before softmax of Tang et al. and Wu et al.

    A binarized last layer produces logits in [-K, K] for fan-in K, far too large
    for a softmax; a scale layer brings them to a trainable range. Tang et al.
    learn it (``learnable=True``); Wu et al.'s distillation variant fixes it.

    Args:
        init: initial (or fixed) value.
        learnable: make the scale a trained parameter.
    """

    def __init__(self, init: float = 1.0, learnable: bool = True) -> None:
        super().__init__()
        t = torch.tensor(float(init))
        if learnable:
            self.scale = nn.Parameter(t)
        else:
            self.register_buffer("scale", t)
        self.learnable = learnable

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"init={float(self.scale):g}, learnable={self.learnable}"
