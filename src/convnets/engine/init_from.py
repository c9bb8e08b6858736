"""``--init-from RUN_OR_WEIGHTS``: start a run from saved weights, copying every tensor
that matches the model's in name and shape (Simonyan & Zisserman 2015, Sec. 3.1: the
deeper VGG configurations start from net A's layers, and S = 384 is fine-tuned from
S = 256) and reporting the rest."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["InitReport", "init_from"]


@dataclass(frozen=True)
class InitReport:
    """What was copied, and why each of the model's other tensors was not."""

    source: str
    copied: list[str]
    mismatched: list[str]       # in both, of another shape: "name (source shape -> model shape)"
    missing: list[str]          # the model's tensors the source lacks
    unused: list[str]           # the source's tensors the model lacks

    def lines(self) -> list[str]:
        total = len(self.copied) + len(self.mismatched) + len(self.missing)
        out = [f"init-from {self.source}: copied {len(self.copied)} of the model's {total} tensors"]
        for label, names in (("other shape", self.mismatched), ("not in the source", self.missing),
                             ("not in the model", self.unused)):
            if names:
                more = f" and {len(names) - 5} more" if len(names) > 5 else ""
                out.append(f"  {label}: {', '.join(names[:5])}{more}")
        return out


def _source_weights(source: str) -> tuple[str, dict[str, torch.Tensor]]:
    """(file, tensors) of a run directory's last checkpoint or of a weights file."""
    from ..models.registry import read_state_dict
    from . import checkpoint as ckpt

    path = source
    if os.path.isdir(source):
        path = os.path.join(ckpt.latest_checkpoint(source)["dir"], "model.safetensors")
    return path, read_state_dict(path)


def init_from(model: nn.Module, source: str) -> InitReport:
    """Copy the tensors of ``source`` that match ``model``'s in name and shape."""
    path, weights = _source_weights(source)
    own = model.state_dict()
    copied, mismatched = [], []
    for name, tensor in own.items():
        if name not in weights:
            continue
        if weights[name].shape != tensor.shape:
            shapes = " -> ".join("x".join(map(str, t.shape)) for t in (weights[name], tensor))
            mismatched.append(f"{name} ({shapes})")
            continue
        with torch.no_grad():
            tensor.copy_(weights[name])
        copied.append(name)
    if not copied:
        raise ConfigError.of("init_from", f"{path} shares no tensor of matching name and shape "
                             "with the model: weights of another architecture?")
    return InitReport(source=path, copied=copied, mismatched=mismatched,
                      missing=[k for k in own if k not in weights],
                      unused=[k for k in weights if k not in own])
