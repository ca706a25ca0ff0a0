"""The training loop: one function, :func:`train`, from a validated recipe.

Order of a step (global step ``g``, batch ``s`` of epoch ``e``)::

    lr = schedule(g); out = model(x); loss = CE or distillation (+ bipolar)
    backward (scaled under fp16); [grad-norm clip]; optimizer.step();
    weight constraints (clip to [-1, 1]); [checkpoint every K steps]

A checkpoint taken after batch ``s`` records ``(e, s + 1)`` and the RNG
states; resuming replays the epoch's batch order from ``(seed, e)`` and
starts at batch ``s + 1``, so an interrupted and resumed run ends with the
weights of an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import random
import signal
import sys
import time
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

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
from onebit.training.diagnostics import FlipTracker, MetricsLogger, latent_histograms, plot_run
from onebit.training.distill import LogitCache, alpha_for_epoch, distillation_loss, load_teacher
from onebit.training.rundir import RunDir, resolve_run_dir
from onebit.training.schedule import LRSchedule

__all__ = ["build_optimizer", "evaluate", "pick_device", "train"]


def pick_device(pref: str, info: D.DistInfo | None = None) -> torch.device:
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cuda" and info is not None and info.enabled:
        pref = f"cuda:{info.local_rank}"
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device={pref!r} but no CUDA device is available")
    return torch.device(pref)


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def build_optimizer(model: nn.Module, o: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam/AdamW/SGD over precision-aware groups, or Bop (binary) + ``rest`` (others) in a CaseOptimizer."""
    from onebit.optim import Bop, CaseOptimizer, binary_parameters, param_groups

    groups = param_groups(
        model,
        lr=float(o["lr"]),
        weight_decay=float(o["weight_decay"]),
        binary_weight_decay=float(o["binary_weight_decay"]),
        binarynet_lr_scaling=bool(o["binarynet_lr_scaling"]),
    )

    def make(kind: str, gs: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
        if kind == "sgd":
            return torch.optim.SGD(gs, lr=lr, momentum=float(o["momentum"]), nesterov=bool(o["nesterov"]))
        cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        return cls(gs, lr=lr, betas=tuple(o["betas"]), eps=float(o["eps"]))

    if o["name"] != "bop":
        return make(o["name"], groups, float(o["lr"]))
    binary = binary_parameters(model)
    if not binary:
        raise ValueError("optim.name = 'bop' but the model has no binary weights")
    rest_lr = float(o["rest_lr"] or o["lr"])
    rest = [dict(g, lr=rest_lr) for g in groups if not g["name"].startswith("binary")]
    bop = Bop(binary, threshold=float(o["bop_threshold"]), gamma=float(o["bop_gamma"]))
    if not rest:
        return bop
    return CaseOptimizer(bop, make(o["rest"], rest, rest_lr))


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


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
    bar = _bar(len(loader), "eval", progress)
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


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", unit_scale=True, leave=False, dynamic_ncols=True)


def _progress_enabled(setting: Any, info: D.DistInfo) -> bool:
    if not info.is_main:
        return False
    if setting in (True, "true"):
        return True
    if setting in (False, "false"):
        return False
    return sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seed the global state user code uses)
    torch.manual_seed(seed)


def _log(msg: str, info: D.DistInfo, quiet: bool) -> None:
    if info.is_main and not quiet:
        print(msg, flush=True)


_RESUME_KEYS = (
    "model",
    "model_name",
    "optimizer",
    "scheduler",
    "rng",
    "epoch",
    "step_in_epoch",
    "global_step",
)


def _run_dir(run_dir: str, tc: dict[str, Any], info: D.DistInfo) -> RunDir:
    """Rank 0 decides (:func:`resolve_run_dir`) and sweeps stale temporary files; every rank gets
    the same answer or the same error, so no rank is left waiting in a collective."""
    res: RunDir | str
    if info.is_main:
        try:
            res = resolve_run_dir(run_dir, tc["resume"], tc["if_exists"])
            res.notes += [f"removed a stale temporary file {p}" for p in sweep_temp_files(res.path)]
        except (ValueError, FileNotFoundError) as e:
            res = str(e)
    else:
        res = ""
    res = D.broadcast_object(res, info)
    if isinstance(res, str):
        raise ValueError(res)
    return res


