"""`onebit demo`: the README's main job.

Trains a small binary network (BinaryNet's MLP, 784-512-512-512-10, binary
weights and activations, clipped latent weights, Adam + cosine) on the real
MNIST data for a few minutes on a CPU, prints the test accuracy, the model
summary and where the plots are, then exports it and runs the test set through
the onebit engine. Its latency is compared with the network it replaces: the
**float twin** (the same MLP with float layers and ReLUs, trained for one epoch
here so its accuracy is shown too) in PyTorch fp32, at batch 1 on one thread.
The binary model's own PyTorch time is printed as well, labelled as what it is
(fake quantization: the signs recomputed in fp32 on every call), not as a
baseline. Data: ``$ONEBIT_DATA`` (else ``../shared/data`` next to the
checkout, else the standard download).

Environment knobs: ``ONEBIT_DEMO_EPOCHS`` (default 4), ``ONEBIT_DEMO_MINUTES``
(time budget, default 3), ``ONEBIT_DEMO_OUT`` (runs folder, default ``runs``).
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ["main"]


def _find_data() -> str:
    if os.environ.get("ONEBIT_DATA"):
        return os.environ["ONEBIT_DATA"]
    here = os.path.dirname(os.path.abspath(__file__))
    for base in (os.getcwd(), os.path.join(here, "..", "..")):
        cand = os.path.abspath(os.path.join(base, "..", "shared", "data"))
        if os.path.isdir(os.path.join(cand, "mnist")):
            return cand
    return ""  # the loader falls back to the cache dir and torchvision's download


def _train_float_twin(
    model: Any, meta: dict, data: str, epochs: int = 1, minutes: float = 1.0
) -> tuple[Any, float]:
    """The float twin of ``model`` (:func:`onebit.nn.float_twin`), re-initialized and trained briefly.

    Same recipe data and normalization, Adam 1e-3, batch 100, ``epochs`` epochs or
    ``minutes`` at most: enough for an MLP on MNIST to show what the float network
    the binary one replaces would score, and to time a real float network.
    Returns the twin (in eval mode) and the number of epochs it trained (a fraction
    when the time ran out).
    """
    import torch
    import torch.nn.functional as F

    from onebit.data import Normalize, cache_dir, data_dir, load_arrays
    from onebit.nn import float_twin

    torch.manual_seed(0)
    twin = float_twin(model)
    for m in twin.modules():
        if m is not twin and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    dc = (meta.get("config") or {}).get("data") or {}
    name = dc.get("name", "mnist")
    train = load_arrays(
        name, data_dir(data or dc.get("data_dir", "")), cache_dir(dc.get("cache_dir", "")), True
    )
    norm = Normalize(dc.get("normalize", "standard"), name, train.images.shape[1])
    opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    deadline = time.time() + 60 * minutes
    twin.train()
    seen = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small MLP: more threads only add synchronization
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(train), generator=gen).split(100):
                loss = F.cross_entropy(twin(norm(train.images[idx])), train.labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                seen += len(idx)
                if time.time() > deadline:
                    break
            if time.time() > deadline:
                break
    finally:
        torch.set_num_threads(threads)
    return twin.eval(), seen / len(train)


def _after_training(checkpoint: str, run_dir: str, data: str) -> None:
    """Export the trained model, run the test set through the engine, compare with the float twin."""
    from onebit.export import export
    from onebit.export.verify import compare_engine, test_split_of
    from onebit.training.checkpoint import load_model

    model, meta = load_model(checkpoint)
    x, labels, classes = test_split_of(meta, data)
    path = os.path.join(run_dir, "model.onebit")
    export(model, x[:1], path, model_name=meta.get("model_name") or "binarynet_mlp", labels=classes)
    t = time.time()
    twin, epochs = _train_float_twin(model, meta, data)
    print(
        f"baseline: the float twin (the same MLP with float layers and ReLUs, PyTorch fp32), "
        f"trained from scratch for {epochs:.2g} epoch(s) in {time.time() - t:.0f} s"
    )
    print(f"exported {path}; running the {len(x):,} MNIST test images through the onebit engine")
    report = compare_engine(model, path, x, labels, num_threads=1, runs=200, twin=twin)
    for line in report.lines():
        print("  " + line)
    print(f"  (`onebit bench {path}` and `onebit inspect {path}` show more; the engine needs no PyTorch)")


#: the demo's recipe as ``--set`` overrides (BinaryNet's MLP 784-512-512-512-10 on MNIST);
#: the run's length, data and output directories are added by :func:`main`
RECIPE_SETS = (
    'model.name="binarynet_mlp"',
    "model.kwargs.hidden=512",
    "model.kwargs.num_hidden=3",
    'data.name="mnist"',
    "data.batch_size=100",
    "data.augment=false",
    'data.normalize="pm1"',
    'optim.name="adam"',
    "optim.lr=2e-3",
    'schedule.name="cosine"',
    "schedule.min_lr=1e-5",
    "schedule.by_time=true",
)


def main() -> int:
    from onebit import summary_for
    from onebit.training.config import load_config
    from onebit.training.loop import train

    epochs = int(os.environ.get("ONEBIT_DEMO_EPOCHS", "4"))
    minutes = float(os.environ.get("ONEBIT_DEMO_MINUTES", "3"))
    out = os.environ.get("ONEBIT_DEMO_OUT", "runs")
    data = _find_data()
    sets = [
        *RECIPE_SETS,
        f"data.data_dir={data!r}".replace("'", '"'),
        f"train.epochs={epochs}",
        f"train.time_limit_min={minutes}",
        f'train.out_dir="{out}"',
        'train.run_name="demo"',
        # a second demo writes runs/demo-2, ...: it never replaces an earlier run's files
        'train.if_exists="new"',
    ]
    cfg = load_config(None, sets)
    print(
        f"onebit demo: BinaryNet MLP (784-512-512-512-10, binary weights and activations) on MNIST "
        f"from {data or 'the default cache'}, {epochs} epochs or {minutes:g} min at most"
    )
    t = time.time()
    res = train(cfg)
    m = res["metrics"]
    print()
    print(
        f"test accuracy: {100 * m.get('test_acc', float('nan')):.2f}% top-1 "
        f"({100 * (1 - m.get('test_acc', float('nan'))):.2f}% error) after {m['epoch'] + 1} epochs, "
        f"{(time.time() - t) / 60:.1f} min"
    )
    print()
    summary_for(res["checkpoint"])
    print()
    print(f"run directory: {res['run_dir']}")
    for p in res["plots"]:
        print(f"  plot: {p}")
    print(f"  checkpoint: {res['checkpoint']}   (onebit eval {res['checkpoint']})")
    print()
    _after_training(res["checkpoint"], res["run_dir"], data)
    return 0
