"""The optimizers of the papers' recipes, built from a training configuration: SGD with
momentum, and RMSProp as TensorFlow defines it (the Inception-v3/v4 and
Inception-ResNet recipes).

LeNet-5's stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998, Appendix C) is not
here: its step eta / (mu + h_kk) needs a running estimate of the diagonal Gauss-Newton
terms h_kk, which come from back-propagating second derivatives (the squared weights and
the squared activation slopes) through every layer, a second pass autograd has no
primitive for: it would need a rule per layer type, not an optimizer.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig

__all__ = ["build_optimizer", "scaled_lr", "RMSpropTF"]


class RMSpropTF(torch.optim.Optimizer):
    """RMSProp with momentum as TensorFlow's ``RMSPropOptimizer`` computes it (the
    optimizer of Szegedy et al. 2016, Sec. 8: decay 0.9, epsilon 1.0)::

        ms  <- decay * ms + (1 - decay) * g^2          (ms starts at 1, not 0)
        mom <- momentum * mom + lr * g / sqrt(ms + eps)
        w   <- w - mom

    PyTorch's ``RMSprop`` differs in all three places: it adds epsilon outside the
    square root, starts the mean square at 0, and applies lr after the momentum (so a
    change of lr scales the whole buffer at once). Weight decay is L2, added to g."""

    def __init__(self, params, lr: float, *, decay: float = 0.9, eps: float = 1.0,
                 momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, decay=decay, eps=eps, momentum=momentum,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p)
                    state["momentum_buffer"] = torch.zeros_like(p)
                ms, mom = state["square_avg"], state["momentum_buffer"]
                ms.mul_(group["decay"]).addcmul_(grad, grad, value=1 - group["decay"])
                mom.mul_(group["momentum"]).addcdiv_(grad, ms.add(group["eps"]).sqrt_(),
                                                     value=group["lr"])
                p.sub_(mom)
        return loss


def scaled_lr(cfg: TrainConfig, world_size: int = 1, batch_size: int | None = None) -> float:
    """The peak learning rate of a run on ``world_size`` processes of ``batch_size`` images
    (default ``cfg.batch_size``; a run resumed on another number of processes keeps its
    global batch with another per-process batch): ``cfg.lr``, or, when the recipe gives it
    for another global batch (``lr_batch``: a paper's 50 replicas x 32), scaled linearly to
    this run's (Goyal et al. 2017, Sec. 2.1)."""
    if not cfg.lr_batch:
        return cfg.lr
    per_process = cfg.batch_size if batch_size is None else batch_size
    return cfg.lr * per_process * world_size * cfg.accum_steps / cfg.lr_batch


def build_optimizer(model: nn.Module, cfg: TrainConfig, world_size: int = 1,
                    batch_size: int | None = None) -> torch.optim.Optimizer:
    lr = scaled_lr(cfg, world_size, batch_size)
    if cfg.optimizer == "rmsprop-tf":
        return RMSpropTF(model.parameters(), lr=lr, decay=cfg.rmsprop_decay,
                         eps=cfg.rmsprop_eps, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    # dampening 0: the "momentum without dampening" of the DenseNet/GUNN Torch code.
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum, dampening=0.0,
                           nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
