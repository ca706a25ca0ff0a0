"""Model summary: what is binary, what it costs in memory and in multiply-accumulates.

``onebit.summary(model, input_size)`` runs one forward pass with hooks and
returns a :class:`ModelSummary` (for code and tests) after printing a table in
the manner of ``larq.models.summary``:

* parameters are split into binary (1-bit) and float (32-bit); BatchNorm's
  running mean and variance count as float parameters, as larq counts every
  weight of a layer, trainable or not (so numbers compare with larq zoo's);
  parameters of quantizers with other bit widths (ternary, DoReFa) count at
  their own width in the memory column and among the "other" parameters;
* memory is the packed size: 1 bit per binary parameter, 32 per float one;
* MACs are counted for convolutions and dense layers, per sample, at the given
  input size; a layer's MACs are binary when its input *and* weights are 1-bit
  (it runs as XNOR + popcount), float otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from onebit.nn.layers import QuantMixin

__all__ = ["LayerSummary", "ModelSummary", "summary", "summary_for"]


@dataclass
class LayerSummary:
    """One row of the summary: a leaf module (a quantized layer counts as a leaf)."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params_binary: int = 0
    params_float: int = 0
    params_other: int = 0
    memory_bits: int = 0
    macs_binary: int = 0
    macs_float: int = 0
    input_precision: int | None = None
    weight_precision: int | None = None

    @property
    def memory_bytes(self) -> float:
        return self.memory_bits / 8


@dataclass
class ModelSummary:
    """Totals and per-layer rows; see the module docstring for the conventions."""

    model_name: str
    input_shape: tuple[int, ...]
    layers: list[LayerSummary] = field(default_factory=list)

    @property
    def total_params_binary(self) -> int:
        return sum(r.params_binary for r in self.layers)

    @property
    def total_params_float(self) -> int:
        return sum(r.params_float for r in self.layers)

    @property
    def total_params_other(self) -> int:
        return sum(r.params_other for r in self.layers)

    @property
    def total_params(self) -> int:
        return self.total_params_binary + self.total_params_float + self.total_params_other

    @property
    def memory_bytes(self) -> float:
        """Packed model size in bytes (1 bit per binary parameter)."""
        return sum(r.memory_bits for r in self.layers) / 8

    @property
    def float_memory_bytes(self) -> int:
        """Size if every parameter were fp32."""
        return self.total_params * 4

    @property
    def compression_ratio(self) -> float:
        return self.float_memory_bytes / self.memory_bytes if self.memory_bytes else 1.0

    @property
    def macs_binary(self) -> int:
        return sum(r.macs_binary for r in self.layers)

    @property
    def macs_float(self) -> int:
        return sum(r.macs_float for r in self.layers)

    def as_dict(self) -> dict[str, Any]:
        """Totals as plain numbers (for JSON and tests)."""
        return {
            "model": self.model_name,
            "input_shape": list(self.input_shape),
            "params_binary": self.total_params_binary,
            "params_float": self.total_params_float,
            "params_other": self.total_params_other,
            "params_total": self.total_params,
            "memory_bytes": self.memory_bytes,
            "float_memory_bytes": self.float_memory_bytes,
            "compression_ratio": self.compression_ratio,
            "macs_binary": self.macs_binary,
            "macs_float": self.macs_float,
        }

    def print(self, console: Any = None) -> None:
        """Print the per-layer table and the totals with rich."""
        from rich.console import Console
        from rich.table import Table

        if console is None:
            console = Console()
            if not console.is_terminal:  # pipes and logs: don't squeeze the table to 80 columns
                console = Console(width=160)
        table = Table(title=f"{self.model_name} summary (input {tuple(self.input_shape)})")
        for col, justify in [
            ("Layer", "left"),
            ("Type", "left"),
            ("Output shape", "left"),
            ("Bits in/w", "center"),
            ("# 1-bit", "right"),
            ("# 32-bit", "right"),
            ("Memory (kB)", "right"),
            ("1-bit MACs", "right"),
            ("32-bit MACs", "right"),
        ]:
            table.add_column(col, justify=justify)  # type: ignore[arg-type]

        def num(n: int) -> str:
            return f"{n:,}" if n else "0"

        for r in self.layers:
            bits = "-" if r.weight_precision is None else f"{r.input_precision}/{r.weight_precision}"
            table.add_row(
                r.name,
                r.type,
                str(tuple(r.output_shape)),
                bits,
                num(r.params_binary),
                num(r.params_float + r.params_other),
                f"{r.memory_bytes / 1000:.2f}",
                num(r.macs_binary),
                num(r.macs_float),
            )
        table.add_section()
        table.add_row(
            "Total",
            "",
            "",
            "",
            num(self.total_params_binary),
            num(self.total_params_float + self.total_params_other),
            f"{self.memory_bytes / 1000:.2f}",
            num(self.macs_binary),
            num(self.macs_float),
        )
        console.print(table)
        mib = 1024 * 1024
        console.print(
            f"Total params: {self.total_params:,} (binary {self.total_params_binary:,}, "
            f"float {self.total_params_float:,}"
            + (f", other {self.total_params_other:,}" if self.total_params_other else "")
            + ")\n"
            f"Model size: {self.memory_bytes / mib:.2f} MiB packed vs "
            f"{self.float_memory_bytes / mib:.2f} MiB as fp32 ({self.compression_ratio:.1f}x smaller)\n"
            f"MACs per sample: {self.macs_binary:,} binary, {self.macs_float:,} float"
        )


