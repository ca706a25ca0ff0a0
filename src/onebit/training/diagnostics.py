"""What BNN training needs to watch: flip ratios, latent-weight histograms, curves.

* :class:`FlipTracker` remembers the sign of every binary layer's latent
  weights and reports the share that changed since the last snapshot (the
  "flip ratio"; a healthy run starts high and decays toward 0).
* :func:`latent_histograms` bins each binary layer's latent weights (Wu et
  al.'s Figure 1: weights piling up at the clip bounds or around 0).
* :class:`MetricsLogger` appends one JSON line per record (and optionally CSV
  and TensorBoard scalars/histograms).
* :func:`plot_run` draws curves.png, flips.png and histograms.png (Agg backend).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import torch
from torch import Tensor, nn

from onebit.nn.layers import QuantMixin

__all__ = ["FlipTracker", "MetricsLogger", "binary_layers", "latent_histograms", "plot_run"]


def binary_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every layer whose weight is 1-bit (DDP/compile wrappers unwrapped)."""
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantMixin) and m.weight_precision == 1]


class FlipTracker:
    """Share of binary weights whose sign changed between snapshots, per layer.

    ``sign(0) = +1`` (as the quantizers), so a weight moving from 0 to -0.1 flips
    but one from 0 to +0.1 does not.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = binary_layers(model)
        self.prev: dict[str, Tensor] = {}
        self.snapshot()

    @torch.no_grad()
    def _signs(self) -> dict[str, Tensor]:
        return {n: (m.weight.detach() >= 0).cpu().clone() for n, m in self.layers}

    def snapshot(self) -> None:
        self.prev = self._signs()

    @torch.no_grad()
    def ratios(self, update: bool = True) -> dict[str, float]:
        """``{layer: flipped / total}`` since the last snapshot; ``"all"`` is the weighted total."""
        cur = self._signs()
        out: dict[str, float] = {}
        flipped = total = 0
        for n, s in cur.items():
            f = int((s != self.prev[n]).sum())
            out[n] = f / max(1, s.numel())
            flipped += f
            total += s.numel()
        if cur:
            out["all"] = flipped / max(1, total)
        if update:
            self.prev = cur
        return out

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.prev)

    def load_state_dict(self, st: dict[str, Tensor]) -> None:
        if set(st) == set(self.prev):
            self.prev = {k: v.clone() for k, v in st.items()}


@torch.no_grad()
def latent_histograms(model: nn.Module, bins: int = 60) -> dict[str, dict[str, Any]]:
    """``{layer: {"edges": [...], "counts": [...]}}`` of each binary layer's latent weights."""
    out = {}
    for n, m in binary_layers(model):
        w = m.weight.detach().float().cpu().flatten()
        lim = max(1.0, float(w.abs().max())) if w.numel() else 1.0
        lim = math.ceil(lim * 100) / 100
        counts = torch.histc(w, bins=bins, min=-lim, max=lim)
        edges = torch.linspace(-lim, lim, bins + 1)
        out[n] = {"edges": [round(float(e), 5) for e in edges], "counts": [int(c) for c in counts]}
    return out


