"""The optimizers of the papers' recipes, built from a training configuration."""
from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig

__all__ = ["build_optimizer"]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    # dampening 0: the "momentum without dampening" of the DenseNet/GUNN Torch code.
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, dampening=0.0,
                           nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
