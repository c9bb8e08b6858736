"""Learning-rate schedules: the multiplier of the peak learning rate at each optimizer
step, for ``torch.optim.lr_scheduler.LambdaLR``."""
from __future__ import annotations

import math
from typing import Callable

from .config import TrainConfig

__all__ = ["lr_factor"]


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The multiplier of ``cfg.lr`` for optimizer step ``s`` (0-based)."""
    total = cfg.epochs * steps_per_epoch
    warm = round(cfg.warmup_epochs * steps_per_epoch)
    cycle = math.ceil(total / cfg.snapshot_ensemble) if cfg.snapshot_ensemble else 0

    def factor(s: int) -> float:
        if cycle:  # Huang et al. 2017 (snapshot ensembles), Eq. 2: restart every T/M steps
            return 0.5 * (1.0 + math.cos(math.pi * (s % cycle) / cycle))
        ramp = 0.01 + 0.99 * s / warm if s < warm else 1.0  # Goyal et al. 2017, Sec. 2.2
        if cfg.schedule == "cosine":  # Loshchilov & Hutter 2017, without restarts
            progress = min(1.0, max(0, s - warm) / max(1, total - warm))
            return ramp * 0.5 * (1.0 + math.cos(math.pi * progress))
        passed = sum(1 for m in cfg.milestones if s >= m * steps_per_epoch)
        return ramp * cfg.gamma ** passed

    return factor
