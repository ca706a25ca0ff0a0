"""Exceptions shared by torch-based and torch-free parts of onebit (this module imports nothing)."""

from __future__ import annotations

__all__ = ["VersionMismatchError"]


class VersionMismatchError(ValueError):
    """A serialized config (a ``BinarizeConfig`` dict, a recipe) was written by an incompatible
    version of its schema."""
