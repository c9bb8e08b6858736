"""Learning-rate schedules: the multiplier of the peak learning rate at each optimizer
step (:func:`lr_factor`), and :class:`Schedule`, the scheduler a run steps, which adds
the reduce-on-plateau decisions taken at the end of each epoch on the validation split."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .config import TrainConfig

__all__ = ["lr_factor", "Schedule"]


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The multiplier of ``cfg.lr`` for optimizer step ``s`` (0-based), before any plateau
    decision. Milestones and warm-up count epochs, or optimizer steps when
    ``cfg.schedule_unit`` is "iter" (the ResNet CIFAR schedule: He et al. 2016, Sec. 4.2)."""
    total = cfg.epochs * steps_per_epoch
    unit = 1 if cfg.schedule_unit == "iter" else steps_per_epoch
    warm = round(cfg.warmup_epochs * unit)
    cycle = math.ceil(total / cfg.snapshot_ensemble) if cfg.snapshot_ensemble else 0
    steps = [(m * unit, g) for m, g in zip(cfg.milestones, cfg.milestone_gammas())]
    low = cfg.warmup_factor

    def warm_up(s: int) -> float:
        if s >= warm:
            return 1.0
        # Goyal et al. 2017, Sec. 2.2 (linear); He et al. 2016, Sec. 4.2: ResNet-110 trains
        # at 0.01 "until the training error is below 80% (about 400 iterations)" (constant).
        return low if cfg.warmup_mode == "constant" else low + (1 - low) * s / warm

    def factor(s: int) -> float:
        if cycle:  # Huang et al. 2017 (snapshot ensembles), Eq. 2: restart every T/M steps
            return 0.5 * (1.0 + math.cos(math.pi * (s % cycle) / cycle))
        if cfg.schedule == "cosine":  # Loshchilov & Hutter 2017, without restarts
            progress = min(1.0, max(0, s - warm) / max(1, total - warm))
            return warm_up(s) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if cfg.schedule == "exp":  # staircase: x gamma every decay_every epochs (TF-slim's)
            return warm_up(s) * cfg.gamma ** math.floor(s / (cfg.decay_every * steps_per_epoch))
        if cfg.schedule == "plateau":  # the decays are Schedule's decisions
            return warm_up(s)
        if cfg.gammas:  # one factor per milestone (LeNet-5's rates, WRN's x0.2)
            return warm_up(s) * math.prod(g for at, g in steps if s >= at)
        return warm_up(s) * cfg.gamma ** sum(1 for at, _ in steps if s >= at)

    return factor


class Schedule:
    """The run's scheduler: ``step()`` after each optimizer step sets the learning rate
    of :func:`lr_factor`, times ``gamma`` per plateau decay; ``end_epoch(val_err)``
    takes the plateau decision (Krizhevsky et al. 2012, Sec. 5: lr /10 "when the
    validation error rate stopped improving"). Its state, the step and the plateau's
    record, is saved in every checkpoint."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
        self.optimizer, self.cfg = optimizer, cfg
        self.base = lr_factor(cfg, steps_per_epoch)
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.last_step = 0
        self.best_val_err = math.inf
        self.bad_epochs = 0
        self.decays = 0
        self._apply()

    def factor(self) -> float:
        return self.base(self.last_step) * self.cfg.gamma ** self.decays

    def _apply(self) -> None:
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base_lr * self.factor()

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def end_epoch(self, val_err: float | None) -> bool:
        """Record the epoch's validation error; True when the learning rate was divided.
        Only a plateau schedule decides; an improvement is any lower error."""
        if self.cfg.schedule != "plateau" or val_err is None:
            return False
        if val_err < self.best_val_err:
            self.best_val_err, self.bad_epochs = val_err, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs < self.cfg.plateau_patience:
            return False
        self.decays, self.bad_epochs = self.decays + 1, 0
        self._apply()
        return True

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_step": self.last_step, "best_val_err": self.best_val_err,
                "bad_epochs": self.bad_epochs, "decays": self.decays}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "last_step" not in state:  # a checkpoint of LambdaLR's, from before this class
            state = {"last_step": state["last_epoch"]}
        self.last_step = int(state["last_step"])
        self.best_val_err = float(state.get("best_val_err", math.inf))
        self.bad_epochs = int(state.get("bad_epochs", 0))
        self.decays = int(state.get("decays", 0))
        self._apply()
