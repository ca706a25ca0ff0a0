"""`onebit train` and `onebit eval` (placeholder until the training issue lands)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _not_yet(args: argparse.Namespace) -> int:
    raise ValueError("training is not implemented yet in this build of onebit")


def configure_train(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("--config", help="recipe file (TOML or YAML)")
    return _not_yet


def configure_eval(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("checkpoint")
    return _not_yet
