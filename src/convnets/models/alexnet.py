"""AlexNet and ZFNet: five convolutions, three fully connected layers.

- ``alexnet``: torchvision's single-tower variant (64-192-384-256-256 channels, no local
  response normalisation; Krizhevsky, "One weird trick...", 2014), same key names, so
  torchvision's checkpoints load directly.
- ``alexnet_lrn``: the network of Krizhevsky, Sutskever, Hinton, "ImageNet Classification
  with Deep Convolutional Neural Networks", NIPS 2012, Section 3 and Figure 2: 96-256-384-
  384-256 channels, local response normalisation after the first two ReLUs, overlapping
  3x3/2 max pooling. Conv2, conv4 and conv5 read only the maps of their own GPU in the paper,
  i.e. two groups; that split is kept (``groups=2``, the default), which gives 60,965,224
  parameters ("60 million", Section 4); ``groups=1`` makes every layer dense (62,378,344).
- ``zfnet``: Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV
  2014, Figure 3: a 7x7/2 first layer, a 5x5/2 second one, 3x3/2 pools, contrast
  normalisation after the first two pools, dense layers 3-5 (one GPU): 62,357,608 parameters.

All three share one class; the layouts are data.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

from .layers import ConvNet
from .registry import IMAGENET, TORCHVISION_WEIGHTS, register_model

__all__ = ["AlexNet"]

# A layout is a sequence of ops: ("conv", out, kernel, stride, padding, groups) adds a
# convolution and its ReLU, "lrn" a local response normalisation, "pool" a 3x3/2 max pool.
Layout = tuple[tuple[str, int, int, int, int, int] | str, ...]

_TORCHVISION: Layout = (
    ("conv", 64, 11, 4, 2, 1), "pool", ("conv", 192, 5, 1, 2, 1), "pool",
    ("conv", 384, 3, 1, 1, 1), ("conv", 256, 3, 1, 1, 1), ("conv", 256, 3, 1, 1, 1), "pool",
)


def _paper_layout(groups: int) -> Layout:
    """Sections 3.3-3.5: normalisation follows the ReLU of layers 1 and 2, pooling follows
    it; conv2, conv4 and conv5 see only their own GPU's maps (Figure 2) when ``groups=2``.
    Padding 2 on a 224 input gives the paper's 55x55 first maps."""
    g = groups
    return (
        ("conv", 96, 11, 4, 2, 1), "lrn", "pool", ("conv", 256, 5, 1, 2, g), "lrn", "pool",
        ("conv", 384, 3, 1, 1, 1), ("conv", 384, 3, 1, 1, g), ("conv", 256, 3, 1, 1, g), "pool",
    )

# Figure 3: 224 -> 110 (conv1) -> 55 (pool) -> 26 (conv2) -> 13 (pool) -> 13 -> 6 (pool);
# the pools round up (as Caffe's), which the figure's 55 and 13 require.
_ZF: Layout = (
    ("conv", 96, 7, 2, 1, 1), "pool", "lrn", ("conv", 256, 5, 2, 0, 1), "pool", "lrn",
    ("conv", 384, 3, 1, 1, 1), ("conv", 384, 3, 1, 1, 1), ("conv", 256, 3, 1, 1, 1), "pool",
)


# --- helpers ---------------------------------------------------------------------------

def _make_features(layout: Layout, in_channels: int, ceil_pool: bool) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    channels = in_channels
    for op in layout:
        if op == "pool":
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=ceil_pool))
        elif op == "lrn":
            # Section 3.3: b = a / (k + alpha * sum a^2)^beta over n = 5 adjacent maps, k = 2,
            # alpha = 1e-4, beta = 0.75. PyTorch divides alpha by n, hence alpha * n here.
            layers.append(nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0))
        else:
            _, out, kernel, stride, padding, groups = op
            layers += [nn.Conv2d(channels, out, kernel, stride, padding, groups=groups),
                       nn.ReLU(inplace=True)]
            channels = out
    return nn.Sequential(*layers), channels


def _init_gaussian(model: "AlexNet", one_bias: set[int]) -> None:
    """Section 5 of the AlexNet paper: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and
    the hidden fully connected layers (to feed the ReLUs positive inputs early), else 0.
    ZFNet (Section 3) uses the same scale with all biases 0 (``one_bias`` empty)."""
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    for i, m in enumerate(convs + linears):
        nn.init.normal_(m.weight, 0.0, 0.01)
        nn.init.constant_(m.bias, 1.0 if i in one_bias else 0.0)


# --- model -----------------------------------------------------------------------------

class AlexNet(ConvNet):
    """Convolutional features, 6x6 adaptive average pooling (torchvision's, so that smaller
    inputs still run), then dropout-FC-ReLU, dropout-FC-ReLU, FC (Section 4.2: dropout 0.5
    in the first two fully connected layers)."""

    classifier_path = "classifier.6"

    def __init__(self, *, layout: Layout = _TORCHVISION, ceil_pool: bool = False,
                 num_classes: int = 1000, in_channels: int = 3, hidden: int = 4096,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.features, channels = _make_features(layout, in_channels, ceil_pool)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(channels * 36, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[:-1](torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.classifier[-1](x)


# --- builders --------------------------------------------------------------------------

_KRIZHEVSKY = ("Krizhevsky, Sutskever, Hinton, ImageNet Classification with Deep "
               "Convolutional Neural Networks")


@register_model(family="alexnet", paper="Krizhevsky, One weird trick for parallelizing "
                "convolutional neural networks", year=2014, data=IMAGENET, top1_err=43.478,
                top5_err=20.934, params=61_100_840, figures=TORCHVISION_WEIGHTS,
                torchvision="alexnet", notes="torchvision's single-tower AlexNet",
                protocol="alexnet-10crop")
def alexnet(*, num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    # torchvision keeps PyTorch's default (Kaiming-uniform) initialisation for AlexNet.
    return AlexNet(layout=_TORCHVISION, num_classes=num_classes, dropout=dropout)


@register_model(family="alexnet", paper=_KRIZHEVSKY, year=2012, data=IMAGENET,
                params=60_965_224, figures="params counted layer by layer from Figure 2",
                notes="Table 2: 1 CNN 40.7 top-1 / 18.2 top-5 on ILSVRC-2012 val, averaged over "
                      "10 crops (Section 4.1), so no single-crop figure; two-GPU groups kept",
                protocol="alexnet-10crop")
def alexnet_lrn(*, num_classes: int = 1000, groups: int = 2, dropout: float = 0.5) -> AlexNet:
    if groups not in (1, 2):
        raise ConfigError(f"groups must be 1 (dense) or 2 (the paper's two GPUs), got {groups}")
    model = AlexNet(layout=_paper_layout(groups), num_classes=num_classes, dropout=dropout)
    _init_gaussian(model, one_bias={1, 3, 4, 5, 6})
    return model


@register_model(family="alexnet", paper="Zeiler, Fergus, Visualizing and Understanding "
                "Convolutional Networks", year=2014, data=IMAGENET, params=62_357_608,
                figures="params counted layer by layer from Fig. 3",
                notes="Table 2: one Fig. 3 convnet, 38.4 top-1 / 16.5 top-5 ILSVRC-2012 val "
                      "error, with the paper's multi-view test protocol (not single-crop)",
                protocol="alexnet-10crop")
def zfnet(*, num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    model = AlexNet(layout=_ZF, ceil_pool=True, num_classes=num_classes, dropout=dropout)
    _init_gaussian(model, one_bias=set())
    return model
