"""The run directory ``out_dir/run_name``: one run per directory, never two mixed.

A second ``onebit train`` with the same recipe used to write into the first
run's directory: its ``best.pt`` replaced, ``metrics.jsonl`` holding both runs,
``tb/`` both event streams. :func:`resolve_run_dir` decides, before anything is
written, what a new run may do with a directory that already holds a run
(``train.if_exists``):

* ``"refuse"`` (default): ``ValueError`` naming what is there and the ways out;
* ``"overwrite"`` (``--overwrite``): delete the earlier run's files, then start;
* ``"new"``: write to the first free ``NAME-2``, ``NAME-3``, ... and say so.

Resuming (``train.resume``) always continues in the directory.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

__all__ = ["ARTIFACTS", "RunDir", "existing_artifacts", "resolve_run_dir"]

#: What ``onebit train`` writes into a run directory (other files there are left alone).
ARTIFACTS = (
    "last.pt",
    "best.pt",
    "metrics.jsonl",
    "metrics.csv",
    "tb",
    "curves.png",
    "flips.png",
    "histograms.png",
)


@dataclass
class RunDir:
    """Where a run writes, which checkpoint it resumes from ("" = none) and what to tell the user."""

    path: str
    resume: str = ""
    notes: list[str] = field(default_factory=list)


def existing_artifacts(run_dir: str) -> list[str]:
    """The names of :data:`ARTIFACTS` present in ``run_dir``."""
    return [a for a in ARTIFACTS if os.path.lexists(os.path.join(run_dir, a))]


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def resolve_run_dir(run_dir: str, resume: str, if_exists: str = "refuse") -> RunDir:
    """Decide where a run writes and what it resumes (see the module docstring).

    ``resume`` is ``""``, ``"auto"`` (``run_dir/last.pt`` if present, else a fresh
    start) or a checkpoint path. Raises ``ValueError`` when ``run_dir`` holds a run
    and neither resuming nor ``if_exists`` allows a new one; only ``"overwrite"``
    deletes anything, and only :data:`ARTIFACTS`.
    """
    if if_exists not in ("refuse", "overwrite", "new"):
        raise ValueError(f"train.if_exists = {if_exists!r}; expected one of ['refuse', 'overwrite', 'new']")
    if resume and if_exists == "overwrite":
        raise ValueError("--resume continues the run in its directory, --overwrite deletes it: pass one")
    if resume == "auto":
        last = os.path.join(run_dir, "last.pt")
        if os.path.exists(last):
            return RunDir(run_dir, last)
        if "best.pt" not in existing_artifacts(run_dir):  # no epoch finished: nothing to lose
            return RunDir(run_dir, "", [f"no checkpoint to resume in {run_dir}; starting from scratch"])
        resume = ""  # a best.pt without last.pt: an earlier run's result, protected like any other
    if resume:
        if not os.path.exists(resume):
            raise FileNotFoundError(f"--resume {resume}: checkpoint not found")
        return RunDir(run_dir, resume)
    found = existing_artifacts(run_dir)
    if not found:
        return RunDir(run_dir)
    if if_exists == "overwrite":
        for a in found:
            _remove(os.path.join(run_dir, a))
        return RunDir(
            run_dir, "", [f"--overwrite: removed the earlier run's {', '.join(found)} from {run_dir}"]
        )
    if if_exists == "new":
        n = 2
        while existing_artifacts(f"{run_dir}-{n}"):
            n += 1
        fresh = f"{run_dir}-{n}"
        return RunDir(fresh, "", [f"{run_dir} holds an earlier run ({', '.join(found)}); writing to {fresh}"])
    raise ValueError(
        f"{run_dir} already holds a run ({', '.join(found)}); pass --resume to continue it, "
        "--overwrite to replace it, or --set train.run_name=OTHER (train.if_exists=new picks "
        f"{os.path.basename(run_dir)}-2)"
    )
