"""Weight initialisation options for training from scratch: He and LSUV."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..models.hooks import capture_outputs, capture_shapes
from ..models.layers import init_he_fan_out

__all__ = ["init_he", "init_lsuv", "apply_init"]

_LAYERS = (nn.Conv2d, nn.Linear)


def init_he(model: nn.Module) -> nn.Module:
    """He et al. 2015 (Eq. 10): N(0, 2/fan) for convolutions; batch norm to identity."""
    init_he_fan_out(model)
    return model


class _Stop(Exception):
    pass


@torch.no_grad()
def init_lsuv(model: nn.Module, batch: torch.Tensor, *, tol: float = 0.1, max_iters: int = 10) -> list[float]:
    """Layer-sequential unit-variance initialisation (Mishkin & Matas 2016, Algorithm 1).

    Every convolution and linear layer gets an orthonormal weight (Saxe et al. 2014) and
    a zero bias; then, in the order the forward pass reaches them, each layer's weight is
    divided by the standard deviation of its output on ``batch`` until that variance is
    within ``tol`` of 1. Layers whose weights are used without calling the module are
    left orthonormal. Returns the final output variance of each layer, in order.
    """
    was_training = model.training
    model.eval()  # batch-norm running statistics must not absorb the probing passes
    names = [name for name, m in model.named_modules() if isinstance(m, _LAYERS)]
    with capture_shapes(model, names) as reached:
        model(batch)
    order = [model.get_submodule(name) for name in reached]  # as the forward pass reaches them

    for m in order:
        nn.init.orthogonal_(m.weight.view(m.weight.shape[0], -1))
        if m.bias is not None:
            nn.init.zeros_(m.bias)

    variances = []
    for name, layer in zip(reached, order):
        seen: list[torch.Tensor] = []

        def probe(_name: str, out: torch.Tensor) -> None:
            seen.append(out.detach().float().var())
            raise _Stop  # the rest of the network is not needed for this layer

        def measure() -> float:
            seen.clear()
            try:
                model(batch)
            except _Stop:
                pass
            return float(seen[0])

        with capture_outputs(model, [name], probe):
            for _ in range(max_iters):
                var = measure()
                if abs(var - 1.0) < tol or not var > 0 or var == float("inf"):
                    break
                layer.weight.div_(var ** 0.5)
            else:
                var = measure()
        variances.append(var)
    model.train(was_training)
    return variances


def apply_init(model: nn.Module, kind: str, batch: torch.Tensor | None = None) -> None:
    """``default`` keeps the model's own initialisation (its paper's)."""
    if kind == "he":
        init_he(model)
    elif kind == "lsuv":
        if batch is None:
            raise ValueError("LSUV initialisation needs a batch of training data")
        init_lsuv(model, batch)
    elif kind != "default":
        raise ConfigError.of("init", f"must be default, he or lsuv, got {kind!r}")
