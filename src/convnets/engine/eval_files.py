"""Where an evaluation's files go, so that none replaces another evaluation's.

Each eval JSON holds an ``evaluated`` record (the members' weights, the protocol, its
scales and mirrors, the data and preset). The centre-crop evaluation of one run is
``RUN/eval.json`` and ``RUN/confusion.png``, as ever; a protocol's are
``eval-<protocol>.json`` and ``confusion-<protocol>.png``. Where such a file already
holds another evaluation, the next free ``-2``, ``-3``, ... is taken; the same
evaluation run again replaces its own files. An ensemble of several targets writes
beside its first member's run (``ensemble-<digest>/``), never into a member.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from ..core import atomic_write, read_json
from ..errors import RunDirError
from . import logs

__all__ = ["default_out", "result_files", "write_results"]


def default_out(run_dirs: list[str | None], members: list[str], several_targets: bool) -> str | None:
    """The folder of an evaluation's files when no ``--out`` is given: the run's own for
    one target; for an ensemble of several targets, a folder beside the first member's
    run named by a digest of the members (none without a run directory)."""
    first = next((d for d in run_dirs if d), None)
    if first is None or not several_targets:
        return first
    digest = hashlib.sha256("\n".join(members).encode()).hexdigest()[:10]
    return os.path.join(os.path.dirname(os.path.abspath(first)), f"ensemble-{digest}")


def result_files(out: str, protocol: str, evaluated: dict[str, Any]) -> tuple[str, str]:
    """The eval JSON and confusion PNG paths in ``out`` for ``evaluated``: the protocol's
    names, or the first numbered ones that are free or hold this same evaluation."""
    base = "" if protocol == "center" else f"-{protocol}"
    n = 1
    while True:
        suffix = base if n == 1 else f"{base}-{n}"
        json_path = os.path.join(out, f"eval{suffix}.json")
        if not os.path.exists(json_path) or _holds(json_path, evaluated):
            return json_path, os.path.join(out, f"confusion{suffix}.png")
        n += 1


def _holds(path: str, evaluated: dict[str, Any]) -> bool:
    # A file that cannot be read is someone's too: it is kept, the next name taken.
    try:
        held = read_json(path, missing=path, error=RunDirError)
    except RunDirError:
        return False
    return isinstance(held, dict) and held.get("evaluated") == evaluated


def write_results(out: str | None, summary: dict[str, Any], confusion: Any, classes: list[str],
                  bad: list[tuple[str, str]], log) -> tuple[str | None, str | None]:
    """Name the unreadable test files; write the eval JSON and, for up to 100 classes, the
    confusion matrix into ``out`` (nothing is written without one). Returns the paths
    written (None for those not written)."""
    from .evaluation import plot_confusion

    if out:
        os.makedirs(out, exist_ok=True)
    if bad:
        logs.report_bad_files(out, bad, "evaluation", log)
    if not out:
        return None, None
    json_path, png_path = result_files(out, summary["protocol"], summary["evaluated"])
    atomic_write(json_path, lambda f: f.write(json.dumps(summary, indent=2).encode()))
    if len(classes) <= 100 and confusion is not None:
        plot_confusion(confusion, list(classes), png_path)
        return json_path, png_path
    return json_path, None
