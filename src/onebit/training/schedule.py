"""Learning-rate schedules computed from the global step (exactly resumable).

Every schedule is ``lr = base_lr * factor`` per parameter group, with an
optional linear warm-up over ``warmup_epochs``; ``plateau`` halves (``factor``)
the rate when the monitored loss has not improved for ``patience`` epochs
(Tang et al.: Adam 1e-4, halved on plateau). Groups with ``lr == 0`` (Bop)
stay at 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch.optim import Optimizer

from onebit.training.config import ScheduleConfig

__all__ = ["LRSchedule"]


class LRSchedule:
    """Per-group learning rates from the global step (and, with ``by_time``, the time budget used).

    ``cfg`` is the recipe's ``[schedule]`` section, or a table of it (missing keys at their
    defaults); ``steps_per_epoch`` and ``epochs`` set the length of cosine/linear decays.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        cfg: ScheduleConfig | Mapping[str, Any],
        steps_per_epoch: int,
        epochs: int,
    ) -> None:
        if not isinstance(cfg, ScheduleConfig):
            cfg = ScheduleConfig.from_dict(cfg, "schedule")
        self.opt, self.cfg = optimizer, cfg
        self.spe = max(1, steps_per_epoch)
        self.total = max(1, self.spe * max(1, epochs))
        self.warm = int(round(cfg.warmup_epochs * self.spe))
        self.base = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
        for g, b in zip(optimizer.param_groups, self.base, strict=True):
            g["initial_lr"] = b
        self.plateau_mult = 1.0
        self.best = math.inf
        self.bad = 0
        self.last_lr = self.base[0] if self.base else 0.0

    def factor(self, step: int, time_frac: float | None = None) -> float:
        name = self.cfg.name
        if self.warm and step < self.warm:
            w = (step + 1) / self.warm
        else:
            w = 1.0
        t = min(1.0, max(0.0, (step - self.warm) / max(1, self.total - self.warm)))
        if time_frac is not None and not (self.warm and step < self.warm):
            t = max(t, min(1.0, time_frac))  # anneal by the time budget when it binds first
        ep = step / self.spe
        if name == "constant":
            f = 1.0
        elif name == "cosine":
            f = 0.5 * (1.0 + math.cos(math.pi * t))
        elif name == "linear":
            f = 1.0 - t
        elif name == "step":
            factors = self.cfg.factors
            f = 1.0
            for i, m in enumerate(self.cfg.milestones):
                if ep >= m:
                    f *= factors[i] if i < len(factors) else self.cfg.gamma
        elif name == "exponential":
            f = self.cfg.gamma ** math.floor(ep)
        elif name == "plateau":
            f = self.plateau_mult
        else:
            raise ValueError(f"unknown schedule {name!r}")
        return w * f

    def apply(self, step: int, time_frac: float | None = None) -> float:
        """Set every group's lr for global step ``step``; returns the first group's lr.

        ``time_frac`` (share of ``train.time_limit_min`` used, with ``schedule.by_time``)
        advances cosine/linear schedules by time when the budget binds before the epochs.
        """
        f = self.factor(step, time_frac)
        min_lr = self.cfg.min_lr
        cosine_like = self.cfg.name in ("cosine", "linear")
        for g, b in zip(self.opt.param_groups, self.base, strict=True):
            if b == 0.0:
                continue
            if cosine_like and not (self.warm and step < self.warm):
                g["lr"] = min_lr + (b - min_lr) * f
            else:
                g["lr"] = max(b * f, min_lr) if self.cfg.name == "plateau" else b * f
        self.last_lr = next((g["lr"] for g in self.opt.param_groups if g["lr"] > 0), 0.0)
        return self.last_lr

    def epoch_end(self, metric: float | None) -> None:
        """Plateau bookkeeping (call once per epoch with the monitored loss)."""
        if self.cfg.name != "plateau" or metric is None:
            return
        if metric < self.best * (1.0 - self.cfg.threshold):
            self.best, self.bad = metric, 0
        else:
            self.bad += 1
            if self.bad > self.cfg.patience:
                self.plateau_mult *= self.cfg.factor
                self.bad = 0

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_mult": self.plateau_mult, "best": self.best, "bad": self.bad, "base": self.base}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.plateau_mult, self.best, self.bad = st["plateau_mult"], st["best"], st["bad"]
        self.base = list(st.get("base", self.base))
