"""Building blocks of training and :func:`train`, the entry point ``onebit train`` calls.

The run itself is :class:`onebit.training.trainer.Trainer` (setup, resume, step, epoch end,
checkpoint); :func:`train` is ``Trainer(recipe, quiet=quiet).fit()``. Here live the pieces it
and :func:`onebit.training.evaluate.evaluate_checkpoint` share: :func:`pick_device`,
:func:`amp_dtype_for`, :func:`build_optimizer` and :func:`evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from onebit.training import distributed as D
from onebit.training.config import OptimConfig

if TYPE_CHECKING:
    from onebit.training.config import Recipe

__all__ = ["amp_dtype_for", "build_optimizer", "evaluate", "pick_device", "progress_bar", "train"]


def pick_device(pref: str, info: D.DistInfo | None = None) -> torch.device:
    """The device ``train.device`` names (``auto``: CUDA when present; a DDP rank gets its local GPU)."""
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cuda" and info is not None and info.enabled:
        pref = f"cuda:{info.local_rank}"
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device={pref!r} but no CUDA device is available")
    return torch.device(pref)


def amp_dtype_for(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device`` (None: no autocast)."""
    if amp == "off":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def build_optimizer(model: nn.Module, o: OptimConfig | Mapping[str, Any]) -> torch.optim.Optimizer:
    """Adam/AdamW/SGD over precision-aware groups, or Bop (binary) + ``rest`` (others) in a CaseOptimizer.

    ``o`` is the recipe's ``[optim]`` section, or a table of it (missing keys at their defaults).
    """
    from onebit.optim import Bop, CaseOptimizer, binary_parameters, param_groups

    if not isinstance(o, OptimConfig):
        o = OptimConfig.from_dict(o, "optim")
    groups = param_groups(
        model,
        lr=o.lr,
        weight_decay=o.weight_decay,
        binary_weight_decay=o.binary_weight_decay,
        binarynet_lr_scaling=o.binarynet_lr_scaling,
    )

    def make(kind: str, gs: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
        if kind == "sgd":
            return torch.optim.SGD(gs, lr=lr, momentum=o.momentum, nesterov=o.nesterov)
        cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        return cls(gs, lr=lr, betas=o.betas, eps=o.eps)

    if o.name != "bop":
        return make(o.name, groups, o.lr)
    binary = binary_parameters(model)
    if not binary:
        raise ValueError("optim.name = 'bop' but the model has no binary weights")
    rest_lr = o.rest_lr or o.lr
    rest = [dict(g, lr=rest_lr) for g in groups if not g["name"].startswith("binary")]
    bop = Bop(binary, threshold=o.bop_threshold, gamma=o.bop_gamma)
    if not rest:
        return bop
    return CaseOptimizer(bop, make(o.rest, rest, rest_lr))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    info: D.DistInfo | None = None,
    channels_last: bool = False,
    progress: bool = False,
) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy over a loader (summed across DDP ranks)."""
    model.eval()
    stats = torch.zeros(4, dtype=torch.float64)  # loss_sum, top1, top5, n
    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    bar = progress_bar(len(loader), "eval", progress)
    for x, y, _ in loader.batches(0, 0):
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with ctx:
            out = model(x)
        out = out.float()
        stats[0] += float(F.cross_entropy(out, y, reduction="sum"))
        k = min(5, out.shape[1])
        topk = out.topk(k, dim=1).indices
        hit = topk == y[:, None]
        stats[1] += float(hit[:, 0].sum())
        stats[2] += float(hit.any(dim=1).sum())
        stats[3] += y.numel()
        if bar is not None:
            bar.update(y.numel())
    if bar is not None:
        bar.close()
    stats = D.all_reduce_sum(stats, info or D.DistInfo())
    n = max(1.0, float(stats[3]))
    return {
        "loss": float(stats[0]) / n,
        "top1": float(stats[1]) / n,
        "top5": float(stats[2]) / n,
        "n": int(stats[3]),
    }


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar counting images, or None when ``enabled`` is false."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", unit_scale=True, leave=False, dynamic_ncols=True)


def train(cfg: Recipe | Mapping[str, Any], *, quiet: bool = False) -> dict[str, Any]:
    """Train from a recipe (a :class:`~onebit.training.config.Recipe` or
    :func:`~onebit.training.config.load_config`'s dict): ``Trainer(cfg, quiet=quiet).fit()``.

    Returns ``{"run_dir", "model" (unwrapped, on its device), "metrics" (last epoch record),
    "best_acc", "wall_s", "checkpoint", "plots", "global_step", "input_size"}``.
    """
    from onebit.training.trainer import Trainer

    return Trainer(cfg, quiet=quiet).fit()
