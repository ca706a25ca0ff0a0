"""The README's quick start: a float ResNet-18 made binary, trained on CIFAR-10, run by the engine.

    python examples/quickstart.py                          # 300 steps of 128 images, ~5 min on 2 cores
    python examples/quickstart.py --steps 100 --batch-size 64 --test-images 2000

1. ``onebit.binarize_`` converts torchvision's ResNet-18: every Conv2d/Linear but
   the first and the last becomes a binary layer (sign of the input, sign of the
   weight, a learned per-channel scale, +1 padding), and the ReLUs in front of
   them become identities: ``sign(relu(x))`` would be +1 everywhere.
2. A few hundred steps of Bop (binary weights) + Adam (everything else) on the
   real CIFAR-10 training set, with the standard pad-4 crop and flip.
3. ``onebit.export`` writes a ``.onebit`` file; ``onebit.runtime.load`` runs it
   in the C++ engine (no PyTorch needed there); both accuracies on the test set
   are printed.

Data: ``$ONEBIT_DATA/cifar10/cifar10-jpg.zip`` (or the other layouts of
docs/training.md), else torchvision's download into ``~/.cache/onebit``.
``tests/test_quickstart.py`` runs :func:`main` on a smaller network.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import onebit
from onebit.data import Normalize, cache_dir, data_dir, load_arrays, random_crop_flip
from onebit.nn import BinarizeConfig


def main(
    steps: int = 300,
    batch_size: int = 128,
    train_images: int = 0,
    test_images: int = 0,
    path: str = "resnet18_cifar10.onebit",
    model: nn.Module | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, float]:
    """Convert, train ``steps`` steps, export to ``path``, and compare PyTorch with the engine.

    ``train_images``/``test_images`` > 0 take an evenly spread subset of each split
    (0: all 50,000 / 10,000). ``model`` replaces torchvision's ResNet-18 (a float
    model; the test passes a narrower ResNet). Returns the test accuracies (in [0, 1])
    of the binary model in PyTorch and in the engine, their agreement and the
    training time in seconds.
    """
    say = print if verbose else (lambda *a, **k: None)
    torch.manual_seed(seed)

    # Real CIFAR-10 as uint8 tensors in memory (decoded once, then cached).
    train = load_arrays("cifar10", data_dir(), cache_dir(), True, train_images)
    test = load_arrays("cifar10", data_dir(), cache_dir(), False, test_images)
    norm = Normalize("standard", "cifar10", 3)

    # Convert: every Conv2d/Linear but the first and last becomes binary, and the ReLUs in
    # front of binary layers become identities (sign(relu(x)) = +1 everywhere).
    float_model = model if model is not None else torchvision.models.resnet18(num_classes=10)
    model = onebit.binarize_(float_model, BinarizeConfig(scaling="channel", pad_value=1.0))
    if verbose:
        onebit.summary(model, (3, 32, 32))

    # Binary weights with Bop, the rest (stem, classifier, BN, scales) with Adam.
    binary = onebit.optim.binary_parameters(model)
    is_binary = onebit.optim.is_binary_parameter(model)
    rest = [p for p in model.parameters() if not is_binary(p)]
    opt = onebit.optim.CaseOptimizer(onebit.optim.Bop(binary), torch.optim.Adam(rest, lr=1e-3))

    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(len(train), (batch_size,), generator=gen)
        x = norm(random_crop_flip(train.images[idx], 4, True, gen))
        loss = F.cross_entropy(model(x), train.labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            say(f"step {step:4d}  loss {loss.item():.3f}  {time.time() - t0:6.1f} s")
    train_s = time.time() - t0

    # Export, then run the test set through PyTorch and through the onebit engine.
    model.eval()
    x_test = norm(test.images)
    onebit.export(model, x_test[:1], path)
    engine = onebit.runtime.load(path)
    with torch.inference_mode():
        torch_pred = torch.cat([model(b) for b in x_test.split(500)]).argmax(1).numpy()
    engine_pred = np.concatenate([engine.run(b.numpy()) for b in x_test.split(500)]).argmax(1)
    labels = test.labels.numpy()
    res = {
        "torch_acc": float(np.mean(torch_pred == labels)),
        "engine_acc": float(np.mean(engine_pred == labels)),
        "same_prediction": float(np.mean(torch_pred == engine_pred)),
        "train_seconds": train_s,
    }
    say(
        f"test accuracy on {len(labels):,} CIFAR-10 images after {steps} steps: "
        f"PyTorch {100 * res['torch_acc']:.2f}%, onebit engine ({path}) {100 * res['engine_acc']:.2f}% "
        f"(same prediction on {100 * res['same_prediction']:.2f}%)"
    )
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--train-images", type=int, default=0, help="subset of the training set (0: all)")
    ap.add_argument("--test-images", type=int, default=0, help="subset of the test set (0: all)")
    ap.add_argument("--out", default="resnet18_cifar10.onebit", help="the exported file")
    args = ap.parse_args()
    main(args.steps, args.batch_size, args.train_images, args.test_images, args.out)