def train(cfg: dict[str, Any], *, quiet: bool = False) -> dict[str, Any]:
    """Train from a validated recipe (see :func:`onebit.training.config.load_config`).

    Returns ``{"run_dir", "model" (unwrapped, on its device), "metrics" (last
    epoch record), "best_acc", "wall_s", "checkpoint"}``.
    """
    info = D.setup(cfg["train"]["device"])
    try:
        res = _train(cfg, info, quiet)
    except BaseException:
        D.cleanup(info)
        raise
    D.cleanup(info, finished=True)
    return res


def _train(cfg: dict[str, Any], info: D.DistInfo, quiet: bool) -> dict[str, Any]:
    tc, dc, oc, xc, kc = cfg["train"], cfg["data"], cfg["optim"], cfg["diagnostics"], cfg["distill"]
    t_start = time.time()
    device = pick_device(tc["device"], info)
    if tc["threads"] and device.type == "cpu":
        torch.set_num_threads(int(tc["threads"]))
    if tc["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)
    seed = int(tc["seed"])
    _seed_all(seed)
    run_name = tc["run_name"] or cfg.get("name") or "run"
    rd = _run_dir(os.path.join(tc["out_dir"], run_name), tc, info)
    run_dir, resume = rd.path, rd.resume
    for note in rd.notes:
        _log(f"note: {note}", info, quiet)

    from onebit.data import build_loaders

    train_loader, test_loader, dinfo = build_loaders(dc, seed, info.rank, info.world, device)
    if len(train_loader) == 0:
        raise ValueError(f"data.batch_size={dc['batch_size']} is larger than the training set")
    num_classes = int(dinfo["num_classes"])
    mkw = dict(cfg["model"]["kwargs"])
    # the recipe's own model name: the user wrote it, so "module:callable" is honoured
    model = build_model(cfg["model"]["name"], num_classes, mkw, trust_code=True).to(device)
    cl = tc["channels_last"]
    channels_last = (device.type == "cuda") if cl in ("auto", None) else bool(cl in (True, "true"))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    amp_dtype = _amp_dtype(tc["amp"], device)
    inner = model
    undo_fast = None
    if tc["fast_ste"]:
        from onebit.training.fast import patch_ste

        undo_fast = patch_ste(inner)

    optimizer = build_optimizer(inner, oc)
    if oc["weight_clip"]:
        from onebit.optim import constrain

        constrain(optimizer, inner)
    epochs = int(tc["epochs"])
    sched = LRSchedule(optimizer, cfg["schedule"], len(train_loader), epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    last_path, best_path = os.path.join(run_dir, "last.pt"), os.path.join(run_dir, "best.pt")
    flips = FlipTracker(inner) if xc["flips"] else None

    start_epoch, start_step, global_step, best_acc = 0, 0, 0, -1.0
    acc_state = torch.zeros(3, dtype=torch.float64)  # loss_sum, correct, seen (this epoch, this rank)
    if resume:
        ck = load_checkpoint(resume, map_location=device)
        require_keys(ck, _RESUME_KEYS, resume)
        if ck["model_name"] != cfg["model"]["name"]:
            raise ValueError(
                f"--resume {resume}: checkpoint is a {ck['model_name']!r}, recipe a {cfg['model']['name']!r}"
            )
        try:
            inner.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            if ck.get("scaler"):
                scaler.load_state_dict(ck["scaler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"--resume {resume}: does not fit this recipe's model/optimizer: {first}"
            ) from None
        start_epoch, start_step, global_step = ck["epoch"], ck["step_in_epoch"], ck["global_step"]
        best_acc = ck.get("extra", {}).get("best_acc", -1.0)
        t_start -= float(ck.get("extra", {}).get("elapsed_s", 0.0))  # the time budget spans restarts
        acc_state = torch.tensor(ck.get("extra", {}).get("epoch_acc", [0.0, 0.0, 0.0]), dtype=torch.float64)
        if flips is not None and ck.get("extra", {}).get("flip_state"):
            flips.load_state_dict(ck["extra"]["flip_state"])
        rank_rng = ck.get("rng_per_rank", {}).get(info.rank) or ck["rng"]
        restore_rng(rank_rng)
        _log(
            f"resumed {resume} at epoch {start_epoch + 1}, batch {start_step}, step {global_step}",
            info,
            quiet,
        )

    if tc["compile"]:
        model = torch.compile(model)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    teacher, cache = None, None
    if kc["teacher"]:
        teacher = load_teacher(
            kc["teacher"], num_classes, kc["teacher_weights"], device, trust_code=bool(kc["trust_code"])
        )
        if channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        if kc["cache_logits"]:
            if dc["augment"] and dc["name"] in ("cifar10", "imagenet"):
                raise ValueError(
                    "distill.cache_logits needs data.augment = false (logits depend on the crop)"
                )
            cache = LogitCache(train_loader.n, num_classes)

    logger = MetricsLogger(run_dir, enabled=info.is_main, tensorboard=xc["tensorboard"], csv=xc["csv"])
    if tc["resume"]:  # also when "auto" found nothing: drop records of epochs that never checkpointed
        logger.truncate_after(start_epoch)
    show = _progress_enabled(tc["progress"], info)
    ctx = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else nullcontext
    from onebit.regularizers import bipolar

    meta = {
        "model_name": cfg["model"]["name"],
        "model_kwargs": mkw,
        "input_size": tuple(dinfo["input_size"]),
        "num_classes": num_classes,
        "config": cfg,
    }

    def checkpoint(epoch: int, step_in_epoch: int, metrics: dict[str, Any] | None, path: str) -> None:
        # every rank's RNG matters (dropout differs per rank); gather them to rank 0
        rngs = {info.rank: capture_rng()}
        if info.enabled:
            import torch.distributed as dist

            gathered: list[Any] = [None] * info.world
            dist.all_gather_object(gathered, capture_rng())
            rngs = dict(enumerate(gathered))
        if not info.is_main:
            return
        save_checkpoint(
            path,
            {
                **meta,
                "model": _unwrap(model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "rng": rngs[info.rank],
                "rng_per_rank": rngs,
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "global_step": global_step,
                "metrics": metrics or {},
                "extra": {
                    "best_acc": best_acc,
                    "elapsed_s": time.time() - t_start,
                    "epoch_acc": acc_state.tolist(),
                    "flip_state": flips.state_dict() if flips is not None else None,
                },
            },
        )

    max_steps = int(tc["max_steps"])
    crash = int(tc["crash_after_steps"])
    limit_s = float(tc["time_limit_min"]) * 60.0
    last_rec: dict[str, Any] = {}
    stop = False
    _log(
        f"training {cfg['model']['name']} on {dc['name']} ({train_loader.num_samples} images/epoch, "
        f"{len(train_loader)} steps of {dc['batch_size']}) for {epochs} epochs on {device}"
        + (f" x{info.world} ranks" if info.enabled else "")
        + f"; run dir {run_dir}",
        info,
        quiet,
    )
    epoch = start_epoch
    for epoch in range(start_epoch, epochs):
        t_epoch = time.time()
        model.train()
        start = start_step if epoch == start_epoch else 0
        if start == 0:
            acc_state.zero_()
            if flips is not None and not (resume and epoch == start_epoch):
                flips.snapshot()
        alpha = alpha_for_epoch(float(kc["alpha"]), int(kc["soft_only_epochs"]), epoch)
        bar = _bar(train_loader.num_samples, f"epoch {epoch + 1}/{epochs}", show)
        if bar is not None and start:
            bar.update(start * int(dc["batch_size"]))
        n_imgs = 0
        next_batch = start
        for s, (x, y, idx) in enumerate(train_loader.batches(epoch, start), start):
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            time_frac = None
            if limit_s:  # share of the time budget used; rank 0's value on every rank
                time_frac = (time.time() - t_start) / limit_s
                if info.enabled:
                    time_frac = float(D.all_reduce_sum(torch.tensor([time_frac * info.is_main]), info).item())
            lr = sched.apply(global_step, time_frac if cfg["schedule"]["by_time"] else None)
            with ctx():
                out = model(x)
                if teacher is not None:
                    with torch.no_grad():
                        t_out = cache.get(teacher, x, idx) if cache is not None else teacher(x)
                    loss = distillation_loss(
                        out, t_out, y, alpha, float(kc["temperature"]), float(oc["label_smoothing"])
                    )
                else:
                    loss = F.cross_entropy(out.float(), y, label_smoothing=float(oc["label_smoothing"]))
                if oc["bipolar"]:
                    loss = loss + bipolar(inner, float(oc["bipolar"]))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if oc["grad_clip"]:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(oc["grad_clip"]))
            scaler.step(optimizer)
            scaler.update()
            global_step += 1
            next_batch = s + 1
            with torch.no_grad():
                acc_state[0] += float(loss.detach()) * y.numel()
                acc_state[1] += float((out.detach().argmax(1) == y).sum())
                acc_state[2] += y.numel()
            n_imgs += y.numel() * info.world
            if bar is not None:
                bar.update(y.numel() * info.world)
                if global_step % max(1, int(tc["log_every"])) == 0:
                    bar.set_postfix(loss=f"{acc_state[0] / max(1, acc_state[2]):.3f}", lr=f"{lr:.2e}")
            if not math.isfinite(float(loss.detach())) and amp_dtype != torch.float16:
                raise FloatingPointError(f"loss is {float(loss)} at step {global_step} (epoch {epoch + 1})")
            if tc["ckpt_every_steps"] and global_step % int(tc["ckpt_every_steps"]) == 0:
                checkpoint(epoch, s + 1, None, last_path)
            if crash and global_step >= crash:
                os.kill(os.getpid(), signal.SIGKILL)  # testing only: die like a preempted job
            out_of_time = time_frac is not None and time_frac >= 1.0
            if (max_steps and global_step >= max_steps) or out_of_time:
                stop = True
                break
        if bar is not None:
            bar.close()
        train_time = time.time() - t_epoch
        tot = D.all_reduce_sum(acc_state.clone(), info)
        rec: dict[str, Any] = {
            "kind": "epoch",
            "epoch": epoch,
            "step": global_step,
            "train_loss": float(tot[0] / max(1.0, float(tot[2]))),
            "train_acc": float(tot[1] / max(1.0, float(tot[2]))),
            "lr": sched.last_lr,
            "images_per_s": n_imgs / max(1e-9, train_time),
            "epoch_time_s": train_time,
        }
        finished = epoch == epochs - 1 or stop
        if (epoch + 1) % max(1, int(tc["eval_every"])) == 0 or finished:
            ev = evaluate(model, test_loader, device, amp_dtype, info, channels_last, show)
            rec.update(test_loss=ev["loss"], test_acc=ev["top1"], test_top5=ev["top5"])
        if flips is not None:
            rec["flip_ratio"] = flips.ratios(update=True)
        hists = latent_histograms(inner, int(xc["histogram_bins"])) if xc["histograms"] else None
        if hists:
            rec["histograms"] = hists
        sched.epoch_end(
            rec.get("test_loss") if cfg["schedule"]["monitor"] == "test_loss" else rec["train_loss"]
        )
        rec["wall_s"] = time.time() - t_start
        logger.log(rec, global_step, hists)
        last_rec = {k: v for k, v in rec.items() if k != "histograms"}
        improved = "test_acc" in rec and rec["test_acc"] > best_acc
        if improved:
            best_acc = rec["test_acc"]
        done_epoch = next_batch >= len(train_loader)
        ck_epoch, ck_step = (epoch + 1, 0) if done_epoch else (epoch, next_batch)
        if done_epoch:
            acc_state.zero_()
        checkpoint(ck_epoch, ck_step, last_rec, last_path)
        if improved and info.is_main:
            copy_checkpoint(last_path, best_path)
        msg = f"epoch {epoch + 1}/{epochs}: loss {rec['train_loss']:.4f} train {100 * rec['train_acc']:.2f}%"
        if "test_acc" in rec:
            msg += f" test {100 * rec['test_acc']:.2f}% (top-5 {100 * rec['test_top5']:.2f}%)"
        if flips is not None and "all" in rec["flip_ratio"]:
            msg += f" flips {100 * rec['flip_ratio']['all']:.2f}%"
        msg += f" lr {rec['lr']:.2e} {rec['images_per_s']:.0f} img/s [{rec['wall_s']:.0f}s]"
        _log(msg, info, quiet)
        if stop:
            break
    plots: list[str] = []
    if info.is_main and xc["plots"]:
        try:
            plots = plot_run(run_dir)
        except Exception as e:  # plotting must never lose a finished run
            _log(f"warning: plotting failed: {e}", info, quiet)
    logger.close()
    if undo_fast is not None:
        undo_fast()
    return {
        "run_dir": run_dir,
        "model": _unwrap(model),
        "metrics": last_rec,
        "best_acc": best_acc,
        "wall_s": time.time() - t_start,
        "checkpoint": last_path,
        "plots": plots,
        "global_step": global_step,
        "input_size": tuple(dinfo["input_size"]),
    }
