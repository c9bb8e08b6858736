"""Residual networks: ResNet, ResNeXt, Wide ResNet, SE-ResNet(eXt) and pre-activation ResNet.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016.
Xie, Girshick, Dollar, Tu, He, "Aggregated Residual Transformations for Deep Neural
Networks" (ResNeXt), CVPR 2017.
Zagoruyko, Komodakis, "Wide Residual Networks", BMVC 2016.
Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
Huang, Sun, Liu, Sedra, Weinberger, "Deep Networks with Stochastic Depth", ECCV 2016.

All of them are one :class:`ResNet` configured by its block, stage depths and widths,
grouped width (ResNeXt), an SE reduction, a stem and a shortcut type. Post-activation
blocks (the 2015 paper) keep torchvision's key names, so its checkpoints and timm's
SE-ResNet(eXt) ones load as they are. Pre-activation blocks (BN-ReLU-conv, the 2016
paper) are the same class with a different block: the stem then has no BN, and a final
BN-ReLU follows the last stage. ``drop_path_rate`` turns on stochastic depth for any
variant.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

from .layers import ConvNet, DropPath, SqueezeExcite, init_he_fan_out, same_conv
from .registry import CIFAR10, IMAGENET, TORCHVISION_WEIGHTS as _TV, register_model

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "PreActBasicBlock", "PreActBottleneck"]


# --- helpers ---------------------------------------------------------------------------

def drop_path_rates(depth: int, rate: float) -> list[float]:
    """Stochastic depth's linear decay rule (Huang et al. 2016, Eq. 4): block l of L is
    dropped with probability l/L * p_L, so the input-side blocks are nearly always kept."""
    return [rate * (l + 1) / depth for l in range(depth)]


class ZeroPadShortcut(nn.Module):
    """Option A of He et al. 2015 (Sec. 3.3, used on CIFAR, Sec. 4.2): an identity shortcut
    that subsamples by ``stride`` and fills the extra channels with zeros; no parameters."""

    def __init__(self, out_channels: int, stride: int) -> None:
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - x.shape[1]))


# --- blocks ----------------------------------------------------------------------------

class _Residual(nn.Module):
    """What every block shares: an optional SE gate and stochastic depth on the residual
    branch (Huang et al. 2016 Eq. 2: the whole branch is dropped, the shortcut kept)."""

    expansion = 1
    preact = False

    def _finish(self, channels: int, se_reduction: int, drop_path: float) -> None:
        # SE sits on the residual branch, before the addition (Hu et al. Fig. 3).
        self.se = SqueezeExcite(channels, se_reduction) if se_reduction else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _merge(self, branch: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        if self.se is not None:
            branch = self.se(branch)
        # In place, as torchvision does: the branch is a fresh tensor (a BN, SE, drop-path
        # or convolution output) that no backward pass reads, so adding into it saves one
        # feature-map allocation and pass per block.
        branch = self.drop_path(branch)
        return branch.add_(shortcut)


class BasicBlock(_Residual):
    """Two 3x3 convolutions, each followed by BN; ReLU after the addition (Fig. 5 left)."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, *, groups: int = 1, base_width: int = 64,
                 se_reduction: int = 0, drop_path: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ConfigError("the basic block has no grouped or widened form; use a bottleneck")
        self.conv1 = same_conv(in_channels, planes, 3, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = same_conv(planes, planes, 3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self._finish(planes, se_reduction, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(F.relu(self.bn1(self.conv1(x)), inplace=True))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(self._merge(out, shortcut), inplace=True)


class Bottleneck(_Residual):
    """1x1 reduce, 3x3 (grouped for ResNeXt, stride here as in torchvision's "v1.5"),
    1x1 expand by 4 (Fig. 5 right). The inner width is planes * base_width/64 * groups:
    ResNeXt's cardinality x bottleneck width (Xie et al. Table 1), Wide ResNet-50-2's
    doubled width."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, *, groups: int = 1, base_width: int = 64,
                 se_reduction: int = 0, drop_path: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        width = int(planes * base_width / 64) * groups
        out = planes * self.expansion
        self.conv1 = same_conv(in_channels, width, 1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = same_conv(width, width, 3, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = same_conv(width, out, 1)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = downsample
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self._finish(out, se_reduction, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)  # a BN output: free to overwrite
        out = self.dropout(F.relu(self.bn2(self.conv2(out)), inplace=True))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(self._merge(out, shortcut), inplace=True)


class PreActBasicBlock(_Residual):
    """BN-ReLU-conv3x3, BN-ReLU-(dropout)-conv3x3 (He et al. 2016b Fig. 1b); with widened
    stages and dropout between the convolutions it is Wide ResNet's B(3,3) block
    (Zagoruyko & Komodakis Sec. 2.4). A projection shortcut reads the pre-activated input,
    as in both papers' code, so the identity path of every other block stays clean."""

    preact = True

    def __init__(self, in_channels: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, *, groups: int = 1, base_width: int = 64,
                 se_reduction: int = 0, drop_path: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ConfigError("the basic block has no grouped or widened form; use a bottleneck")
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = same_conv(in_channels, planes, 3, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = same_conv(planes, planes, 3)
        self.downsample = downsample
        self._finish(planes, se_reduction, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(pre)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return self._merge(out, shortcut)


class PreActBottleneck(_Residual):
    """The bottleneck with full pre-activation (He et al. 2016b Fig. 4e): no ReLU after
    the addition, so the shortcut path is a pure identity from block to block (Eq. 4)."""

    expansion = 4
    preact = True

    def __init__(self, in_channels: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, *, groups: int = 1, base_width: int = 64,
                 se_reduction: int = 0, drop_path: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        width = int(planes * base_width / 64) * groups
        out = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = same_conv(in_channels, width, 1)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = same_conv(width, width, 3, stride, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv3 = same_conv(width, out, 1)
        self.downsample = downsample
        self._finish(out, se_reduction, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(self.dropout(F.relu(self.bn3(out))))
        return self._merge(out, shortcut)


# --- model -----------------------------------------------------------------------------

class ResNet(ConvNet):
    """A residual network: stem, ``len(layers)`` stages (``layer1``...), global pooling, ``fc``.

    ``stem="imagenet"``: 7x7/2 conv and 3x3/2 max pool (He et al. 2015 Table 1);
    ``stem="cifar"``: one 3x3 conv (Sec. 4.2). Stage s has ``layers[s]`` blocks of
    ``planes[s]`` (x block expansion output channels) and halves the resolution unless
    it is the first. ``shortcut`` is "B" (projection where the shape changes: 1x1 conv +
    BN, or a bare 1x1 conv in a pre-activation net) or "A" (zero padding, CIFAR).
    """

    classifier_path = "fc"

    def __init__(self, *, block: type[_Residual], layers: list[int],
                 planes: tuple[int, ...] = (64, 128, 256, 512), stem: str = "imagenet",
                 stem_width: int = 64, groups: int = 1, base_width: int = 64,
                 shortcut: str = "B", se_reduction: int = 0, dropout: float = 0.0,
                 drop_path_rate: float = 0.0, drop_path_draw: str = "sample",
                 num_classes: int = 1000) -> None:
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ConfigError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if shortcut not in ("A", "B"):
            raise ConfigError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        if len(planes) != len(layers):
            raise ConfigError("give one width per stage")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ConfigError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        if drop_path_draw not in ("sample", "batch"):
            raise ConfigError(f"drop_path_draw must be 'sample' or 'batch', got {drop_path_draw!r}")
        self.block, self.shortcut = block, shortcut
        imagenet = stem == "imagenet"
        self.conv1 = same_conv(3, stem_width, 7 if imagenet else 3, 2 if imagenet else 1)
        # A pre-activation net normalises at the start of its first block instead.
        self.bn1 = nn.Identity() if block.preact else nn.BatchNorm2d(stem_width)
        self.relu = nn.Identity() if block.preact else nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if imagenet else nn.Identity()

        rates = iter(drop_path_rates(sum(layers), drop_path_rate))
        in_channels = stem_width
        for s, (depth, width) in enumerate(zip(layers, planes)):
            stride = 1 if s == 0 else 2
            out = width * block.expansion
            blocks = []
            for b in range(depth):
                downsample = None
                if b == 0 and (stride != 1 or in_channels != out):
                    downsample = self._shortcut(in_channels, out, stride)
                blocks.append(block(in_channels, width, stride if b == 0 else 1, downsample,
                                    groups=groups, base_width=base_width,
                                    se_reduction=se_reduction, drop_path=next(rates),
                                    dropout=dropout))
                in_channels = out
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.num_stages = len(layers)
        # Pre-activation: the last block's output has not been normalised yet (Fig. 1b).
        self.final_norm = nn.BatchNorm2d(in_channels) if block.preact else None
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, DropPath):
                module.per_batch = drop_path_draw == "batch"
        init_he_fan_out(self)

    def _shortcut(self, in_channels: int, out: int, stride: int) -> nn.Module:
        if self.shortcut == "A":
            return ZeroPadShortcut(out, stride)
        if self.block.preact:
            return same_conv(in_channels, out, 1, stride)
        return nn.Sequential(same_conv(in_channels, out, 1, stride), nn.BatchNorm2d(out))

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{s + 1}") for s in range(self.num_stages)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x)
        if self.final_norm is not None:
            x = F.relu(self.final_norm(x))
        return x


# --- builders --------------------------------------------------------------------------

def _resnet(block: type[_Residual], layers: list[int], **options) -> ResNet:
    return ResNet(block=block, layers=layers, **options)


_RESNET = "He et al., Deep Residual Learning for Image Recognition"
_PREACT = "He et al., Identity Mappings in Deep Residual Networks"
_RESNEXT = "Xie et al., Aggregated Residual Transformations for Deep Neural Networks"
_WRN = "Zagoruyko & Komodakis, Wide Residual Networks"
_SE = "Hu et al., Squeeze-and-Excitation Networks"
_SE_TABLE = "Table 2 (single 224 crop); params as timm"

# CIFAR ResNets (He et al. 2015 Sec. 4.2): 6n+2 layers, widths 16/32/64, option A shortcuts.
_CIFAR_V1 = dict(block=BasicBlock, planes=(16, 32, 64), stem="cifar", stem_width=16,
                 shortcut="A")
# Pre-activation bottleneck CIFAR nets (He et al. 2016b Sec. 4.1): 9n+2 layers.
_CIFAR_PREACT = dict(block=PreActBottleneck, planes=(16, 32, 64), stem="cifar", stem_width=16)


@register_model(family="resnet", paper=_RESNET, year=2016, data=IMAGENET,
                top1_err=30.24, top5_err=10.92,
                params=11_689_512, figures=_TV, torchvision="resnet18", timm="resnet18",
                protocol="resnet-multiscale")
def resnet18(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
             drop_path_draw: str = "sample") -> ResNet:
    return _resnet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, drop_path_rate=drop_path_rate,
                   drop_path_draw=drop_path_draw)


@register_model(family="resnet", paper=_RESNET, year=2016, data=IMAGENET,
                top1_err=26.69, top5_err=8.58,
                params=21_797_672, figures=_TV, torchvision="resnet34", timm="resnet34",
                protocol="resnet-multiscale")
def resnet34(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
             drop_path_draw: str = "sample") -> ResNet:
    return _resnet(BasicBlock, [3, 4, 6, 3], num_classes=num_classes, drop_path_rate=drop_path_rate,
                   drop_path_draw=drop_path_draw)


@register_model(family="resnet", paper=_RESNET, year=2016, data=IMAGENET,
                top1_err=23.87, top5_err=7.14,
                params=25_557_032, figures=_TV, torchvision="resnet50", timm="resnet50",
                protocol="resnet-multiscale")
def resnet50(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
             drop_path_draw: str = "sample") -> ResNet:
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, drop_path_rate=drop_path_rate,
                   drop_path_draw=drop_path_draw)


@register_model(family="resnet", paper=_RESNET, year=2016, data=IMAGENET,
                top1_err=22.63, top5_err=6.45,
                params=44_549_160, figures=_TV, torchvision="resnet101", timm="resnet101",
                protocol="resnet-multiscale")
def resnet101(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
              drop_path_draw: str = "sample") -> ResNet:
    return _resnet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)


@register_model(family="resnet", paper=_RESNET, year=2016, data=IMAGENET,
                top1_err=21.69, top5_err=5.95,
                params=60_192_808, figures=_TV, torchvision="resnet152", timm="resnet152",
                protocol="resnet-multiscale")
def resnet152(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
              drop_path_draw: str = "sample") -> ResNet:
    return _resnet(Bottleneck, [3, 8, 36, 3], num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)


@register_model(family="resnet", paper=_WRN, year=2016, data=IMAGENET,
                top1_err=21.53, top5_err=5.91,
                params=68_883_240, figures=_TV, torchvision="wide_resnet50_2",
                notes="bottleneck width doubled")
def wide_resnet50_2(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
                    drop_path_draw: str = "sample") -> ResNet:
    return _resnet(Bottleneck, [3, 4, 6, 3], base_width=128, num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)


@register_model(family="resnext", paper=_RESNEXT, year=2017, data=IMAGENET,
                top1_err=22.38, top5_err=6.30,
                params=25_028_904, figures=_TV, torchvision="resnext50_32x4d")
def resnext50_32x4d(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
                    drop_path_draw: str = "sample") -> ResNet:
    return _resnet(Bottleneck, [3, 4, 6, 3], groups=32, base_width=4, num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)


@register_model(family="resnext", paper=_RESNEXT, year=2017, data=IMAGENET,
                top1_err=20.69, top5_err=5.47,
                params=88_791_336, figures=_TV, torchvision="resnext101_32x8d")
def resnext101_32x8d(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
                     drop_path_draw: str = "sample") -> ResNet:
    return _resnet(Bottleneck, [3, 4, 23, 3], groups=32, base_width=8, num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)


@register_model(family="seresnet", paper=_SE, year=2018, data=IMAGENET,
                top1_err=23.29, top5_err=6.62,
                params=28_088_024, figures=_SE_TABLE, timm="seresnet50")
def seresnet50(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
               drop_path_draw: str = "sample") -> ResNet:
    return _resnet(Bottleneck, [3, 4, 6, 3], se_reduction=16, num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)


@register_model(family="seresnet", paper=_SE, year=2018, data=IMAGENET,
                top1_err=22.38, top5_err=6.07,
                params=49_326_872, figures=_SE_TABLE, timm="seresnet101")
def seresnet101(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
                drop_path_draw: str = "sample") -> ResNet:
    return _resnet(Bottleneck, [3, 4, 23, 3], se_reduction=16, num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)


@register_model(family="seresnet", paper=_SE, year=2018, data=IMAGENET,
                top1_err=21.57, top5_err=5.73,
                params=66_821_848, figures=_SE_TABLE, timm="seresnet152")
def seresnet152(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
                drop_path_draw: str = "sample") -> ResNet:
    return _resnet(Bottleneck, [3, 8, 36, 3], se_reduction=16, num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)


@register_model(family="seresnet", paper=_SE, year=2018, data=IMAGENET,
                top1_err=21.10, top5_err=5.49,
                params=27_559_896, figures=_SE_TABLE, timm="seresnext50_32x4d")
def seresnext50_32x4d(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
                      drop_path_draw: str = "sample") -> ResNet:
    return _resnet(Bottleneck, [3, 4, 6, 3], groups=32, base_width=4, se_reduction=16,
                   num_classes=num_classes, drop_path_rate=drop_path_rate,
                   drop_path_draw=drop_path_draw)


@register_model(family="seresnet", paper=_SE, year=2018, data=IMAGENET,
                top1_err=20.70, top5_err=5.01,
                params=48_955_416, figures=_SE_TABLE, timm="seresnext101_32x4d")
def seresnext101_32x4d(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
                       drop_path_draw: str = "sample") -> ResNet:
    return _resnet(Bottleneck, [3, 4, 23, 3], groups=32, base_width=4, se_reduction=16,
                   num_classes=num_classes, drop_path_rate=drop_path_rate,
                   drop_path_draw=drop_path_draw)


@register_model(family="preact_resnet", paper=_PREACT, year=2016, data=IMAGENET,
                top1_err=21.8, top5_err=6.0, params=64_666_152,
                figures="Table 5, 224 crop; params as timm's ResNetV2 with these depths (the "
                        "paper gives none)", notes="20.7/5.3 at 320",
                protocol="centre-320")
def preact_resnet200(*, num_classes: int = 1000, drop_path_rate: float = 0.0,
                     drop_path_draw: str = "sample") -> ResNet:
    return _resnet(PreActBottleneck, [3, 24, 36, 3], num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)


@register_model(family="preact_resnet", paper=_PREACT, year=2016, data=CIFAR10, top1_err=5.46,
                params=1_700_000, figures="Table 3 (published 1.7M)", notes="CIFAR-100 error 24.33")
def preact_resnet164(*, num_classes: int = 10, drop_path_rate: float = 0.0,
                     drop_path_draw: str = "sample") -> ResNet:
    return _resnet(layers=[18, 18, 18], **_CIFAR_PREACT, num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)


@register_model(family="preact_resnet", paper=_PREACT, year=2016, data=CIFAR10, top1_err=4.92,
                params=10_200_000, figures="Table 3",
                notes="CIFAR-100 error 22.71; 4.62 with batch 64. The published 10.2M "
                      "is the conv + linear weights (10.18M); with BN this net has 10.33M")
def preact_resnet1001(*, num_classes: int = 10, drop_path_rate: float = 0.0,
                      drop_path_draw: str = "sample") -> ResNet:
    return _resnet(layers=[111, 111, 111], **_CIFAR_PREACT, num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)


def _cifar_resnet(drop_path_draw: str, n: int, num_classes: int,
                  drop_path_rate: float) -> ResNet:
    return _resnet(layers=[n, n, n], **_CIFAR_V1, num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)


_CIFAR_NOTES = "option A (zero-padding) shortcuts, as the paper uses on CIFAR"


@register_model(family="resnet_cifar", paper=_RESNET, year=2016, data=CIFAR10, top1_err=8.75,
                params=270_000, figures="Table 6 (published 0.27M)",
                notes=_CIFAR_NOTES)
def resnet20(*, num_classes: int = 10, drop_path_rate: float = 0.0,
             drop_path_draw: str = "sample") -> ResNet:
    return _cifar_resnet(drop_path_draw, 3, num_classes, drop_path_rate)


@register_model(family="resnet_cifar", paper=_RESNET, year=2016, data=CIFAR10, top1_err=7.51,
                params=460_000, figures="Table 6 (published 0.46M)",
                notes=_CIFAR_NOTES)
def resnet32(*, num_classes: int = 10, drop_path_rate: float = 0.0,
             drop_path_draw: str = "sample") -> ResNet:
    return _cifar_resnet(drop_path_draw, 5, num_classes, drop_path_rate)


@register_model(family="resnet_cifar", paper=_RESNET, year=2016, data=CIFAR10, top1_err=7.17,
                params=660_000, figures="Table 6 (published 0.66M)",
                notes=_CIFAR_NOTES)
def resnet44(*, num_classes: int = 10, drop_path_rate: float = 0.0,
             drop_path_draw: str = "sample") -> ResNet:
    return _cifar_resnet(drop_path_draw, 7, num_classes, drop_path_rate)


@register_model(family="resnet_cifar", paper=_RESNET, year=2016, data=CIFAR10, top1_err=6.97,
                params=850_000, figures="Table 6 (published 0.85M)",
                notes=_CIFAR_NOTES)
def resnet56(*, num_classes: int = 10, drop_path_rate: float = 0.0,
             drop_path_draw: str = "sample") -> ResNet:
    return _cifar_resnet(drop_path_draw, 9, num_classes, drop_path_rate)


@register_model(family="resnet_cifar", paper=_RESNET, year=2016, data=CIFAR10, top1_err=6.43,
                params=1_700_000, figures="Table 6 (published 1.7M)",
                notes=_CIFAR_NOTES + "; mean of 5 runs 6.61")
def resnet110(*, num_classes: int = 10, drop_path_rate: float = 0.0,
              drop_path_draw: str = "sample") -> ResNet:
    return _cifar_resnet(drop_path_draw, 18, num_classes, drop_path_rate)


def _wrn(depth: int, k: int, **options) -> ResNet:
    # WRN-d-k (Sec. 2.4, Table 1): (d-4)/6 blocks per stage, widths 16k/32k/64k.
    n = (depth - 4) // 6
    return _resnet(PreActBasicBlock, [n, n, n], planes=(16 * k, 32 * k, 64 * k), stem="cifar",
                   stem_width=16, **options)


@register_model(family="wide_resnet", paper=_WRN, year=2016, data=CIFAR10, top1_err=4.00,
                params=36_500_000, figures="published 36.5M",
                notes="3.89 with dropout 0.3; CIFAR-100 error 19.25")
def wrn28_10(*, num_classes: int = 10, dropout: float = 0.0,
             drop_path_rate: float = 0.0, drop_path_draw: str = "sample") -> ResNet:
    return _wrn(28, 10, dropout=dropout, num_classes=num_classes, drop_path_rate=drop_path_rate,
                drop_path_draw=drop_path_draw)


@register_model(family="wide_resnet", paper=_WRN, year=2016, data=CIFAR10, top1_err=3.8,
                params=55_800_000, figures="Sec. 3, with dropout (published 55.8M)",
                notes="CIFAR-100 18.3")
def wrn40_10(*, num_classes: int = 10, dropout: float = 0.0,
             drop_path_rate: float = 0.0, drop_path_draw: str = "sample") -> ResNet:
    return _wrn(40, 10, dropout=dropout, num_classes=num_classes, drop_path_rate=drop_path_rate,
                drop_path_draw=drop_path_draw)


@register_model(family="resnext", paper=_RESNEXT, year=2017, data=CIFAR10, top1_err=3.58,
                params=68_100_000, figures="Table 7",
                notes="CIFAR-100 error 17.31. The published 68.1M is the conv + "
                      "linear weights (68.05M); with BN this net has 68.16M")
def resnext29_16x64d(*, num_classes: int = 10, drop_path_rate: float = 0.0,
                     drop_path_draw: str = "sample") -> ResNet:
    # Sec. 5.3: three stages of three bottlenecks, 16 groups of width 64 in the first
    # stage (doubling per stage), a 64-channel 3x3 stem.
    return _resnet(Bottleneck, [3, 3, 3], planes=(64, 128, 256), stem="cifar", stem_width=64,
                   groups=16, base_width=64, num_classes=num_classes,
                   drop_path_rate=drop_path_rate, drop_path_draw=drop_path_draw)
