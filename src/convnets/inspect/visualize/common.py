"""What every visualisation shares: naming layers, capturing what they compute, naming
classes, and turning network inputs back into pictures.

Layers are named as ``model.named_modules()`` names them (``layer3``, ``features.7``),
which is what ``convnets summary MODEL`` lists. A layer is captured with a forward hook,
so it must run as a module: the bottleneck units inside a GUNN layer, for one, are
computed by the layer's own forward (Algorithm 1) and never called, and are refused
with the nearest layer that does run.
"""
from __future__ import annotations

import contextlib
import re
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError
from ...models.hooks import capture_outputs, capture_shapes

__all__ = ["as_batch", "find_layer", "capture", "forward_to", "run_layers", "default_layer",
           "resolve_class", "to_display"]

_LIST_ALL = 40  # layer names listed in full in an error up to this many


def as_batch(x: torch.Tensor) -> torch.Tensor:
    """One normalised image, (C, H, W) or (1, C, H, W), as a batch of one."""
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4) or (x.dim() == 4 and len(x) != 1):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"expected one image tensor (C, H, W), got {shape}")
    return x.unsqueeze(0) if x.dim() == 3 else x


def _layer_hint(model: nn.Module) -> str:
    names = [name for name, _ in model.named_modules() if name]
    if len(names) <= _LIST_ALL:
        return "layers: " + ", ".join(names)
    # The names down to the deepest nesting that still fits in a line (stages, blocks).
    depth = 0
    while len([n for n in names if n.count(".") <= depth + 1]) <= _LIST_ALL:
        depth += 1
    shown = [n for n in names if n.count(".") <= depth]
    deepest = max(n.count(".") for n in names) + 1
    return (f"layers: {', '.join(shown)}, ... (all {len(names)}: "
            f"`convnets summary MODEL --depth {deepest}`)")


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The module ``name`` of ``model``; an unknown name is refused with the valid ones."""
    modules = dict(model.named_modules())
    if not name or name not in modules:
        raise ConfigError(f"no layer {name!r} in {type(model).__name__}; {_layer_hint(model)}")
    return modules[name]


def _feature_maps(model: nn.Module, name: str, outputs: list, ran: set[str]) -> torch.Tensor:
    if not outputs:
        raise ConfigError(_never_ran(model, name, ran))
    out = outputs[-1]
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"layer {name!r} outputs {shape}, not feature maps (N, C, H, W); "
                          "choose a convolutional layer")
    return out


def _never_ran(model: nn.Module, name: str, ran: set[str]) -> str:
    parents = [p for p in _ancestors(name) if p in ran]
    owner = f"; {parents[0]!r} computes it inside its own forward" if parents else ""
    example = f", e.g. {parents[0]!r}" if parents else ""
    return (f"layer {name!r} never runs as a module in {type(model).__name__}{owner}; "
            f"choose a layer that does{example}")


def _ancestors(name: str) -> list[str]:
    """'a.b.c' -> ['a.b', 'a'], nearest first."""
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(len(parts) - 1, 0, -1)]


@contextlib.contextmanager
def _hooked(model: nn.Module, name: str, record: Callable[[str, Any], None]) -> Iterator[set[str]]:
    """``record(name, output)`` for layer ``name``; yields the set of its ancestors that
    ran, so that a layer that never runs can be refused with the nearest one that does."""
    find_layer(model, name)  # an unknown name is refused with the valid ones
    ran: set[str] = set()
    with capture_outputs(model, [name], record), \
            capture_outputs(model, _ancestors(name), lambda parent, _out: ran.add(parent)):
        yield ran


class _Capture:
    def __init__(self, model: nn.Module, name: str) -> None:
        self.model, self.name, self.outputs = model, name, []
        self.ran: set[str] = set()

    def record(self, _name: str, out: object) -> None:
        # A copy: an in-place ReLU after the layer would otherwise change what was seen.
        self.outputs[:] = [out.detach().clone() if isinstance(out, torch.Tensor) else out]

    @property
    def output(self) -> torch.Tensor:
        """The layer's output in the last forward pass, a 4-D feature map."""
        return _feature_maps(self.model, self.name, self.outputs, self.ran)


@contextlib.contextmanager
def capture(model: nn.Module, name: str) -> Iterator[_Capture]:
    """Records what layer ``name`` outputs while the block runs (``.output``: the last)."""
    cap = _Capture(model, name)
    with _hooked(model, name, cap.record) as cap.ran:
        yield cap


class _Reached(Exception):
    """Stops a forward pass once the layer of interest has run."""


def forward_to(model: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    """Layer ``name``'s output for the batch ``x``, connected to ``x`` for autograd; the
    forward pass stops there, so nothing after the layer runs (or changes it in place)."""
    outputs: list = []

    def stop(_name: str, out: object) -> None:
        outputs.append(out)
        raise _Reached

    with _hooked(model, name, stop) as ran:
        try:
            model(x)
        except _Reached:
            pass
    return _feature_maps(model, name, outputs, ran)


@torch.no_grad()
def run_layers(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...] | None]]:
    """Every layer that runs on ``x``, in the order it first runs, with its output shape
    (None for outputs that are not one tensor)."""
    with capture_shapes(model, [n for n, _ in model.named_modules() if n]) as shapes:
        model(as_batch(x))
    return list(shapes.items())


def default_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The deepest feature map a top-level layer gives (ResNet's ``layer4``, VGG's
    ``features``): the last layer of least nesting that outputs (N, C, H, W), preferring
    maps larger than 1x1. Zeiler and Fergus's occlusion study reads such a layer (their
    layer 5, the last convolutional one)."""
    runs = [(n, s) for n, s in run_layers(model, x) if s is not None and len(s) == 4]
    if not runs:
        raise ConfigError(f"{type(model).__name__} has no layer that outputs feature maps")
    depth = min(n.count(".") for n, _ in runs)
    top = [(n, s) for n, s in runs if n.count(".") == depth]
    spatial = [n for n, s in top if s[2] * s[3] > 1]
    return (spatial or [n for n, _ in top])[-1]


def resolve_class(cls: int | str | None, classes: Sequence[str], default: int) -> int:
    """A class given by index or by name (case-insensitive); ``default`` when None."""
    if cls is None:
        return default
    n = len(classes)
    if isinstance(cls, str):
        lowered = [c.lower() for c in classes]
        if cls.strip().lower() in lowered:
            return lowered.index(cls.strip().lower())
        text = cls.strip()
        if not re.fullmatch(r"-?[0-9]+", text):  # not str.isdigit, which takes "²"
            examples = ", ".join(repr(c) for c in classes[:3])
            raise ConfigError(f"unknown class {cls!r}: give an index 0-{n - 1} or a name "
                              f"such as {examples}")
        cls = int(text)
    if not 0 <= cls < n:
        raise ConfigError(f"class index {cls} is out of range: the model has {n} classes (0-{n - 1})")
    return int(cls)


def to_display(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised (C, H, W) input as an (H, W, 3) picture in [0, 1]."""
    x = as_batch(x)[0].detach().float().cpu()
    c = x.shape[0]
    m = torch.tensor(list(mean) * (c if len(mean) == 1 else 1), dtype=x.dtype)[:c, None, None]
    s = torch.tensor(list(std) * (c if len(std) == 1 else 1), dtype=x.dtype)[:c, None, None]
    img = (x * s + m).clamp(0, 1)
    if c == 1:
        img = img.expand(3, -1, -1)
    elif c != 3:
        img = img.mean(0, keepdim=True).expand(3, -1, -1)
    return img.permute(1, 2, 0).numpy()
