"""Seeing what a network's layers compute: forward hooks on named modules, removed when
the block that needs them ends.

Modules are named as ``model.named_modules()`` names them (``layer3``, ``features.7``).
A hook sees a module's output only when the module is called: weights a parent uses
inside its own forward (a GUNN layer's units) are never seen.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["capture_outputs", "capture_shapes"]


@contextlib.contextmanager
def capture_outputs(model: nn.Module, names: Iterable[str],
                    record: Callable[[str, Any], None] | None = None) -> Iterator[dict[str, Any]]:
    """Forward hooks on the modules ``names`` of ``model`` while the block runs; they are
    removed when it ends, however it ends.

    Without ``record`` the yielded dict holds each module's latest output, in the order
    the modules first ran (a module that never ran is absent). With it, every output is
    handed to ``record(name, output)`` instead, as the module returns it: before a later
    in-place operation can change it, and an exception ``record`` raises ends the forward
    pass there. An unknown name is refused before any hook is placed."""
    outputs: dict[str, Any] = {}
    modules = [(name, _submodule(model, name)) for name in names]
    keep = record if record is not None else outputs.__setitem__

    def hook(name: str):
        return lambda _module, _inputs, out: keep(name, out)

    handles = [module.register_forward_hook(hook(name)) for name, module in modules]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def capture_shapes(model: nn.Module,
                   names: Iterable[str]) -> Iterator[dict[str, tuple[int, ...] | None]]:
    """The shape of each named module's first output while the block runs (None for an
    output that is not one tensor), in the order the modules first ran."""
    shapes: dict[str, tuple[int, ...] | None] = {}

    def first_shape(name: str, out: Any) -> None:
        shapes.setdefault(name, tuple(out.shape) if isinstance(out, torch.Tensor) else None)

    with capture_outputs(model, names, first_shape):
        yield shapes


def _submodule(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ConfigError(f"no module {name!r} in {type(model).__name__}") from None
