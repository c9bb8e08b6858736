"""Densely connected networks (DenseNet, DenseNet-BC).

Huang, Liu, van der Maaten, Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017. Pleiss, Chen, Huang, Li, van der Maaten, Weinberger, "Memory-Efficient
Implementation of DenseNets", 2017.

Layer l of a dense block reads the concatenation of every earlier feature map in the
block (Eq. 2) and adds ``growth_rate`` new channels. The "B" bottleneck (BN-ReLU-1x1
conv to 4k channels before the 3x3 conv) and the "C" compression (transitions keep half
the channels) are on in every model here. Key names are torchvision's, so its
checkpoints load directly, including old ones with ``norm.1``-style names.
"""
from __future__ import annotations

import re
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from torch.utils.checkpoint import checkpoint

from .batchnorm import batch_norm_rows
from .layers import ConvNet, init_he_fan_out
from .registry import CIFAR10, IMAGENET, TORCHVISION_WEIGHTS, register_model

__all__ = ["DenseNet", "DenseLayer", "DenseBlock", "Transition"]


# --- blocks ----------------------------------------------------------------------------

class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (bn_size*k), BN-ReLU-3x3 conv (k), optional dropout (Sec. 3,
    "Bottleneck layers").

    With ``memory_efficient`` the concatenation, first BN, ReLU and 1x1 conv are
    recomputed in the backward pass instead of stored: their outputs are what makes a
    naive DenseNet's memory quadratic in depth (Pleiss et al. Sec. 3). The recomputation
    normalises with the same batch statistics, synchronised over processes when the layer
    is (``batchnorm.SyncBatchNorm2d``), but does not update the running ones a second time.
    """

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, drop_rate: float,
                 memory_efficient: bool) -> None:
        super().__init__()
        width = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.memory_efficient = memory_efficient

    def _bottleneck(self, features: tuple[torch.Tensor, ...], update_stats: bool) -> torch.Tensor:
        x = torch.cat(features, 1)
        if self.norm1.training and not update_stats:
            # Recomputation: the same batch statistics, with the running-statistics update
            # sent to throw-away copies (the same operation, so checkpointing sees the
            # same saved tensors).
            x = batch_norm_rows(self.norm1, x, update_stats=False)
        else:
            x = self.norm1(x)
        return self.conv1(F.relu(x))

    def _checkpointed(self, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        calls = []

        def run(*inputs: torch.Tensor) -> torch.Tensor:
            calls.append(None)  # only the first (forward) call updates running statistics
            return self._bottleneck(inputs, update_stats=len(calls) == 1)

        return checkpoint(run, *features, use_reentrant=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if isinstance(features, torch.Tensor):
            features = [features]
        if (self.memory_efficient and torch.is_grad_enabled()
                and any(t.requires_grad for t in features)):
            x = self._checkpointed(tuple(features))
        else:
            x = self._bottleneck(tuple(features), update_stats=True)
        x = self.conv2(self.relu2(self.norm2(x)))
        return F.dropout(x, self.drop_rate, self.training) if self.drop_rate else x


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers; returns the input and all new maps concatenated."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int,
                 drop_rate: float, memory_efficient: bool) -> None:
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(in_channels + i * growth_rate, growth_rate,
                                                    bn_size, drop_rate, memory_efficient)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv-2x2 average pool between blocks (Sec. 3, "Pooling layers")."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(OrderedDict(
            norm=nn.BatchNorm2d(in_channels), relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
            pool=nn.AvgPool2d(2, 2),
        ))


# --- model -----------------------------------------------------------------------------

# torchvision's checkpoints before 0.3 named the layer parts "norm.1", "conv.2", ...
_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12])\.(weight|bias|running_mean|running_var)$")


class DenseNet(ConvNet):
    """A DenseNet: stem, dense blocks joined by compressing transitions, BN, pool, linear.

    ``stem="imagenet"``: 7x7/2 conv, BN, ReLU, 3x3/2 max pool (Table 1);
    ``stem="cifar"``: a single 3x3 conv with ``num_init_features`` (2k for DenseNet-BC,
    Sec. 4.2). Each transition keeps ``compression`` of the channels (theta, Sec. 3).
    """

    classifier_path = "classifier"

    def __init__(self, *, growth_rate: int = 32, block_config: tuple[int, ...] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, compression: float = 0.5,
                 stem: str = "imagenet", drop_rate: float = 0.0, memory_efficient: bool = False,
                 num_classes: int = 1000) -> None:
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ConfigError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if not 0.0 < compression <= 1.0:
            raise ConfigError(f"compression must be in (0, 1], got {compression}")
        if stem == "imagenet":
            parts = OrderedDict(
                conv0=nn.Conv2d(3, num_init_features, 7, 2, 3, bias=False),
                norm0=nn.BatchNorm2d(num_init_features), relu0=nn.ReLU(inplace=True),
                pool0=nn.MaxPool2d(3, 2, 1))
        else:
            parts = OrderedDict(conv0=nn.Conv2d(3, num_init_features, 3, 1, 1, bias=False))
        self.features = nn.Sequential(parts)
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(
                num_layers, channels, growth_rate, bn_size, drop_rate, memory_efficient))
            channels += num_layers * growth_rate
            if i < len(block_config) - 1:
                out = int(channels * compression)
                self.features.add_module(f"transition{i + 1}", Transition(channels, out))
                channels = out
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.classifier = nn.Linear(channels, num_classes)
        init_he_fan_out(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.features(x))

    def remap_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accept torchvision's old checkpoints: ``denselayer1.norm.1.weight`` names and no
        BN ``num_batches_tracked`` counters (a counter that only matters with momentum=None)."""
        out = {}
        for key, value in state.items():
            match = _OLD_KEY.match(key)
            out[match.group(1) + match.group(2) + "." + match.group(3) if match else key] = value
        for key in [k for k in out if k.endswith(".running_mean")]:
            out.setdefault(key.removesuffix("running_mean") + "num_batches_tracked",
                           torch.tensor(0, dtype=torch.long))
        return out


