"""The engine: training loop, evaluation, checkpoints and data parallelism.

Submodules are imported on first use, so that ``import convnets`` stays light and a
command that only evaluates never loads the training machinery.
"""
from __future__ import annotations

import importlib

__all__ = ["TrainConfig", "RECIPES", "recipe_config", "fit", "train_one_epoch",
           "save_checkpoint", "load_checkpoint", "evaluate"]

_WHERE = {
    "TrainConfig": "config", "RECIPES": "config", "recipe_config": "config",
    "fit": "train", "train_one_epoch": "epoch",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "evaluate": "evaluation",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
