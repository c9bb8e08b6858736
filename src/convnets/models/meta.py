"""Models on PyTorch's ``meta`` device: shapes propagate and parameters are counted, but
nothing is computed or allocated, so even the largest network is built and run at once.
"""
from __future__ import annotations

import torch
from torch import nn

from ..core import first_line, format_input_size
from ..errors import ConfigError
from .registry import create_model

__all__ = ["meta_model", "forward_zeros", "check_input_size"]


def meta_model(name: str, **options) -> nn.Module:
    """The model built on the ``meta`` device: shapes and parameter counts, no memory."""
    with torch.device("meta"):
        return create_model(name, **options).eval()


def forward_zeros(model: nn.Module, input_size: tuple[int, int, int], device: str | torch.device) -> None:
    """One forward pass of a blank image of ``input_size`` on ``device``; an input the
    model cannot take is a ConfigError of ``input_size``."""
    x = torch.zeros(1, *input_size, device=device)
    try:
        with torch.no_grad():
            model(x)
    except RuntimeError as err:  # e.g. an input too small for the network's pooling
        raise ConfigError.of("input_size", f"{format_input_size(input_size)} does not fit "
                             f"the model: {first_line(err)}") from None


def check_input_size(name: str, input_size: tuple[int, int, int], **options) -> None:
    """Refuse an input the model cannot take (too small for its pooling, a channel count
    its first layer does not read) before any data is loaded: one forward pass on the
    ``meta`` device, where nothing is computed."""
    forward_zeros(meta_model(name, **options), tuple(input_size), "meta")
