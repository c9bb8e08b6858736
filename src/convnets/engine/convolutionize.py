"""Fully connected layers as convolutions (VGG, Simonyan & Zisserman 2015, Sec. 3.2), so
that a network applies to images larger than its input and gives a map of class scores:
what dense and fully convolutional evaluation (VGG, ResNet Sec. 3.4) and DPN's mean-max
pooling need."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.layers import ConvNet

__all__ = ["ConvolutionizedNet", "convolutionize", "dense_net"]


# --- convolutionize ----------------------------------------------------------------------

_ELEMENTWISE = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.ReLU, nn.ReLU6,
                nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Tanh, nn.Sigmoid,
                nn.Identity)


class _PoolAtLeast(nn.Module):
    """The adaptive average pool of a VGG-style head, kept only where it changes
    nothing for dense evaluation: maps smaller than the classifier's K x K window are
    pooled (stretched) to K, exactly as in the original network; larger maps pass
    unchanged, so the K x K convolution slides over them (VGG Sec. 3.2)."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        target = (max(h, self.size[0]), max(w, self.size[1]))
        return x if target == (h, w) else F.adaptive_avg_pool2d(x, target)


class _GlobalPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class ConvolutionizedNet(nn.Module):
    """``head(pool(features(x)))``: a class-score map ``(B, classes, h, w)``. Shares its
    parameters with the network it was made from (no copy), so it is meant for evaluation."""

    def __init__(self, features: nn.Module, pool: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features, self.pool, self.head = features, pool, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class _Features(nn.Module):
    def __init__(self, model: ConvNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def _linear_as_conv(fc: nn.Linear, in_channels: int, k: tuple[int, int]) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, fc.out_features, k, bias=fc.bias is not None,
                     device=fc.weight.device, dtype=fc.weight.dtype)
    # torch.flatten of a (C, kh, kw) map is channel-major, the layout of a conv weight.
    conv.weight = nn.Parameter(fc.weight.detach().view(fc.out_features, in_channels, *k))
    if fc.bias is not None:
        conv.bias = nn.Parameter(fc.bias.detach())
    return conv


def _out_channels(features: nn.Module) -> int | None:
    channels = None
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            channels = m.out_channels
        elif isinstance(m, nn.BatchNorm2d):
            channels = m.num_features
    return channels


def _convolutionize_sequential(model: nn.Module) -> ConvolutionizedNet:
    """torchvision's VGG / AlexNet layout: features -> avgpool -> flatten -> classifier."""
    name = type(model).__name__
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    first = linears[0]
    pool = getattr(model, "avgpool", None)
    if isinstance(pool, nn.AdaptiveAvgPool2d):
        size = pool.output_size if isinstance(pool.output_size, tuple) else (pool.output_size,) * 2
        if None in size:
            raise ConfigError(f"convolutionize: {name}.avgpool keeps a free dimension {size}")
        k = (int(size[0]), int(size[1]))
        if first.in_features % (k[0] * k[1]):
            raise ConfigError(f"convolutionize: {name}: {first.in_features} inputs of the first "
                             f"linear layer do not fit a {k[0]}x{k[1]} map")
        channels = first.in_features // (k[0] * k[1])
    elif pool is None or isinstance(pool, nn.Identity):
        channels = _out_channels(model.features)
        side = math.isqrt(first.in_features // channels) if channels else 0
        if not channels or channels * side * side != first.in_features:
            raise ConfigError(f"convolutionize: {name}: cannot infer the square map feeding "
                             f"the first linear layer ({first.in_features} inputs)")
        k = (side, side)
    else:
        raise ConfigError(f"convolutionize: {name}.avgpool is {type(pool).__name__}, "
                         "expected AdaptiveAvgPool2d or none")
    nonlinear_head = len(linears) > 1
    head: list[nn.Module] = []
    seen_linear = False
    for m in model.classifier:
        if isinstance(m, nn.Linear):
            head.append(_linear_as_conv(m, channels if not seen_linear else m.in_features,
                                        k if not seen_linear else (1, 1)))
            seen_linear = True
        elif isinstance(m, nn.Flatten) and not seen_linear:
            continue
        elif isinstance(m, _ELEMENTWISE):
            head.append(m)
        else:
            raise ConfigError(f"convolutionize: {name}.classifier holds a {type(m).__name__}, "
                             "which has no convolutional equivalent here")
    if k == (1, 1) and nonlinear_head:
        # A global-pooling net with a multi-layer head: non-linearities between the layers
        # do not commute with averaging, so pooling stays global (a 1x1 score map).
        pooling: nn.Module = _GlobalPool()
    else:
        pooling = _PoolAtLeast(k)
    return ConvolutionizedNet(model.features, pooling, nn.Sequential(*head))


def convolutionize(model: nn.Module) -> ConvolutionizedNet:
    """The network with its fully connected layers turned into equivalent convolutions.

    The result maps an image ``(B, C, H, W)`` to a class-score map ``(B, classes, h, w)``
    and shares its parameters with ``model``. At the original input size the average of
    the map over positions equals the original logits (for VGG and AlexNet the map is
    1 x 1 there); on a larger image it gives one score vector per window position.

    - torchvision-style VGG/AlexNet (``features``, ``avgpool``, ``classifier``
      Sequential): the first linear layer, after flattening a C x K x K map, becomes a
      K x K convolution, later ones 1 x 1 convolutions (VGG Sec. 3.2); dropout and
      activations are kept (dropout is inert in eval mode).
    - convnets ``ConvNet`` models with the standard head (global average pool, then the
      classifier): the classifier becomes a 1 x 1 convolution applied before pooling,
      which commutes with the (linear) average.
    """
    features = getattr(model, "features", None)
    classifier = getattr(model, "classifier", None)
    if (isinstance(features, nn.Module) and isinstance(classifier, nn.Sequential)
            and any(isinstance(m, nn.Linear) for m in classifier)):
        return _convolutionize_sequential(model)
    if isinstance(model, ConvNet):
        if type(model).forward_head is not ConvNet.forward_head:
            raise ConfigError(f"convolutionize: {type(model).__name__} has its own forward_head; "
                             "only the standard global-pool + linear head is supported")
        fc = model.get_classifier()
        if not isinstance(fc, nn.Linear):
            raise ConfigError(f"convolutionize: {type(model).__name__}'s classifier is not Linear")
        return ConvolutionizedNet(_Features(model), nn.Identity(),
                                  _linear_as_conv(fc, fc.in_features, (1, 1)))
    raise ConfigError(f"convolutionize: {type(model).__name__} is neither a VGG/AlexNet-style "
                     "network (features, avgpool, classifier) nor a convnets ConvNet")


def dense_net(net: nn.Module) -> nn.Module:
    """The convolutionized network; for a ConvNet whose head cannot be converted, the net
    itself on the whole image (its global pooling already averages over positions)."""
    try:
        return convolutionize(net)
    except ConfigError:
        if isinstance(net, ConvNet):
            return _AsScoreMap(net)
        raise


class _AsScoreMap(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, :, None, None]