def _is_leaf(m: nn.Module) -> bool:
    return isinstance(m, QuantMixin) or not any(True for _ in m.children())


def _param_rows(m: nn.Module) -> tuple[int, int, int, int]:
    """(binary, float, other, memory_bits) of a leaf's own parameters and BN statistics."""
    binary = flt = other = bits = 0
    wp = m.weight_precision if isinstance(m, QuantMixin) else 32
    for pname, p in m.named_parameters(recurse=True):
        n = p.numel()
        if pname == "weight" and isinstance(m, QuantMixin) and wp < 32:
            if wp == 1:
                binary += n
            else:
                other += n
            bits += n * wp
        else:
            flt += n
            bits += n * 32
    if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
        for buf in (m.running_mean, m.running_var):
            if buf is not None:
                flt += buf.numel()
                bits += buf.numel() * 32
    return binary, flt, other, bits


def _macs(m: nn.Module, out: torch.Tensor) -> int:
    """Multiply-accumulates per sample of a conv or dense layer (0 for other layers)."""
    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        per_out = (m.in_channels // m.groups) * kh * kw
        return int(out[0].numel()) * per_out
    if isinstance(m, nn.Linear):
        return int(out[0].numel()) * m.in_features
    return 0


def summary(
    model: nn.Module,
    input_size: int | Sequence[int] | None = None,
    *,
    example_input: torch.Tensor | None = None,
    model_name: str | None = None,
    print_table: bool = True,
) -> ModelSummary:
    """Summarize ``model``: per-layer parameters (binary/float), packed memory and MACs.

    Args:
        model: any module; quantized layers are recognized by their precisions.
        input_size: shape of one sample without the batch dimension, e.g.
            ``(3, 224, 224)`` or ``(784,)``; an int ``s`` means ``(3, s, s)``.
        example_input: a batch to run instead (its first sample defines the shape).
        model_name: title of the table (default: the class name).
        print_table: print the rich table (set False in code that only needs numbers).

    Returns:
        A :class:`ModelSummary`. MACs are per sample.
    """
    if example_input is None:
        if input_size is None:
            raise ValueError("summary needs input_size (e.g. (3, 224, 224)) or example_input")
        if isinstance(input_size, int):
            input_size = (3, input_size, input_size)
        shape = tuple(int(s) for s in input_size)
        if not shape or any(s <= 0 for s in shape):
            raise ValueError(f"input_size must be positive dimensions, got {tuple(input_size)}")
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        example_input = torch.randn((1, *shape), device=device)
    shape = tuple(example_input.shape[1:])

    rows: list[LayerSummary] = []
    handles = []
    leaves = [(n, m) for n, m in model.named_modules() if n and _is_leaf(m)]
    inside_quant = {
        n
        for qn, q in model.named_modules()
        if isinstance(q, QuantMixin)
        for n, _ in q.named_modules(prefix=qn)
    }
    seen: set[int] = set()

    def hook(name: str, mod: nn.Module):
        def fn(_m: nn.Module, _inp: Any, out: Any) -> None:
            if id(mod) in seen or not isinstance(out, torch.Tensor):
                return
            seen.add(id(mod))
            b, f, o, bits = _param_rows(mod)
            macs = _macs(mod, out)
            row = LayerSummary(name, type(mod).__name__, tuple(out.shape[1:]), b, f, o, bits)
            if isinstance(mod, QuantMixin):
                row.input_precision, row.weight_precision = mod.input_precision, mod.weight_precision
                if mod.input_precision == 1 and mod.weight_precision == 1:
                    row.macs_binary = macs
                else:
                    row.macs_float = macs
            else:
                if isinstance(mod, (nn.Conv2d, nn.Linear)):
                    row.input_precision = row.weight_precision = 32
                row.macs_float = macs
            rows.append(row)

        return fn

    for name, m in leaves:
        if name in inside_quant and not isinstance(m, QuantMixin):
            continue  # quantizers inside a quantized layer belong to that row
        handles.append(m.register_forward_hook(hook(name, m)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    # Parameters of leaves that the forward pass did not reach (or that are not leaves,
    # e.g. a parameter registered directly on a container) still count.
    reached = {r.name for r in rows}
    for name, m in leaves:
        if name in reached or (name in inside_quant and not isinstance(m, QuantMixin)):
            continue
        b, f, o, bits = _param_rows(m)
        if b or f or o:
            rows.append(LayerSummary(name, type(m).__name__, (), b, f, o, bits))
    for name, m in model.named_modules():
        if _is_leaf(m) or name in inside_quant:
            continue
        own = sum(p.numel() for p in m.parameters(recurse=False))
        if own:
            rows.append(LayerSummary(name or "(root)", type(m).__name__, (), 0, own, 0, own * 32))

    result = ModelSummary(model_name or type(model).__name__, shape, rows)
    if print_table:
        result.print()
    return result


def summary_for(
    name_or_path: str,
    input_size: int | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    print_table: bool = True,
) -> ModelSummary:
    """Summary of a registered model (by name) or of a onebit training checkpoint (by path).

    Registered models are built at their default input size (224 for ImageNet
    models) unless ``input_size`` is given, which is also passed to the model so
    that CIFAR-size variants adapt their stem.
    """
    import os

    from onebit import models

    if os.path.exists(name_or_path):
        from onebit.training.checkpoint import load_model

        model, meta = load_model(name_or_path)
        size = meta.get("input_size")
        if input_size is not None:
            size = (size[0] if size else 3, input_size, input_size)
        if size is None:
            raise ValueError(f"{name_or_path}: checkpoint does not record an input size; pass --input-size")
        return summary(model, size, model_name=meta.get("model_name", name_or_path), print_table=print_table)

    cfg = models.get_cfg(name_or_path)  # raises ValueError for unknown names
    size = tuple(cfg["input_size"])
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_chans}
    if input_size is not None and len(size) == 3:
        kwargs["input_size"] = input_size
        size = (in_chans or size[0], input_size, input_size)
    elif in_chans is not None and len(size) == 3:
        size = (in_chans, size[1], size[2])
    model = models.create(name_or_path, **kwargs)
    return summary(model, size, model_name=name_or_path, print_table=print_table)
