"""Optimizers and parameter grouping for binary networks.

* :class:`Bop` (Helwegen et al. 2019) trains binary weights with no latent
  weights at all: it flips a weight when an exponential moving average of its
  gradient is strong enough and pushes in the weight's own direction.
* :class:`CaseOptimizer` runs several optimizers on disjoint parameter sets as
  one optimizer (binary weights with Bop, the rest with Adam), like larq's
  ``CaseOptimizer``; learning-rate schedulers and checkpoints see one object.
* :func:`param_groups` splits a model's parameters by ``precision`` so that
  weight decay stays off binary latent weights, and applies BinaryNet's
  per-layer learning-rate scaling on request.
* :func:`constrain` makes an optimizer run the layers' weight constraints
  (e.g. BinaryNet's clip to [-1, 1]) after every step.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from onebit.nn.constraints import apply_constraints
from onebit.nn.layers import QuantMixin

__all__ = [
    "Bop",
    "CaseOptimizer",
    "binary_parameters",
    "binarynet_lr_scale",
    "constrain",
    "is_binary_parameter",
    "param_groups",
]


def _binary_layers(model: nn.Module) -> Iterator[QuantMixin]:
    for m in model.modules():
        if isinstance(m, QuantMixin) and m.weight_precision == 1:
            yield m


def binary_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The latent weights behind 1-bit weights (weights of layers whose weight quantizer has precision 1)."""
    return [m.weight for m in _binary_layers(model)]


def is_binary_parameter(model: nn.Module) -> Callable[[Tensor], bool]:
    """A predicate ``p -> bool`` that is true for the model's binary latent weights."""
    ids = {id(p) for p in binary_parameters(model)}
    return lambda p: id(p) in ids


