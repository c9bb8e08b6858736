"""VGG: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015.

Configurations A, B, D, E of Table 1 (VGG-11/13/16/19): stacks of 3x3 convolutions with
padding 1, 2x2/2 max pooling after each stage, and three fully connected layers. The ``_bn``
variants insert batch norm after every convolution (not in the paper; torchvision's
variants). Key names follow torchvision (``features.N``, ``classifier.N``), so its
checkpoints load directly; parameter counts equal torchvision's.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import ConvNet
from .registry import IMAGENET, TORCHVISION_WEIGHTS, register_model

__all__ = ["VGG"]

# Table 1: output channels of each 3x3 convolution, "M" a 2x2/2 max pool.
_CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


# --- helpers ---------------------------------------------------------------------------

def _make_features(cfg: list[int | str], batch_norm: bool, in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(channels, int(v), 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(v)))
        layers.append(nn.ReLU(inplace=True))
        channels = int(v)
    return nn.Sequential(*layers)


def _init_weights(model: nn.Module) -> None:
    # torchvision's scheme: He normal (fan-out) convolutions, zero biases, unit BN scales,
    # N(0, 0.01) linear weights. The paper (Section 3.1) trained A from random N(0, 0.01) and
    # initialised deeper nets from it, noting afterwards that Glorot's init works without it.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


# --- model -----------------------------------------------------------------------------

class VGG(ConvNet):
    """Convolutional stages, 7x7 adaptive average pooling (identity at 224x224 inputs, so
    smaller inputs still run), FC-4096, FC-4096, FC-classes with dropout 0.5 (Section 3.1)."""

    classifier_path = "classifier.6"

    def __init__(self, *, cfg: str, batch_norm: bool = False, num_classes: int = 1000,
                 in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = _make_features(_CFGS[cfg], batch_norm, in_channels)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[:-1](torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.classifier[-1](x)


# --- builders --------------------------------------------------------------------------

def _vgg(cfg: str, batch_norm: bool, num_classes: int, dropout: float) -> VGG:
    return VGG(cfg=cfg, batch_norm=batch_norm, num_classes=num_classes, dropout=dropout)


_PAPER = "Simonyan, Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition"


@register_model(family="vgg", paper=_PAPER, year=2014, data=IMAGENET,
                top1_err=30.980, top5_err=11.372, params=132_863_336,
                figures=TORCHVISION_WEIGHTS, torchvision="vgg11", timm="vgg11",
                notes="configuration A of Table 1",
                protocol="vgg-multicrop+dense")
def vgg11(*, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    return _vgg("A", False, num_classes, dropout)


@register_model(family="vgg", paper=_PAPER, year=2014, data=IMAGENET,
                top1_err=29.630, top5_err=10.190, params=132_868_840,
                figures=TORCHVISION_WEIGHTS, torchvision="vgg11_bn",
                notes="configuration A of Table 1",
                protocol="vgg-multicrop+dense")
def vgg11_bn(*, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    return _vgg("A", True, num_classes, dropout)


@register_model(family="vgg", paper=_PAPER, year=2014, data=IMAGENET,
                top1_err=30.072, top5_err=10.754, params=133_047_848,
                figures=TORCHVISION_WEIGHTS, torchvision="vgg13", timm="vgg13",
                notes="configuration B of Table 1",
                protocol="vgg-multicrop+dense")
def vgg13(*, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    return _vgg("B", False, num_classes, dropout)


@register_model(family="vgg", paper=_PAPER, year=2014, data=IMAGENET,
                top1_err=28.414, top5_err=9.626, params=133_053_736,
                figures=TORCHVISION_WEIGHTS, torchvision="vgg13_bn",
                notes="configuration B of Table 1",
                protocol="vgg-multicrop+dense")
def vgg13_bn(*, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    return _vgg("B", True, num_classes, dropout)


@register_model(family="vgg", paper=_PAPER, year=2014, data=IMAGENET,
                top1_err=28.408, top5_err=9.618, params=138_357_544,
                figures=TORCHVISION_WEIGHTS, torchvision="vgg16", timm="vgg16",
                notes="configuration D of Table 1",
                protocol="vgg-multicrop+dense")
def vgg16(*, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    return _vgg("D", False, num_classes, dropout)


@register_model(family="vgg", paper=_PAPER, year=2014, data=IMAGENET,
                top1_err=26.640, top5_err=8.484, params=138_365_992,
                figures=TORCHVISION_WEIGHTS, torchvision="vgg16_bn",
                notes="configuration D of Table 1",
                protocol="vgg-multicrop+dense")
def vgg16_bn(*, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    return _vgg("D", True, num_classes, dropout)


@register_model(family="vgg", paper=_PAPER, year=2014, data=IMAGENET,
                top1_err=27.624, top5_err=9.124, params=143_667_240,
                figures=TORCHVISION_WEIGHTS, torchvision="vgg19", timm="vgg19",
                notes="configuration E of Table 1",
                protocol="vgg-multicrop+dense")
def vgg19(*, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    return _vgg("E", False, num_classes, dropout)


@register_model(family="vgg", paper=_PAPER, year=2014, data=IMAGENET,
                top1_err=25.782, top5_err=8.158, params=143_678_248,
                figures=TORCHVISION_WEIGHTS, torchvision="vgg19_bn",
                notes="configuration E of Table 1",
                protocol="vgg-multicrop+dense")
def vgg19_bn(*, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    return _vgg("E", True, num_classes, dropout)
