"""The arguments of every command that loads a trained network: TARGET, ``--model``,
``--ema`` and ``--device``, worded once (see :func:`convnets.engine.runs.resolve_target`
for what a target can be), and the note such a command gives for an untrained one."""
from __future__ import annotations

import argparse

from .common import config_help, note

__all__ = ["TARGET_HELP", "add_target_arguments", "note_untrained"]

TARGET_HELP = "run directory, weights file (.safetensors/.pt, with --model) or model name"


def add_target_arguments(p: argparse.ArgumentParser, *, ema: str | None, device: bool = True,
                         several: bool = False) -> None:
    """TARGET (``several``: one or more, as ``args.targets``), ``--model``, ``--ema`` when the
    command can use a run's EMA weights (``ema`` is the verb of its help: "use", "export")
    and ``--device``."""
    if several:
        p.add_argument("targets", nargs="+", metavar="TARGET",
                       help=TARGET_HELP + " (several: their ensemble)")
    else:
        p.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    p.add_argument("--model", help="model name for weights files outside a run directory")
    if ema is not None:
        p.add_argument("--ema", action="store_true", help=f"{ema} a run's EMA weights")
    if device:
        p.add_argument("--device", default="auto", help=config_help("device"))


def note_untrained(predictor, doing: str) -> None:
    """A note when ``predictor`` has no trained weights (``doing``: what the command does
    with its initialisation, e.g. "serving")."""
    if not predictor.weights:
        note(f"note: {predictor.model_name} has no weights given; {doing} its untrained "
             "initialisation")