def binarynet_lr_scale(layer: nn.Module) -> float:
    r"""BinaryNet's per-layer learning-rate multiplier, :math:`1 / H` with
    :math:`H = \sqrt{1.5 / (\mathrm{fan\_in} + \mathrm{fan\_out})}` (Glorot's bound).

    Binary weights are clipped to [-H, H]-sized steps in the original code; scaling
    the learning rate by 1/H makes every layer's relative step size alike.
    """
    w = layer.weight
    if w.dim() < 2:
        raise ValueError(f"binarynet_lr_scale needs a conv or dense weight, got shape {tuple(w.shape)}")
    receptive = w[0, 0].numel()
    fan_in = w.shape[1] * receptive
    fan_out = w.shape[0] * receptive
    return 1.0 / math.sqrt(1.5 / (fan_in + fan_out))


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    binary_weight_decay: float = 0.0,
    binarynet_lr_scaling: bool = False,
) -> list[dict[str, Any]]:
    """Parameter groups for one optimizer over a binary model.

    Binary latent weights get ``binary_weight_decay`` (0 by default: decay would
    pull them toward 0, where their sign is least stable) and, with
    ``binarynet_lr_scaling``, one group per layer with ``lr * binarynet_lr_scale``.
    Every other parameter gets ``lr`` and ``weight_decay``, except biases and
    normalization parameters, which never decay. Each group carries ``"name"``
    (``"binary"``, ``"binary:<layer>"``, ``"float"``, ``"float_no_decay"``).
    """
    binary_layers = {
        id(m.weight): (n, m)
        for n, m in model.named_modules()
        if isinstance(m, QuantMixin) and m.weight_precision == 1
    }
    groups: list[dict[str, Any]] = []
    binary_plain: list[Tensor] = []
    decay: list[Tensor] = []
    no_decay: list[Tensor] = []
    for _name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in binary_layers:
            lname, layer = binary_layers[id(p)]
            if binarynet_lr_scaling:
                groups.append(
                    {
                        "name": f"binary:{lname}",
                        "params": [p],
                        "lr": lr * binarynet_lr_scale(layer),
                        "weight_decay": binary_weight_decay,
                    }
                )
            else:
                binary_plain.append(p)
        elif p.dim() <= 1:
            no_decay.append(p)
        else:
            decay.append(p)
    if binary_plain:
        groups.append(
            {"name": "binary", "params": binary_plain, "lr": lr, "weight_decay": binary_weight_decay}
        )
    if decay:
        groups.append({"name": "float", "params": decay, "lr": lr, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"name": "float_no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0})
    return groups


class Bop(Optimizer):
    r"""Binary optimizer (Helwegen et al. 2019): flips signs, keeps no latent magnitudes.

    For every binary weight :math:`w` with gradient :math:`g`:

    .. math::
        m_t = (1 - \gamma) m_{t-1} + \gamma g_t,\qquad
        w_t = \begin{cases} -w_{t-1} & |m_t| > \tau \text{ and } \mathrm{sign}(m_t) = \mathrm{sign}(w_{t-1})\\
                            w_{t-1} & \text{otherwise}\end{cases}

    with adaptivity rate :math:`\gamma` (``gamma``) and threshold :math:`\tau`
    (``threshold``). A flip happens when the averaged gradient consistently says
    the loss would drop if the weight's sign changed. Only the sign of ``w`` is
    used by the forward pass (through the layer's sign quantizer), so the
    weights are set to :math:`\pm 1` at the first step.

    Use it for binary weights only; train the rest (BN, float layers) with
    another optimizer through :class:`CaseOptimizer`.

    References: Helwegen et al., *Latent Weights Do Not Exist: Rethinking
    Binarized Neural Network Optimization*, arXiv:1906.02107.
    """

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict], threshold: float = 1e-8, gamma: float = 1e-4
    ) -> None:
        if threshold < 0:
            raise ValueError(f"Bop: threshold must be >= 0, got {threshold}")
        if not 0 < gamma <= 1:
            raise ValueError(f"Bop: gamma must be in (0, 1], got {gamma}")
        # "lr" is unused by Bop but present so that learning-rate schedulers can run on it.
        super().__init__(params, {"threshold": threshold, "gamma": gamma, "lr": 0.0})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            gamma, threshold = group["gamma"], group["threshold"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["m"] = torch.zeros_like(p)
                    p.copy_(torch.where(p >= 0, 1.0, -1.0).to(p.dtype))
                m = state["m"]
                m.mul_(1 - gamma).add_(p.grad, alpha=gamma)
                flip = (m.abs() > threshold) & (torch.sign(m) == torch.sign(p))
                p.copy_(torch.where(flip, -p, p))
        return loss


class CaseOptimizer(Optimizer):
    """Several optimizers over disjoint parameter sets, acting as one.

    ``param_groups`` is the concatenation of the inner optimizers' groups (the
    same dict objects), so a learning-rate scheduler built on the
    CaseOptimizer drives every inner optimizer; ``state_dict`` holds each inner
    optimizer's state. Raises ``ValueError`` if a parameter belongs to two
    optimizers or an optimizer has no parameter.

    Example::

        binary = onebit.optim.binary_parameters(model)
        rest = [p for p in model.parameters() if all(p is not b for b in binary)]
        opt = CaseOptimizer(Bop(binary), torch.optim.Adam(rest, lr=1e-2))
    """

    def __init__(self, *optimizers: Optimizer) -> None:
        if not optimizers:
            raise ValueError("CaseOptimizer needs at least one optimizer")
        seen: dict[int, int] = {}
        for i, opt in enumerate(optimizers):
            if not isinstance(opt, Optimizer):
                raise TypeError(f"CaseOptimizer: argument {i} is {type(opt).__name__}, not an Optimizer")
            n = 0
            for g in opt.param_groups:
                for p in g["params"]:
                    if id(p) in seen:
                        raise ValueError(
                            f"CaseOptimizer: a parameter of shape {tuple(p.shape)} is claimed by "
                            f"optimizer {seen[id(p)]} ({type(optimizers[seen[id(p)]]).__name__}) and "
                            f"optimizer {i} ({type(opt).__name__})"
                        )
                    seen[id(p)] = i
                    n += 1
            if n == 0:
                raise ValueError(f"CaseOptimizer: optimizer {i} ({type(opt).__name__}) has no parameters")
        self.optimizers = list(optimizers)
        self.defaults = {}
        self._optimizer_step_pre_hooks: OrderedDict = OrderedDict()
        self._optimizer_step_post_hooks: OrderedDict = OrderedDict()
        self._optimizer_state_dict_pre_hooks: OrderedDict = OrderedDict()
        self._optimizer_state_dict_post_hooks: OrderedDict = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks: OrderedDict = OrderedDict()
        self._optimizer_load_state_dict_post_hooks: OrderedDict = OrderedDict()

    @property  # type: ignore[override]
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    @property  # type: ignore[override]
    def state(self) -> dict[Any, Any]:
        merged: dict[Any, Any] = {}
        for opt in self.optimizers:
            merged.update(opt.state)
        return merged

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for hook in list(self._optimizer_step_pre_hooks.values()):
            hook(self, (), {})
        for opt in self.optimizers:
            opt.step()
        for hook in list(self._optimizer_step_post_hooks.values()):
            hook(self, (), {})
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        inner = state_dict.get("optimizers")
        if not isinstance(inner, list) or len(inner) != len(self.optimizers):
            raise ValueError(
                f"CaseOptimizer state has {len(inner) if isinstance(inner, list) else 'no'} inner "
                f"states, this optimizer has {len(self.optimizers)}"
            )
        for opt, sd in zip(self.optimizers, inner, strict=True):
            opt.load_state_dict(sd)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        raise NotImplementedError("add parameter groups to the inner optimizers of a CaseOptimizer")

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(o).replace("\n", "\n  ") for o in self.optimizers)
        return f"CaseOptimizer(\n  {inner}\n)"


def constrain(optimizer: Optimizer, model: nn.Module) -> Any:
    """Run the model's weight constraints after every ``optimizer.step()``.

    Returns the hook handle (``handle.remove()`` undoes it).
    """
    return optimizer.register_step_post_hook(lambda *_: apply_constraints(model))
