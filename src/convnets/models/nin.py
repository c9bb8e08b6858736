"""Network in Network: Lin, Chen, Yan, "Network In Network", ICLR 2014.

An mlpconv layer (Section 3.1) is a convolution followed by two 1x1 convolutions (the
"micro network", a per-pixel MLP shared across positions), each with a ReLU. The network
stacks mlpconv layers separated by pooling and ends with global average pooling over the
maps of the last mlpconv layer, one map per class (Section 3.2): no fully connected layer.

Layouts follow the authors' released Caffe definitions (the paper gives none in full):
``nin_cifar`` is the three-mlpconv CIFAR-10 model (192-160-96 / 192-192-192 / 192-192-10,
0.97M parameters), ``nin`` the four-mlpconv ImageNet model of the Caffe Model Zoo
(96-96-96 / 256-256-256 / 384-384-384 / 1024-1024-1000, 7.6M parameters). As there, every
convolution, the class maps included, is followed by a ReLU, and pools round up.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import ConvNet
from .registry import CIFAR10, IMAGENET, register_model

__all__ = ["NiN"]

# One mlpconv stage: (kernel, stride, padding, (c1, c2, c3), pooling after it: "max",
# "avg" or None, dropout after the pooling).
Stage = tuple[int, int, int, tuple[int, int, int], str | None, bool]

_CIFAR: tuple[Stage, ...] = (
    (5, 1, 2, (192, 160, 96), "max", True),
    (5, 1, 2, (192, 192, 192), "avg", True),
    (3, 1, 1, (192, 192, 10), None, False),
)
_IMAGENET: tuple[Stage, ...] = (
    (11, 4, 0, (96, 96, 96), "max", False),
    (5, 1, 2, (256, 256, 256), "max", False),
    (3, 1, 1, (384, 384, 384), "max", True),
    (3, 1, 1, (1024, 1024, 1000), None, False),
)


# --- blocks ----------------------------------------------------------------------------

def mlpconv(in_channels: int, kernel: int, stride: int, padding: int,
            widths: tuple[int, ...]) -> list[nn.Module]:
    """A k x k convolution, then 1x1 convolutions: Eq. 2's cascaded cross-channel pooling."""
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        k, s, p = (kernel, stride, padding) if i == 0 else (1, 1, 0)
        layers += [nn.Conv2d(in_channels, width, k, s, p), nn.ReLU(inplace=True)]
        in_channels = width
    return layers


# --- model -----------------------------------------------------------------------------

class NiN(ConvNet):
    """mlpconv stages; the last 1x1 convolution of the last stage (``classifier``) makes one
    confidence map per class, which global average pooling turns into the logits."""

    classifier_path = "classifier"

    def __init__(self, *, stages: tuple[Stage, ...], num_classes: int, in_channels: int = 3,
                 dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i, (kernel, stride, padding, widths, pool, drop) in enumerate(stages):
            last = i == len(stages) - 1
            # The class maps are built below, so that their width follows num_classes.
            layers += mlpconv(channels, kernel, stride, padding, widths[:-1] if last else widths)
            channels = widths[-2] if last else widths[-1]
            if pool == "max":
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            elif pool == "avg":
                layers.append(nn.AvgPool2d(3, 2, ceil_mode=True))
            if drop:
                layers.append(nn.Dropout(dropout))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # The released models draw weights from small Gaussians tuned per layer; He
                # fan-out is the zoo's uniform choice and trains the ReLU stack from scratch.
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:  # the pooled input of the class maps, for feature transfer
            return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        maps = torch.relu(self.classifier(x))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(maps, 1), 1)

    @property
    def num_features(self) -> int:
        return self.classifier.in_channels

    @property
    def num_classes(self) -> int:
        return self.classifier.out_channels

    def reset_classifier(self, num_classes: int) -> None:
        old = self.classifier
        self.classifier = nn.Conv2d(old.in_channels, num_classes, 1, device=old.weight.device,
                                    dtype=old.weight.dtype)
        nn.init.kaiming_normal_(self.classifier.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.classifier.bias)


# --- builders --------------------------------------------------------------------------

_PAPER = "Lin, Chen, Yan, Network In Network"


@register_model(family="nin", paper=_PAPER, year=2013, data=CIFAR10, top1_err=8.81,
                params=966_986, figures="Table 2, with augmentation",
                notes="10.41% CIFAR-10 test error without augmentation; Table 3: 35.68% on "
                      "CIFAR-100")
def nin_cifar(*, num_classes: int = 10, dropout: float = 0.5) -> NiN:
    return NiN(stages=_CIFAR, num_classes=num_classes, dropout=dropout)


@register_model(family="nin", paper=_PAPER, year=2013, data=IMAGENET, top1_err=43.3,
                top5_err=20.5, params=7_595_176,
                figures="the authors' released model, centre crop, from the Caffe Model Zoo "
                        "comparison (56.7/79.5 accuracy)",
                notes="no ImageNet figure in the paper")
def nin(*, num_classes: int = 1000, dropout: float = 0.5) -> NiN:
    return NiN(stages=_IMAGENET, num_classes=num_classes, dropout=dropout)
