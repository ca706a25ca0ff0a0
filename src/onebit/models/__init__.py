"""The model zoo: published binarized architectures, defined layer for layer.

Usage (timm style)::

    from onebit import models
    models.list("binary_dense*")          # names, shell wildcards
    m = models.create("quicknet", num_classes=10, input_size=32)
    models.get_cfg("quicknet")["reference"]

Every model is built from :mod:`onebit.nn` layers; each entrypoint's docstring
(and its class's) cites the paper and says what is binary and what stays float.
docs/models.md tabulates parameter counts, packed sizes and MACs against the
published numbers. ``input_size=32`` on an ImageNet model adapts its stem to
CIFAR-size inputs; ``in_chans`` changes the number of input channels.
"""

from onebit.models import (  # noqa: F401  (registration side effects)
    ablation,
    bethge,
    binarynet,
    birealnet,
    quicknet,
    reactnet,
    tang,
    wu,
    xnornet,
)
from onebit.models._registry import create, get_cfg, list_models, register_model

list = list_models  # noqa: A001 - timm-style public name: onebit.models.list(filter)

__all__ = ["create", "get_cfg", "list", "list_models", "register_model"]