# --- builders --------------------------------------------------------------------------

def _densenet(growth_rate: int, block_config: tuple[int, ...], num_init_features: int,
              **options) -> DenseNet:
    return DenseNet(growth_rate=growth_rate, block_config=block_config,
                    num_init_features=num_init_features, **options)


def _densenet_bc_cifar(depth: int, k: int, **options) -> DenseNet:
    # Three blocks of (depth - 4) / 6 bottleneck layers (each two convolutions) and a
    # 2k-channel first convolution (Sec. 4.2).
    n = (depth - 4) // 6
    return _densenet(k, (n, n, n), 2 * k, stem="cifar", **options)


_PAPER = "Huang et al., Densely Connected Convolutional Networks"


@register_model(family="densenet", paper=_PAPER, year=2017, data=IMAGENET, top1_err=25.57,
                top5_err=8.03, params=7_978_856, figures=TORCHVISION_WEIGHTS,
                torchvision="densenet121", timm="densenet121")
def densenet121(*, num_classes: int = 1000, drop_rate: float = 0.0,
                memory_efficient: bool = False) -> DenseNet:
    return _densenet(32, (6, 12, 24, 16), 64, num_classes=num_classes, drop_rate=drop_rate,
                     memory_efficient=memory_efficient)


@register_model(family="densenet", paper=_PAPER, year=2017, data=IMAGENET, top1_err=24.40,
                top5_err=7.19, params=14_149_480, figures=TORCHVISION_WEIGHTS,
                torchvision="densenet169", timm="densenet169")
def densenet169(*, num_classes: int = 1000, drop_rate: float = 0.0,
                memory_efficient: bool = False) -> DenseNet:
    return _densenet(32, (6, 12, 32, 32), 64, num_classes=num_classes, drop_rate=drop_rate,
                     memory_efficient=memory_efficient)


@register_model(family="densenet", paper=_PAPER, year=2017, data=IMAGENET, top1_err=23.10,
                top5_err=6.63, params=20_013_928, figures=TORCHVISION_WEIGHTS,
                torchvision="densenet201", timm="densenet201")
def densenet201(*, num_classes: int = 1000, drop_rate: float = 0.0,
                memory_efficient: bool = False) -> DenseNet:
    return _densenet(32, (6, 12, 48, 32), 64, num_classes=num_classes, drop_rate=drop_rate,
                     memory_efficient=memory_efficient)


@register_model(family="densenet", paper=_PAPER, year=2017, data=IMAGENET, top1_err=22.15,
                top5_err=6.12, params=33_337_704,
                figures="Table 3 (single crop)",
                notes="k=32, blocks (6, 12, 64, 48) with the paper's 7x7 stem (timm's "
                      "densenet264d differs: deep stem, 72.7M)")
def densenet264(*, num_classes: int = 1000, drop_rate: float = 0.0,
                memory_efficient: bool = False) -> DenseNet:
    return _densenet(32, (6, 12, 64, 48), 64, num_classes=num_classes, drop_rate=drop_rate,
                     memory_efficient=memory_efficient)


@register_model(family="densenet", paper=_PAPER, year=2017, data=CIFAR10, top1_err=4.51,
                params=800_000, figures="Table 2, C10+ (published 0.8M)",
                notes="C100+ error 22.27")
def densenet_bc100_k12(*, num_classes: int = 10, drop_rate: float = 0.0,
                       memory_efficient: bool = False) -> DenseNet:
    return _densenet_bc_cifar(100, 12, num_classes=num_classes, drop_rate=drop_rate,
                              memory_efficient=memory_efficient)


@register_model(family="densenet", paper=_PAPER, year=2017, data=CIFAR10, top1_err=3.46,
                params=25_600_000, figures="Table 2, C10+ (published 25.6M)",
                notes="C100+ error 17.18")
def densenet_bc190_k40(*, num_classes: int = 10, drop_rate: float = 0.0,
                       memory_efficient: bool = False) -> DenseNet:
    return _densenet_bc_cifar(190, 40, num_classes=num_classes, drop_rate=drop_rate,
                              memory_efficient=memory_efficient)
