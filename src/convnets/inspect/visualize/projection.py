"""Projecting a unit back to pixels: the deconvnet (Zeiler & Fergus 2014, Section 2.1),
guided backpropagation (Springenberg et al. 2015) and the saliency map (the input
gradient, Simonyan et al. 2014, Section 3).

What is projected is either a class score, or, as in Zeiler and Fergus's Figs. 2 and 4,
the strongest activations of a chosen layer: the feature map with the largest single
activation is kept at its ``top`` largest values, every other activation of the layer is
set to zero, and that map is passed back down. The three methods differ only in how a
ReLU passes the signal back: the gradient keeps it where the forward input was positive,
the deconvnet rectifies the signal itself, guided backpropagation does both.

The methods are captum's (``Deconvolution``, ``GuidedBackprop``, ``Saliency``). captum
changes the backward pass of ``nn.ReLU`` modules only, while most of the zoo applies
ReLU as a function (``F.relu``, ``torch.relu``, ``Tensor.relu_``). So every ReLU the
network applies, as a module or as a function, is routed through a module of its own
(a ``TorchFunctionMode`` that sees each call), and those are the modules captum hooks.
A GUNN layer computes its ReLUs inside a hand-written backward pass (Algorithm 1), out
of reach of any hook, so while projecting it runs Eq. 4 written out (``fast=False``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ...errors import ConfigError
from ...models.gunn import reference_evaluation
from .common import as_batch, forward_to, resolve_class

__all__ = ["Projection", "project_back"]

_RELUS = frozenset({F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu,
                    torch.Tensor.relu_})


@dataclass
class Projection:
    what: str                  # what was projected, in words
    target: int | None         # the class whose score was projected, or None
    layer: str | None          # the layer whose activations were projected, or None
    channel: int | None        # that layer's strongest feature map
    positions: list[tuple[int, int]]  # (row, col) of the activations kept in it
    map_size: tuple[int, int] | None  # (H, W) of the layer's feature maps
    deconv: np.ndarray         # (C, H, W) deconvnet projection
    guided: np.ndarray         # (C, H, W) guided backpropagation
    saliency: np.ndarray       # (C, H, W) the input gradient (signed)
    probs: np.ndarray          # (num_classes,) class probabilities of the image


class _ReluCalls(TorchFunctionMode):
    """Sees every ReLU applied while active: counts them, and when ``units`` is given
    applies the i-th one with ``units[i]``.

    An in-place call (``relu_``, ``inplace=True``) is applied out of place; the caller
    gets the result as its return value, which is how every model of the zoo uses it."""

    def __init__(self, units: nn.ModuleList | None = None) -> None:
        super().__init__()
        self.units, self.calls = units, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _RELUS:
            return func(*args, **kwargs)
        self.calls += 1
        if self.units is None:
            return func(*args, **kwargs)
        if self.calls > len(self.units):
            raise RuntimeError("the network applied more ReLUs than when they were counted")
        # captum hooks the gradient of the ReLU's input tensor; a private copy has the
        # ReLU as its only consumer, so no other path's gradient is rectified with it.
        return self.units[self.calls - 1](args[0].clone())


class _Routed(nn.Module):
    """``fn`` with its i-th ReLU applied by ``units[i]``: the only modules captum sees
    (the model is held by ``fn``, not registered here)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], calls: int) -> None:
        super().__init__()
        self.fn = fn
        self.units = nn.ModuleList(nn.ReLU() for _ in range(calls))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with _ReluCalls(self.units) as mode:
            out = self.fn(x)
        if mode.calls != len(self.units):
            raise RuntimeError(f"the network applied {mode.calls} ReLUs, {len(self.units)} "
                               "when they were counted")
        return out


def count_relus(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> int:
    with torch.no_grad(), _ReluCalls() as mode:
        fn(x)
    return mode.calls


def _strongest(acts: torch.Tensor, top: int) -> tuple[int, torch.Tensor, list[tuple[int, int]]]:
    """The feature map with the largest single activation, and a copy of the layer's
    output with everything but that map's ``top`` largest activations set to zero."""
    c, h, w = acts.shape
    if not 1 <= top <= h * w:
        raise ConfigError.of("top", f"must be between 1 and {h * w} (the map's size), got {top}")
    channel = int(acts.flatten(1).amax(1).argmax())
    values, index = acts[channel].flatten().topk(top)
    kept = torch.zeros_like(acts)
    kept[channel].view(-1)[index] = values
    positions = [(int(i) // w, int(i) % w) for i in index]
    return channel, kept, positions


def project_back(model: nn.Module, x: torch.Tensor, *, layer: str | None = None,
                 target: int | str | None = None, classes: list[str] | None = None,
                 top: int = 1) -> Projection:
    """Deconvnet, guided backpropagation and saliency for one normalised image ``x``.

    With ``layer``, the layer's strongest feature map, kept at its ``top`` largest
    activations, is projected; otherwise the score (logit) of class ``target`` (index or
    name in ``classes``; default: the predicted class)."""
    x = as_batch(x).detach().clone().requires_grad_()  # captum would warn and set it
    with torch.no_grad():
        probs = torch.softmax(model(x).float(), 1)[0]
    classes = classes or [str(k) for k in range(len(probs))]
    channel, positions, cls, map_size = None, [], None, None
    if layer is not None:
        if target is not None:
            raise ConfigError("give a layer or a class to project, not both")
        with torch.no_grad():
            channel, kept, positions = _strongest(forward_to(model, layer, x)[0], top)
        map_size = tuple(kept.shape[-2:])
        strongest = "strongest activation" if top == 1 else f"{top} strongest activations"
        what = f"'{layer}', feature map {channel}, its {strongest}"

        def objective(inp: torch.Tensor) -> torch.Tensor:
            # Feeding ``kept`` down the network is the gradient of <output, kept>.
            return (forward_to(model, layer, inp) * kept).flatten(1).sum(1)
    else:
        cls = resolve_class(target, classes, default=int(probs.argmax()))
        what = f"the score of class {classes[cls]!r}"

        def objective(inp: torch.Tensor) -> torch.Tensor:
            return model(inp)[:, cls]

    from captum.attr import Deconvolution, GuidedBackprop, Saliency

    saliency = Saliency(objective).attribute(x, abs=False)
    with reference_evaluation(model):
        calls = count_relus(objective, x)
        if calls == 0 and count_relus(model, x) == 0:
            raise ConfigError(f"{type(model).__name__} has no ReLU: the deconvnet and guided "
                              "backpropagation are defined by how they pass signals back "
                              "through ReLUs")
        routed = _Routed(objective, calls)
        with warnings.catch_warnings():  # captum announces the hooks it sets, every call
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            deconv = Deconvolution(routed).attribute(x)
            guided = GuidedBackprop(routed).attribute(x)

    def arr(t: torch.Tensor) -> np.ndarray:
        return t[0].detach().float().cpu().numpy()

    return Projection(what=what, target=cls, layer=layer, channel=channel, positions=positions,
                      map_size=map_size, deconv=arr(deconv), guided=arr(guided),
                      saliency=arr(saliency), probs=probs.cpu().numpy())
