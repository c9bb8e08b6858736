"""What a network has learned to look for: its first layer's filters, and the feature
maps a layer computes for an image (Zeiler & Fergus 2014, Figs. 2 and 6; AlexNet,
Krizhevsky et al. 2012, Fig. 3)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError
from .common import as_batch, capture, default_layer

__all__ = ["Filters", "Activations", "first_layer_filters", "layer_activations"]


@dataclass
class Filters:
    layer: str
    weights: np.ndarray  # (out_channels, in_channels, kh, kw)


@dataclass
class Activations:
    layer: str
    maps: np.ndarray    # (C, H, W): the layer's output for the image
    probs: np.ndarray   # (num_classes,): the network's class probabilities for the image


def first_layer_filters(model: nn.Module) -> Filters:
    """The weights of the first convolution: the only filters that act on pixels, so the
    only ones that can be shown as they are."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return Filters(name, module.weight.detach().float().cpu().numpy())
    raise ConfigError(f"{type(model).__name__} has no convolution")


@torch.no_grad()
def layer_activations(model: nn.Module, x: torch.Tensor, layer: str | None = None) -> Activations:
    """The feature maps of ``layer`` (default: the deepest top-level feature map) for one
    normalised image ``x``, with the class probabilities of the same forward pass."""
    x = as_batch(x)
    layer = layer or default_layer(model, x)
    with capture(model, layer) as cap:
        logits = model(x)
    maps = cap.output[0].float().cpu().numpy()
    return Activations(layer, maps, torch.softmax(logits.float(), 1)[0].cpu().numpy())
