"""The :class:`Trainer`: ``onebit train`` as a class whose pieces can be overridden or called alone.

:meth:`Trainer.fit` is the whole run::

    setup()                        process group, device, seed, run dir, data, model, optimizer,
                                   schedule, [resume], [compile / DDP wrap], [teacher], logger
    for epoch in range(start_epoch, epochs):
        train_epoch(epoch)         train_step(x, y, idx) for each batch, checkpoint every K steps,
                                   stop at max_steps / the time budget / request_stop()
        end_epoch(epoch)           [evaluate()], flips, histograms, log, best, checkpoint()
    finish()                       plots, close the logger; close() leaves the process group

Order of a step (global step ``g``)::

    lr = schedule(g); out = model(x); loss = compute_loss(out, x, y, idx)   (CE or distillation,
    + bipolar); backward (scaled under fp16); [grad-norm clip]; optimizer.step(); weight
    constraints (clip to [-1, 1])

A checkpoint taken after batch ``s`` of epoch ``e`` records ``(e, s + 1)`` and the RNG states;
resuming replays the epoch's batch order from ``(seed, e)`` and starts at batch ``s + 1``, so an
interrupted and resumed run ends with the weights of an uninterrupted one.

Subclass it to change a piece (``build_model``, ``compute_loss``, ``train_step``, ...) or pass
:class:`Callback` objects, which see every step and epoch and may :meth:`Trainer.request_stop`.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onebit.training import distributed as D
from onebit.training.checkpoint import (
    build_model,
    capture_rng,
    copy_checkpoint,
    load_checkpoint,
    require_keys,
    restore_rng,
    save_checkpoint,
    sweep_temp_files,
)
from onebit.training.config import Recipe
from onebit.training.diagnostics import FlipTracker, MetricsLogger, latent_histograms, plot_run
from onebit.training.distill import LogitCache, alpha_for_epoch, distillation_loss, load_teacher
from onebit.training.loop import amp_dtype_for, build_optimizer, evaluate, pick_device, progress_bar
from onebit.training.rundir import RunDir, resolve_run_dir
from onebit.training.schedule import LRSchedule

__all__ = ["Callback", "StepResult", "Trainer"]

#: What a checkpoint must hold to resume a run.
RESUME_KEYS = (
    "model",
    "model_name",
    "optimizer",
    "scheduler",
    "rng",
    "epoch",
    "step_in_epoch",
    "global_step",
)


@dataclass
class StepResult:
    """One optimizer step: where it was, its loss and learning rate, the detached outputs."""

    epoch: int
    batch: int  # position of the batch in the epoch
    global_step: int  # optimizer steps done, this one included
    loss: float
    lr: float
    time_frac: float | None  # share of train.time_limit_min used (None without a budget)
    output: Tensor
    target: Tensor


class Callback:
    """Hooks :meth:`Trainer.fit` calls; override those you need (each does nothing by default).

    Under DDP every rank runs its callbacks: a callback that stops the run must decide the
    same on every rank (``trainer.info.is_main`` tells rank 0, which writes the files).
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """After :meth:`Trainer.setup` (and a resume), before the first step."""

    def on_step_end(self, trainer: Trainer, step: StepResult) -> None:
        """After every optimizer step (and its periodic checkpoint, if one was due)."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After an epoch's record was logged and its checkpoint written."""

    def on_fit_end(self, trainer: Trainer, result: dict[str, Any]) -> None:
        """With :meth:`Trainer.fit`'s result, before the process group is left."""


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seed the global state user code uses)
    torch.manual_seed(seed)


