"""Parameter and FLOP counts, and per-layer summaries.

FLOPs are counted by PyTorch's ``torch.utils.flop_counter`` with its convention:
one multiply-add is 2 FLOPs. torchvision and timm publish multiply-adds under the
name "GFLOPS", so their figures are half of ours for the same network. Counting runs
on the ``meta`` device: shapes propagate, nothing is computed or allocated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..models.hooks import capture_shapes
from ..models.meta import check_input_size, forward_zeros, meta_model
from ..models.registry import model_info

__all__ = ["LayerRow", "count_params", "count_flops", "meta_model", "check_input_size",
           "layer_summary", "saved_tensor_bytes"]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _run(model: nn.Module, input_size: tuple[int, int, int],
         device: str | torch.device) -> FlopCounterMode:
    counter = FlopCounterMode(display=False)
    with counter:
        forward_zeros(model, input_size, device)
    return counter


def count_flops(model_or_name: nn.Module | str, input_size: tuple[int, int, int] | None = None) -> int:
    """FLOPs (2 x multiply-adds) of one forward pass of one image."""
    if isinstance(model_or_name, str):
        input_size = input_size or model_info(model_or_name).input_size
        model, device = meta_model(model_or_name), "meta"
    else:
        model = model_or_name
        device = next(model.parameters()).device
    return _run(model, input_size, device).get_total_flops()


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int


def _select_rows(model: nn.Module, depth: int, called: set[str]) -> list[tuple[str, nn.Module]]:
    """Modules at ``depth`` (counted from the model), or above it where a module is a leaf
    or runs its children's weights itself (e.g. a GUNN layer updating segment by segment,
    whose stacked units are never called as wholes). Module lists are looked through."""
    rows: list[tuple[str, nn.Module]] = []

    def descendants_called(prefix: str) -> bool:
        return any(key.startswith(prefix + ".") for key in called)

    def visit(prefix: str, module: nn.Module, level: int) -> None:
        for child_name, child in module.named_children():
            name = f"{prefix}.{child_name}" if prefix else child_name
            if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
                visit(name, child, level)
            elif level + 1 >= depth or not descendants_called(name):
                rows.append((name, child))
            else:
                visit(name, child, level + 1)

    visit("", model, 0)
    return rows


def layer_summary(name: str, input_size: tuple[int, int, int] | None = None, depth: int = 3,
                  **options) -> tuple[list[LayerRow], int, int]:
    """Per-layer output shape, parameters and multiply-adds; returns (rows, params, macs)."""
    input_size = input_size or model_info(name).input_size
    model = meta_model(name, **options)
    with capture_shapes(model, [key for key, _ in model.named_modules() if key]) as shapes:
        counter = _run(model, input_size, "meta")
    root = type(model).__name__
    flops = counter.get_flop_counts()
    rows = [LayerRow(key, type(module).__name__, shapes.get(key), count_params(module),
                     sum(flops.get(f"{root}.{key}", {}).values()) // 2)
            for key, module in _select_rows(model, depth, set(shapes))]
    return rows, count_params(model), counter.get_total_flops() // 2


def saved_tensor_bytes(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes that autograd keeps for the backward pass while ``fn`` runs, and its result.

    Counts each distinct storage once (views of one buffer share it), as the memory they
    really hold; parameters saved by the graph are included.
    """
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(storages.values()), out