class MetricsLogger:
    """Append-only metrics: ``metrics.jsonl`` (+ ``metrics.csv``) and TensorBoard, rank 0 only."""

    def __init__(
        self, run_dir: str, enabled: bool = True, tensorboard: bool = True, csv: bool = False
    ) -> None:
        self.run_dir, self.enabled = run_dir, enabled
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.csv_path = os.path.join(run_dir, "metrics.csv") if csv else None
        self.tb = None
        if enabled:
            os.makedirs(run_dir, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self.tb = SummaryWriter(os.path.join(run_dir, "tb"))
                except Exception:  # tensorboard missing or broken: JSON lines still work
                    self.tb = None

    def truncate_after(self, epoch: int) -> None:
        """On resume: drop epoch records at or after ``epoch`` (they will be written again)."""
        if not (self.enabled and os.path.exists(self.path)):
            return
        with open(self.path) as f:
            keep = [ln for ln in f if ln.strip() and json.loads(ln).get("epoch", -1) < epoch]
        tmp = f"{self.path}.tmp{os.getpid()}"  # replaced whole: a kill here keeps the old records
        try:
            with open(tmp, "w") as f:
                f.writelines(keep)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def log(self, record: dict[str, Any], step: int, histograms: dict[str, Any] | None = None) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.csv_path:
            flat = {k: v for k, v in record.items() if isinstance(v, (int, float, str))}
            new = not os.path.exists(self.csv_path)
            with open(self.csv_path, "a") as f:
                if new:
                    f.write(",".join(flat) + "\n")
                f.write(",".join(str(v) for v in flat.values()) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("epoch", "step"):
                    self.tb.add_scalar(k, v, step)
                elif isinstance(v, dict):
                    for kk, vv in v.items():
                        if isinstance(vv, (int, float)):
                            self.tb.add_scalar(f"{k}/{kk}", vv, step)
            for layer, h in (histograms or {}).items():
                self._tb_hist(f"latent/{layer}", h, step)
            self.tb.flush()

    def _tb_hist(self, tag: str, h: dict[str, Any], step: int) -> None:
        import numpy as np

        edges, counts = np.asarray(h["edges"]), np.asarray(h["counts"], dtype=np.float64)
        if counts.sum() == 0:
            return
        centers = (edges[:-1] + edges[1:]) / 2
        self.tb.add_histogram_raw(
            tag,
            min=float(edges[0]),
            max=float(edges[-1]),
            num=int(counts.sum()),
            sum=float((centers * counts).sum()),
            sum_squares=float((centers**2 * counts).sum()),
            bucket_limits=edges[1:].tolist(),
            bucket_counts=counts.tolist(),
            global_step=step,
        )

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: str) -> list[dict[str, Any]]:
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def plot_run(run_dir: str) -> list[str]:
    """Draw curves.png (loss, accuracy, lr), flips.png and histograms.png from metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in read_metrics(run_dir) if r.get("kind") == "epoch"]
    if not recs:
        return []
    written = []
    ep = [r["epoch"] + 1 for r in recs]
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    ax[0].plot(ep, [r.get("train_loss") for r in recs], "o-", label="train")
    if any("test_loss" in r for r in recs):
        e2 = [r["epoch"] + 1 for r in recs if "test_loss" in r]
        ax[0].plot(e2, [r["test_loss"] for r in recs if "test_loss" in r], "o-", label="test")
    ax[0].set(title="loss", xlabel="epoch")
    ax[0].legend()
    ax[1].plot(ep, [100 * r.get("train_acc", float("nan")) for r in recs], "o-", label="train top-1")
    if any("test_acc" in r for r in recs):
        e2 = [r["epoch"] + 1 for r in recs if "test_acc" in r]
        ax[1].plot(e2, [100 * r["test_acc"] for r in recs if "test_acc" in r], "o-", label="test top-1")
    ax[1].set(title="accuracy (%)", xlabel="epoch")
    ax[1].legend()
    ax[2].plot(ep, [r.get("lr") for r in recs], "o-")
    ax[2].set(title="learning rate", xlabel="epoch", yscale="log")
    fig.tight_layout()
    p = os.path.join(run_dir, "curves.png")
    fig.savefig(p, dpi=90)
    plt.close(fig)
    written.append(p)

    flips = [r.get("flip_ratio") for r in recs]
    if any(flips):
        fig, ax = plt.subplots(figsize=(7, 4))
        layers = [k for k in (flips[-1] or {}) if k != "all"]
        for layer in layers:
            ax.plot(ep, [(f or {}).get(layer, float("nan")) for f in flips], label=layer)
        ax.plot(ep, [(f or {}).get("all", float("nan")) for f in flips], "k--", lw=2, label="all")
        ax.set(
            title="flip ratio per binary layer", xlabel="epoch", ylabel="share of signs flipped", yscale="log"
        )
        if len(layers) <= 12:
            ax.legend(fontsize=7)
        fig.tight_layout()
        p = os.path.join(run_dir, "flips.png")
        fig.savefig(p, dpi=90)
        plt.close(fig)
        written.append(p)

    hrecs = [r for r in recs if r.get("histograms")]
    if hrecs:
        layers = list(hrecs[-1]["histograms"])
        n = len(layers)
        cols = min(4, n)
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
        pick = sorted({0, len(hrecs) // 2, len(hrecs) - 1})
        for i, layer in enumerate(layers):
            a = axes[i // cols][i % cols]
            for j in pick:
                h = hrecs[j]["histograms"].get(layer)
                if not h:
                    continue
                edges = h["edges"]
                centers = [(edges[k] + edges[k + 1]) / 2 for k in range(len(edges) - 1)]
                a.plot(centers, h["counts"], label=f"epoch {hrecs[j]['epoch'] + 1}")
            a.set_title(layer, fontsize=8)
            a.set_yscale("symlog")
        axes[0][0].legend(fontsize=7)
        for k in range(n, rows * cols):
            axes[k // cols][k % cols].axis("off")
        fig.suptitle("latent weights of binary layers")
        fig.tight_layout()
        p = os.path.join(run_dir, "histograms.png")
        fig.savefig(p, dpi=80)
        plt.close(fig)
        written.append(p)
    return written