class Trainer:
    """Train a network from a :class:`~onebit.training.config.Recipe` (what ``onebit train`` runs).

    ``recipe`` is a Recipe or its plain form (:func:`onebit.training.config.load_config`'s
    dict, parsed here). ``quiet`` silences the log lines; ``callbacks`` are :class:`Callback`
    objects. Nothing happens until :meth:`setup` (or :meth:`fit`, which calls it).

    After :meth:`setup`: ``model`` (the network, unwrapped), ``wrapped`` (what runs the batches:
    the model, compiled and/or in DDP), ``optimizer``, ``schedule``, ``scaler``,
    ``train_loader``/``test_loader``, ``data_info``, ``device``, ``info`` (rank/world),
    ``run_dir``; the position ``epoch``, ``start_epoch``, ``start_batch``, ``global_step``;
    ``best_acc`` and ``last_record``.
    """

    def __init__(
        self, recipe: Recipe | Mapping[str, Any], *, quiet: bool = False, callbacks: Iterable[Callback] = ()
    ) -> None:
        self.recipe = (recipe if isinstance(recipe, Recipe) else Recipe.from_dict(recipe, "config")).require(
            "config"
        )
        self.quiet = quiet
        self.callbacks = list(callbacks)
        self.is_setup = False
        self.stop_requested = False
        self._closed = False
        self._undo_fast: Any = None
        self.logger: MetricsLogger | None = None
        self.info = D.DistInfo()

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Everything a run needs before its first step, in the order that makes a resume exact
        (the model's initialization and the optimizer see the same RNG draws every time).

        On an error it leaves the process group it joined (:meth:`close`) and re-raises.
        """
        if self.is_setup or self._closed:
            raise RuntimeError("Trainer.setup() runs once per Trainer")
        try:
            self._setup()
        except BaseException:
            self.close(finished=False)
            raise
        self.is_setup = True

    def _setup(self) -> None:
        r = self.recipe
        self.info = D.setup(r.train.device)
        self.t_start = time.time()
        self.device = pick_device(r.train.device, self.info)
        if r.train.threads and self.device.type == "cpu":
            torch.set_num_threads(r.train.threads)
        if r.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        _seed_all(r.train.seed)
        rd = self.resolve_run_dir()
        self.run_dir, self.resume_from = rd.path, rd.resume
        for note in rd.notes:
            self.log(f"note: {note}")
        self.last_path = os.path.join(self.run_dir, "last.pt")
        self.best_path = os.path.join(self.run_dir, "best.pt")

        self.train_loader, self.test_loader, self.data_info = self.build_data()
        self.num_classes = int(self.data_info["num_classes"])
        cl = r.train.channels_last
        self.channels_last = (self.device.type == "cuda") if cl == "auto" else cl
        self.model = self.build_model()
        self.amp_dtype = amp_dtype_for(r.train.amp, self.device)
        if r.train.fast_ste:
            from onebit.training.fast import patch_ste

            self._undo_fast = patch_ste(self.model)
        self.optimizer = self.build_optimizer(self.model)
        self.schedule = LRSchedule(self.optimizer, r.schedule, len(self.train_loader), r.train.epochs)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.flips = FlipTracker(self.model) if r.diagnostics.flips else None

        self.start_epoch, self.start_batch, self.global_step, self.best_acc = 0, 0, 0, -1.0
        self.epoch, self.next_batch, self._epoch_t0, self._epoch_images = 0, 0, time.time(), 0
        self.epoch_sums = torch.zeros(3, dtype=torch.float64)  # loss_sum, correct, seen (epoch, rank)
        self.last_record: dict[str, Any] = {}
        if self.resume_from:
            self.resume(self.resume_from)
        self.wrapped = self.wrap_model(self.model)
        self.teacher, self.logit_cache = self.build_teacher()
        self.logger = MetricsLogger(
            self.run_dir,
            enabled=self.info.is_main,
            tensorboard=r.diagnostics.tensorboard,
            csv=r.diagnostics.csv,
        )
        if r.train.resume:  # also when "auto" found nothing: drop records of epochs that never checkpointed
            self.logger.truncate_after(self.start_epoch)
        self.show_progress = self._progress_enabled()

    def resolve_run_dir(self) -> RunDir:
        """Where the run writes and what it resumes (:func:`onebit.training.rundir.resolve_run_dir`).

        Rank 0 decides and sweeps stale temporary files; every rank gets the same answer or the
        same error, so no rank is left waiting in a collective.
        """
        t = self.recipe.train
        path = os.path.join(t.out_dir, t.run_name or self.recipe.name or "run")
        res: RunDir | str
        if self.info.is_main:
            try:
                res = resolve_run_dir(path, t.resume, t.if_exists)
                res.notes += [f"removed a stale temporary file {p}" for p in sweep_temp_files(res.path)]
            except (ValueError, FileNotFoundError) as e:
                res = str(e)
        else:
            res = ""
        res = D.broadcast_object(res, self.info)
        if isinstance(res, str):
            raise ValueError(res)
        return res

    def build_data(self) -> tuple[Any, Any, dict[str, Any]]:
        """``(train_loader, test_loader, {"num_classes", "input_size", "classes"})`` for this rank."""
        from onebit.data import build_loaders

        d = self.recipe.data
        train, test, info = build_loaders(
            d.to_dict(), self.recipe.train.seed, self.info.rank, self.info.world, self.device
        )
        if len(train) == 0:
            raise ValueError(f"data.batch_size={d.batch_size} is larger than the training set")
        return train, test, info

    def build_model(self) -> nn.Module:
        """The recipe's model on the device (channels_last when asked).

        The recipe's own model name: the user wrote it, so ``"module:callable"`` is honoured.
        """
        m = self.recipe.model
        model = build_model(m.name, self.num_classes, dict(m.kwargs), trust_code=True).to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The recipe's optimizer over ``model`` (:func:`onebit.training.loop.build_optimizer`),
        with the layers' weight constraints run after every step when ``optim.weight_clip``."""
        optimizer = build_optimizer(model, self.recipe.optim)
        if self.recipe.optim.weight_clip:
            from onebit.optim import constrain

            constrain(optimizer, model)
        return optimizer

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """What runs the batches: ``model``, compiled with ``train.compile``, in DDP under several ranks."""
        if self.recipe.train.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DDP(model, device_ids=ids)
        return model

    def build_teacher(self) -> tuple[nn.Module | None, LogitCache | None]:
        """The frozen distillation teacher and its logit cache (``None, None`` without a teacher)."""
        k = self.recipe.distill
        if not k.teacher:
            return None, None
        teacher = load_teacher(
            k.teacher, self.num_classes, k.teacher_weights, self.device, trust_code=k.trust_code
        )
        if self.channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        cache = LogitCache(self.train_loader.n, self.num_classes) if k.cache_logits else None
        return teacher, cache

    # ----------------------------------------------------------------- resume
    def resume(self, path: str) -> None:
        """Load model, optimizer, schedule, scaler, position, epoch sums, flip state and RNG from ``path``.

        Raises:
            ValueError: the checkpoint lacks what a resume needs, or holds another model or
                weights that do not fit this recipe's model/optimizer.
        """
        ck = load_checkpoint(path, map_location=self.device)
        require_keys(ck, RESUME_KEYS, path)
        name = self.recipe.model.name
        if ck["model_name"] != name:
            raise ValueError(f"--resume {path}: checkpoint is a {ck['model_name']!r}, recipe a {name!r}")
        try:
            self.model.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimizer"])
            self.schedule.load_state_dict(ck["scheduler"])
            if ck.get("scaler"):
                self.scaler.load_state_dict(ck["scaler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"--resume {path}: does not fit this recipe's model/optimizer: {first}"
            ) from None
        self.start_epoch, self.start_batch, self.global_step = (
            ck["epoch"],
            ck["step_in_epoch"],
            ck["global_step"],
        )
        extra = ck.get("extra", {})
        self.best_acc = extra.get("best_acc", -1.0)
        self.t_start -= float(extra.get("elapsed_s", 0.0))  # the time budget spans restarts
        self.epoch_sums = torch.tensor(extra.get("epoch_acc", [0.0, 0.0, 0.0]), dtype=torch.float64)
        if self.flips is not None and extra.get("flip_state"):
            self.flips.load_state_dict(extra["flip_state"])
        restore_rng(ck.get("rng_per_rank", {}).get(self.info.rank) or ck["rng"])
        self.log(
            f"resumed {path} at epoch {self.start_epoch + 1}, batch {self.start_batch}, "
            f"step {self.global_step}"
        )

    # ------------------------------------------------------------------ steps
    def time_used(self) -> float | None:
        """Share of ``train.time_limit_min`` used (rank 0's value on every rank), None without a budget."""
        limit_s = self.recipe.train.time_limit_min * 60.0
        if not limit_s:
            return None
        frac = (time.time() - self.t_start) / limit_s
        if self.info.enabled:
            frac = float(D.all_reduce_sum(torch.tensor([frac * self.info.is_main]), self.info).item())
        return frac

    def autocast(self) -> Any:
        """The autocast context of the recipe's ``train.amp`` on this device (a no-op when off)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def compute_loss(self, output: Tensor, x: Tensor, y: Tensor, idx: Tensor) -> Tensor:
        """The training loss of one batch (inside autocast): cross-entropy, or distillation against
        the teacher, plus the bipolar regularizer when ``optim.bipolar``."""
        o, k = self.recipe.optim, self.recipe.distill
        if self.teacher is not None:
            with torch.no_grad():
                cache = self.logit_cache
                t_out = cache.get(self.teacher, x, idx) if cache is not None else self.teacher(x)
            alpha = alpha_for_epoch(k.alpha, k.soft_only_epochs, self.epoch)
            loss = distillation_loss(output, t_out, y, alpha, k.temperature, o.label_smoothing)
        else:
            loss = F.cross_entropy(output.float(), y, label_smoothing=o.label_smoothing)
        if o.bipolar:
            from onebit.regularizers import bipolar

            loss = loss + bipolar(self.model, o.bipolar)
        return loss

    def train_step(self, x: Tensor, y: Tensor, idx: Tensor, batch: int = 0) -> StepResult:
        """One optimizer step on a batch: learning rate, forward, loss, backward, step, epoch sums.

        ``batch`` is the batch's position in the epoch (the next one is where a checkpoint taken
        now resumes); call :meth:`begin_epoch` first. Raises
        ``FloatingPointError`` on a non-finite loss (except under fp16, whose scaler skips it).
        """
        self.wrapped.train()
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        time_frac = self.time_used()
        lr = self.schedule.apply(self.global_step, time_frac if self.recipe.schedule.by_time else None)
        with self.autocast():
            out = self.wrapped(x)
            loss = self.compute_loss(out, x, y, idx)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.recipe.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.wrapped.parameters(), self.recipe.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.global_step += 1
        self.next_batch = batch + 1
        self._epoch_images += y.numel() * self.info.world
        loss_value = float(loss.detach())
        with torch.no_grad():
            self.epoch_sums[0] += loss_value * y.numel()
            self.epoch_sums[1] += float((out.detach().argmax(1) == y).sum())
            self.epoch_sums[2] += y.numel()
        if not math.isfinite(loss_value) and self.amp_dtype != torch.float16:
            raise FloatingPointError(
                f"loss is {loss_value} at step {self.global_step} (epoch {self.epoch + 1})"
            )
        return StepResult(self.epoch, batch, self.global_step, loss_value, lr, time_frac, out.detach(), y)

    def request_stop(self) -> None:
        """End the run after the current step, as ``train.max_steps`` would (checkpointed, evaluated)."""
        self.stop_requested = True

    def begin_epoch(self, epoch: int) -> int:
        """Start epoch ``epoch``; returns its first batch (after a resume, the one the checkpoint names).

        A fresh epoch zeroes the epoch sums and snapshots the signs the flip ratio compares with.
        """
        self.epoch, self._epoch_t0, self._epoch_images = epoch, time.time(), 0
        start = self.start_batch if epoch == self.start_epoch else 0
        if start == 0:
            self.epoch_sums.zero_()
            resumed_here = bool(self.resume_from) and epoch == self.start_epoch
            if self.flips is not None and not resumed_here:
                self.flips.snapshot()
        self.next_batch = start
        return start

    def train_epoch(self, epoch: int) -> bool:
        """Train epoch ``epoch`` from :meth:`begin_epoch`'s batch: :meth:`train_step` per batch, the
        progress bar, the checkpoint every ``train.ckpt_every_steps``, the callbacks.

        Returns True when the run must stop after this epoch (``max_steps``, the time budget, or
        :meth:`request_stop`).
        """
        t = self.recipe.train
        start = self.begin_epoch(epoch)
        bar = progress_bar(self.train_loader.num_samples, f"epoch {epoch + 1}/{t.epochs}", self.show_progress)
        if bar is not None and start:
            bar.update(start * self.recipe.data.batch_size)
        stop = False
        for s, (x, y, idx) in enumerate(self.train_loader.batches(epoch, start), start):
            step = self.train_step(x, y, idx, s)
            if bar is not None:
                bar.update(y.numel() * self.info.world)
                if self.global_step % t.log_every == 0:
                    mean = self.epoch_sums[0] / max(1, self.epoch_sums[2])
                    bar.set_postfix(loss=f"{mean:.3f}", lr=f"{step.lr:.2e}")
            if t.ckpt_every_steps and self.global_step % t.ckpt_every_steps == 0:
                self.checkpoint(epoch, s + 1, None, self.last_path)
            for cb in self.callbacks:
                cb.on_step_end(self, step)
            out_of_time = step.time_frac is not None and step.time_frac >= 1.0
            if (t.max_steps and self.global_step >= t.max_steps) or out_of_time or self.stop_requested:
                stop = True
                break
        if bar is not None:
            bar.close()
        return stop

    def evaluate(self) -> dict[str, float]:
        """Loss, top-1 and top-5 on the test loader (summed across ranks)."""
        return evaluate(
            self.wrapped,
            self.test_loader,
            self.device,
            self.amp_dtype,
            self.info,
            self.channels_last,
            self.show_progress,
        )

    def end_epoch(self, epoch: int, *, last: bool = False) -> dict[str, Any]:
        """Close epoch ``epoch``: its record (train metrics, [test metrics], flip ratios, histograms),
        the plateau schedule, the log, the best accuracy and the checkpoint. ``last``: the run ends
        here (so it is evaluated whatever ``train.eval_every`` says)."""
        r = self.recipe
        train_time = time.time() - self._epoch_t0
        tot = D.all_reduce_sum(self.epoch_sums.clone(), self.info)
        rec: dict[str, Any] = {
            "kind": "epoch",
            "epoch": epoch,
            "step": self.global_step,
            "train_loss": float(tot[0] / max(1.0, float(tot[2]))),
            "train_acc": float(tot[1] / max(1.0, float(tot[2]))),
            "lr": self.schedule.last_lr,
            "images_per_s": self._epoch_images / max(1e-9, train_time),
            "epoch_time_s": train_time,
        }
        if (epoch + 1) % r.train.eval_every == 0 or last or epoch == r.train.epochs - 1:
            ev = self.evaluate()
            rec.update(test_loss=ev["loss"], test_acc=ev["top1"], test_top5=ev["top5"])
        if self.flips is not None:
            rec["flip_ratio"] = self.flips.ratios(update=True)
        hists = (
            latent_histograms(self.model, r.diagnostics.histogram_bins) if r.diagnostics.histograms else None
        )
        if hists:
            rec["histograms"] = hists
        self.schedule.epoch_end(
            rec.get("test_loss") if r.schedule.monitor == "test_loss" else rec["train_loss"]
        )
        rec["wall_s"] = time.time() - self.t_start
        assert self.logger is not None, "end_epoch() before setup()"
        self.logger.log(rec, self.global_step, hists)
        self.last_record = {k: v for k, v in rec.items() if k != "histograms"}
        improved = "test_acc" in rec and rec["test_acc"] > self.best_acc
        if improved:
            self.best_acc = rec["test_acc"]
        done_epoch = self.next_batch >= len(self.train_loader)
        ck_epoch, ck_batch = (epoch + 1, 0) if done_epoch else (epoch, self.next_batch)
        if done_epoch:
            self.epoch_sums.zero_()
        self.checkpoint(ck_epoch, ck_batch, self.last_record, self.last_path)
        if improved and self.info.is_main:
            copy_checkpoint(self.last_path, self.best_path)
        self.log(self._epoch_line(rec))
        for cb in self.callbacks:
            cb.on_epoch_end(self, rec)
        return rec

    def _epoch_line(self, rec: dict[str, Any]) -> str:
        msg = f"epoch {rec['epoch'] + 1}/{self.recipe.train.epochs}: loss {rec['train_loss']:.4f} "
        msg += f"train {100 * rec['train_acc']:.2f}%"
        if "test_acc" in rec:
            msg += f" test {100 * rec['test_acc']:.2f}% (top-5 {100 * rec['test_top5']:.2f}%)"
        if self.flips is not None and "all" in rec["flip_ratio"]:
            msg += f" flips {100 * rec['flip_ratio']['all']:.2f}%"
        return msg + f" lr {rec['lr']:.2e} {rec['images_per_s']:.0f} img/s [{rec['wall_s']:.0f}s]"

    # ------------------------------------------------------------- checkpoint
    def checkpoint(self, epoch: int, step_in_epoch: int, metrics: dict[str, Any] | None, path: str) -> None:
        """Write a resumable checkpoint at position ``(epoch, step_in_epoch)`` to ``path`` (rank 0).

        Every rank must call it: each rank's RNG state matters (dropout differs per rank) and is
        gathered to rank 0.
        """
        rngs = {self.info.rank: capture_rng()}
        if self.info.enabled:
            import torch.distributed as dist

            gathered: list[Any] = [None] * self.info.world
            dist.all_gather_object(gathered, capture_rng())
            rngs = dict(enumerate(gathered))
        if not self.info.is_main:
            return
        r = self.recipe
        save_checkpoint(
            path,
            {
                "model_name": r.model.name,
                "model_kwargs": dict(r.model.kwargs),
                "input_size": tuple(self.data_info["input_size"]),
                "num_classes": self.num_classes,
                "config": r.to_dict(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "rng": rngs[self.info.rank],
                "rng_per_rank": rngs,
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "global_step": self.global_step,
                "metrics": metrics or {},
                "extra": {
                    "best_acc": self.best_acc,
                    "elapsed_s": time.time() - self.t_start,
                    "epoch_acc": self.epoch_sums.tolist(),
                    "flip_state": self.flips.state_dict() if self.flips is not None else None,
                },
            },
        )

    # -------------------------------------------------------------------- run
    def fit(self) -> dict[str, Any]:
        """Set up (unless done), train the remaining epochs, finish and leave the process group.

        Returns ``{"run_dir", "model" (unwrapped, on its device), "metrics" (last epoch record),
        "best_acc", "wall_s", "checkpoint", "plots", "global_step", "input_size"}``.
        """
        if self._closed:
            raise RuntimeError("this Trainer has finished (or failed) and is closed; make a new one")
        try:
            if not self.is_setup:
                self.setup()
            for cb in self.callbacks:
                cb.on_fit_start(self)
            self.log(self._start_line())
            t = self.recipe.train
            for epoch in range(self.start_epoch, t.epochs):
                stop = self.train_epoch(epoch)
                self.end_epoch(epoch, last=stop)
                if stop or self.stop_requested:
                    break
            result = self.finish()
            for cb in self.callbacks:
                cb.on_fit_end(self, result)
        except BaseException:
            self.close(finished=False)
            raise
        self.close()
        return result

    def _start_line(self) -> str:
        r, loader = self.recipe, self.train_loader
        return (
            f"training {r.model.name} on {r.data.name} ({loader.num_samples} images/epoch, "
            f"{len(loader)} steps of {r.data.batch_size}) for {r.train.epochs} epochs on {self.device}"
            + (f" x{self.info.world} ranks" if self.info.enabled else "")
            + f"; run dir {self.run_dir}"
        )

    def finish(self) -> dict[str, Any]:
        """Draw the plots (rank 0), close the logger, undo ``fast_ste``; return :meth:`fit`'s result."""
        plots: list[str] = []
        if self.info.is_main and self.recipe.diagnostics.plots:
            try:
                plots = plot_run(self.run_dir)
            except Exception as e:  # plotting must never lose a finished run
                self.log(f"warning: plotting failed: {e}")
        self._release()
        return {
            "run_dir": self.run_dir,
            "model": self.model,
            "metrics": self.last_record,
            "best_acc": self.best_acc,
            "wall_s": time.time() - self.t_start,
            "checkpoint": self.last_path,
            "plots": plots,
            "global_step": self.global_step,
            "input_size": tuple(self.data_info["input_size"]),
        }

    def _release(self) -> None:
        if self.logger is not None:
            self.logger.close()
            self.logger = None
        if self._undo_fast is not None:
            self._undo_fast()
            self._undo_fast = None

    def close(self, *, finished: bool = True) -> None:
        """Release the logger and ``fast_ste`` and leave the process group :meth:`setup` joined.

        ``finished``: every rank got here normally (they wait for each other first); after an
        error there is no barrier, so the other ranks' next collective fails instead of hanging.
        Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._release()
        finally:
            D.cleanup(self.info, finished=finished)

    def __enter__(self) -> Trainer:
        if not self.is_setup:
            self.setup()
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(finished=exc_type is None)

    # ---------------------------------------------------------------- helpers
    def log(self, msg: str) -> None:
        """Print ``msg`` on rank 0 unless ``quiet``."""
        if self.info.is_main and not self.quiet:
            print(msg, flush=True)

    def _progress_enabled(self) -> bool:
        if not self.info.is_main:
            return False
        setting = self.recipe.train.progress
        if setting != "auto":
            return bool(setting)
        import sys

        return sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ
