"""Inception v3, Inception-v4 and Inception-ResNet-v2, with optional Squeeze-and-Excitation.

- Szegedy, Vanhoucke, Ioffe, Shlens, Wojna, "Rethinking the Inception Architecture for
  Computer Vision", CVPR 2016 (v3): factorised convolutions (Figures 5-7), efficient grid
  reduction (Figure 10), one auxiliary classifier (Section 4). Key names and layer details
  follow torchvision's ``Inception3`` (27,161,264 parameters with ``AuxLogits``), so its
  checkpoints load directly.
- Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the Impact of
  Residual Connections on Learning", AAAI 2017: Inception-v4 (Figures 3-9) and
  Inception-ResNet-v2 (Figures 3, 16-19, with residual scaling, Section 3.3). Key names
  follow timm's ``inception_v4`` and ``inception_resnet_v2`` (ports of Google's TensorFlow
  models), whose checkpoints therefore load directly.
- ``se=True`` adds a Squeeze-and-Excitation block (Hu et al., "Squeeze-and-Excitation
  Networks", CVPR 2018, Figure 2; reduction 16) to every Inception module that keeps the
  grid size: on the module's output for v3/v4, on the residual branch before the addition
  for Inception-ResNet (their Figure 3 applied to the Inception-ResNet block).

All convolutions are conv + batch norm (eps 1e-3) + ReLU units; weights use He fan-out.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (ConvNet, ConvNormAct, SqueezeExcite, inception_conv, init_he_fan_out,
                     transform_input)
from .registry import IMAGENET, TORCHVISION_WEIGHTS, register_model

__all__ = ["Inception3", "InceptionV4", "InceptionResNetV2", "InceptionOutputs"]


# --- helpers ---------------------------------------------------------------------------

class InceptionOutputs(NamedTuple):
    logits: torch.Tensor
    aux: torch.Tensor


def _conv_1xn(cin: int, cout: int, n: int) -> ConvNormAct:
    return inception_conv(cin, cout, (1, n), padding=(0, n // 2))


def _conv_nx1(cin: int, cout: int, n: int) -> ConvNormAct:
    return inception_conv(cin, cout, (n, 1), padding=(n // 2, 0))


def _se(channels: int, enabled: bool) -> nn.Module:
    return SqueezeExcite(channels, reduction=16) if enabled else nn.Identity()


def _avg_pool_branch(cin: int, cout: int) -> nn.Sequential:
    # The TensorFlow models average over the valid pixels only at the borders.
    return nn.Sequential(nn.AvgPool2d(3, 1, padding=1, count_include_pad=False),
                         inception_conv(cin, cout, 1))


# --- blocks: Inception v3 (torchvision's key names) ------------------------------------

class InceptionA(nn.Module):
    """Figure 5 (35x35 grid): the 5x5 convolution replaced by two 3x3 ones in one branch; a
    single 5x5 branch is kept as in Google's released model."""

    def __init__(self, cin: int, pool_features: int, se: bool = False) -> None:
        super().__init__()
        self.branch1x1 = inception_conv(cin, 64, 1)
        self.branch5x5_1 = inception_conv(cin, 48, 1)
        self.branch5x5_2 = inception_conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = inception_conv(cin, 64, 1)
        self.branch3x3dbl_2 = inception_conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = inception_conv(96, 96, 3, padding=1)
        self.branch_pool = inception_conv(cin, pool_features, 1)
        self.se = _se(224 + pool_features, se)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, padding=1))
        return self.se(torch.cat([self.branch1x1(x), b5, b3, bp], 1))


class InceptionB(nn.Module):
    """Figure 10: 35 -> 17 grid reduction by stride-2 convolutions beside a stride-2 pool,
    avoiding both the representational bottleneck and the cost of pooling first."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = inception_conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = inception_conv(cin, 64, 1)
        self.branch3x3dbl_2 = inception_conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = inception_conv(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    """Figure 6 (17x17 grid): 7x7 convolutions factorised into 1x7 and 7x1 (Section 3.2)."""

    def __init__(self, cin: int, channels_7x7: int, se: bool = False) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = inception_conv(cin, 192, 1)
        self.branch7x7_1 = inception_conv(cin, c7, 1)
        self.branch7x7_2 = _conv_1xn(c7, c7, 7)
        self.branch7x7_3 = _conv_nx1(c7, 192, 7)
        self.branch7x7dbl_1 = inception_conv(cin, c7, 1)
        self.branch7x7dbl_2 = _conv_nx1(c7, c7, 7)
        self.branch7x7dbl_3 = _conv_1xn(c7, c7, 7)
        self.branch7x7dbl_4 = _conv_nx1(c7, c7, 7)
        self.branch7x7dbl_5 = _conv_1xn(c7, 192, 7)
        self.branch_pool = inception_conv(cin, 192, 1)
        self.se = _se(768, se)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for i in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{i}")(bd)
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, padding=1))
        return self.se(torch.cat([self.branch1x1(x), b7, bd, bp], 1))


class InceptionD(nn.Module):
    """The 17 -> 8 grid reduction (Figure 10's scheme with a factorised 7x7 path)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = inception_conv(cin, 192, 1)
        self.branch3x3_2 = inception_conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = inception_conv(cin, 192, 1)
        self.branch7x7x3_2 = _conv_1xn(192, 192, 7)
        self.branch7x7x3_3 = _conv_nx1(192, 192, 7)
        self.branch7x7x3_4 = inception_conv(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    """Figure 7 (8x8 grid): expanded filter banks, 3x3 split into parallel 1x3 and 3x1 outputs
    to promote high-dimensional representations at the coarsest grid."""

    def __init__(self, cin: int, se: bool = False) -> None:
        super().__init__()
        self.branch1x1 = inception_conv(cin, 320, 1)
        self.branch3x3_1 = inception_conv(cin, 384, 1)
        self.branch3x3_2a = _conv_1xn(384, 384, 3)
        self.branch3x3_2b = _conv_nx1(384, 384, 3)
        self.branch3x3dbl_1 = inception_conv(cin, 448, 1)
        self.branch3x3dbl_2 = inception_conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _conv_1xn(384, 384, 3)
        self.branch3x3dbl_3b = _conv_nx1(384, 384, 3)
        self.branch_pool = inception_conv(cin, 192, 1)
        self.se = _se(2048, se)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, padding=1))
        return self.se(torch.cat([self.branch1x1(x), b3, bd, bp], 1))


class InceptionAux(nn.Module):
    """Figure 8: 5x5/3 average pool on the 17x17 grid, 1x1 conv to 128, 5x5 conv to 768, FC.
    It needs a 17x17 grid (299x299 inputs) to run."""

    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = inception_conv(cin, 128, 1)
        self.conv1 = inception_conv(128, 768, 5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(F.avg_pool2d(x, 5, 3)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# --- blocks: Inception-v4 and Inception-ResNet-v2 (timm's key names) -------------------

class Branches(nn.Module):
    """Named parallel branches concatenated along channels (the Inception pattern), with an
    optional SE block on the concatenation."""

    def __init__(self, branches: dict[str, nn.Module], out_channels: int = 0,
                 se: bool = False) -> None:
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)
        self.names = tuple(branches)
        self.se = _se(out_channels, se)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(torch.cat([getattr(self, n)(x) for n in self.names], 1))


class InceptionV4C(nn.Module):
    """Figure 6 of the v4 paper (8x8 grid): two branches that end split into 1x3 and 3x1."""

    def __init__(self, se: bool = False) -> None:
        super().__init__()
        self.branch0 = inception_conv(1536, 256, 1)
        self.branch1_0 = inception_conv(1536, 384, 1)
        self.branch1_1a = _conv_1xn(384, 256, 3)
        self.branch1_1b = _conv_nx1(384, 256, 3)
        self.branch2_0 = inception_conv(1536, 384, 1)
        self.branch2_1 = _conv_nx1(384, 448, 3)
        self.branch2_2 = _conv_1xn(448, 512, 3)
        self.branch2_3a = _conv_1xn(512, 256, 3)
        self.branch2_3b = _conv_nx1(512, 256, 3)
        self.branch3 = _avg_pool_branch(1536, 256)
        self.se = _se(1536, se)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1_0(x)
        b1 = torch.cat([self.branch1_1a(b1), self.branch1_1b(b1)], 1)
        b2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        b2 = torch.cat([self.branch2_3a(b2), self.branch2_3b(b2)], 1)
        return self.se(torch.cat([self.branch0(x), b1, b2, self.branch3(x)], 1))


class ResidualInception(nn.Module):
    """Figures 16-19 of the v4 paper: parallel branches, a linear 1x1 convolution back to the
    block's width, the result scaled (Section 3.3: scaling by 0.1-0.3 stabilises training of
    wide residual Inception nets) and added to the input, then ReLU."""

    def __init__(self, channels: int, branches: list[nn.Module], width: int, scale: float,
                 relu: bool = True, se: bool = False) -> None:
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(f"branch{i}", branch)
        self.num_branches, self.scale, self.relu = len(branches), scale, relu
        self.conv2d = nn.Conv2d(width, channels, 1)
        self.se = _se(channels, se)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.num_branches)], 1)
        out = self.se(self.conv2d(out)) * self.scale + x
        return F.relu(out) if self.relu else out


def _seq(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers)


def _block35(scale: float, se: bool) -> ResidualInception:  # Figure 16, 35x35 grid
    return ResidualInception(320, [
        inception_conv(320, 32, 1),
        _seq(inception_conv(320, 32, 1), inception_conv(32, 32, 3, padding=1)),
        _seq(inception_conv(320, 32, 1), inception_conv(32, 48, 3, padding=1),
             inception_conv(48, 64, 3, padding=1)),
    ], width=128, scale=scale, se=se)


def _block17(scale: float, se: bool) -> ResidualInception:  # Figure 17, 17x17 grid
    return ResidualInception(1088, [
        inception_conv(1088, 192, 1),
        _seq(inception_conv(1088, 128, 1), _conv_1xn(128, 160, 7), _conv_nx1(160, 192, 7)),
    ], width=384, scale=scale, se=se)


def _block8(scale: float, se: bool, relu: bool = True) -> ResidualInception:  # Figure 19
    return ResidualInception(2080, [
        inception_conv(2080, 192, 1),
        _seq(inception_conv(2080, 192, 1), _conv_1xn(192, 224, 3), _conv_nx1(224, 256, 3)),
    ], width=448, scale=scale, relu=relu, se=se)


def _v4_stem() -> list[nn.Module]:  # Figure 3: 299x299x3 -> 35x35x384
    return [
        inception_conv(3, 32, 3, stride=2), inception_conv(32, 32, 3),
        inception_conv(32, 64, 3, padding=1),
        Branches({"maxpool": nn.MaxPool2d(3, 2), "conv": inception_conv(64, 96, 3, stride=2)}),
        Branches({
            "branch0": _seq(inception_conv(160, 64, 1), inception_conv(64, 96, 3)),
            "branch1": _seq(inception_conv(160, 64, 1), _conv_1xn(64, 64, 7), _conv_nx1(64, 64, 7),
                            inception_conv(64, 96, 3)),
        }),
        Branches({"conv": inception_conv(192, 192, 3, stride=2), "maxpool": nn.MaxPool2d(3, 2)}),
    ]


def _v4_block_a(se: bool) -> Branches:  # Figure 4, 35x35 grid
    return Branches({
        "branch0": inception_conv(384, 96, 1),
        "branch1": _seq(inception_conv(384, 64, 1), inception_conv(64, 96, 3, padding=1)),
        "branch2": _seq(inception_conv(384, 64, 1), inception_conv(64, 96, 3, padding=1),
                        inception_conv(96, 96, 3, padding=1)),
        "branch3": _avg_pool_branch(384, 96),
    }, 384, se)


def _v4_reduction_a() -> Branches:  # Figure 7 with k, l, m, n = 192, 224, 256, 384 (Table 1)
    return Branches({
        "branch0": inception_conv(384, 384, 3, stride=2),
        "branch1": _seq(inception_conv(384, 192, 1), inception_conv(192, 224, 3, padding=1),
                        inception_conv(224, 256, 3, stride=2)),
        "branch2": nn.MaxPool2d(3, 2),
    })


def _v4_block_b(se: bool) -> Branches:  # Figure 5, 17x17 grid
    return Branches({
        "branch0": inception_conv(1024, 384, 1),
        "branch1": _seq(inception_conv(1024, 192, 1), _conv_1xn(192, 224, 7),
                        _conv_nx1(224, 256, 7)),
        "branch2": _seq(inception_conv(1024, 192, 1), _conv_nx1(192, 192, 7),
                        _conv_1xn(192, 224, 7), _conv_nx1(224, 224, 7), _conv_1xn(224, 256, 7)),
        "branch3": _avg_pool_branch(1024, 128),
    }, 1024, se)


def _v4_reduction_b() -> Branches:  # Figure 8
    return Branches({
        "branch0": _seq(inception_conv(1024, 192, 1), inception_conv(192, 192, 3, stride=2)),
        "branch1": _seq(inception_conv(1024, 256, 1), _conv_1xn(256, 256, 7),
                        _conv_nx1(256, 320, 7), inception_conv(320, 320, 3, stride=2)),
        "branch2": nn.MaxPool2d(3, 2),
    })


# --- models ----------------------------------------------------------------------------

class _InceptionNet(ConvNet):
    """Shared head: global average pooling, dropout, linear classifier."""

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return x if pre_logits else self.get_classifier()(x)


class Inception3(_InceptionNet):
    """Table 1 of the v3 paper: a 299x299 stem of plain convolutions, three 35x35 modules,
    a reduction, four 17x17 modules, a reduction, two 8x8 modules; 2048 features.

    In training mode with ``aux_logits`` the model returns ``InceptionOutputs(logits, aux)``;
    the torchvision recipe weights the auxiliary loss by ``aux_loss_weight`` = 0.4.
    """

    classifier_path = "fc"
    aux_loss_weight = 0.4

    def __init__(self, *, num_classes: int = 1000, aux_logits: bool = True,
                 transform_input: bool = False, dropout: float = 0.5, se: bool = False) -> None:
        super().__init__()
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = inception_conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = inception_conv(32, 32, 3)
        self.Conv2d_2b_3x3 = inception_conv(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, 2)
        self.Conv2d_3b_1x1 = inception_conv(64, 80, 1)
        self.Conv2d_4a_3x3 = inception_conv(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, 2)
        self.Mixed_5b = InceptionA(192, 32, se)
        self.Mixed_5c = InceptionA(256, 64, se)
        self.Mixed_5d = InceptionA(288, 64, se)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128, se)
        self.Mixed_6c = InceptionC(768, 160, se)
        self.Mixed_6d = InceptionC(768, 160, se)
        self.Mixed_6e = InceptionC(768, 192, se)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, se)
        self.Mixed_7c = InceptionE(2048, se)
        self.head_drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)
        init_he_fan_out(self)

    _STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
             "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
             "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e")

    def _trunk(self, x: torch.Tensor, with_aux: bool):
        if self.transform_input:
            x = transform_input(x)
        for name in self._STEM:
            x = getattr(self, name)(x)
        aux = self.AuxLogits(x) if with_aux else None
        return self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x))), aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x, with_aux=False)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | InceptionOutputs:
        with_aux = self.training and self.AuxLogits is not None
        x, aux = self._trunk(x, with_aux)
        logits = self.forward_head(x)
        return InceptionOutputs(logits, aux) if with_aux else logits

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        if self.AuxLogits is not None:
            old = self.AuxLogits.fc
            self.AuxLogits.fc = nn.Linear(old.in_features, num_classes,
                                          device=old.weight.device, dtype=old.weight.dtype)


class InceptionV4(_InceptionNet):
    """Figure 9: stem (Figure 3), 4 x Inception-A, Reduction-A, 7 x Inception-B,
    Reduction-B, 3 x Inception-C, average pooling, dropout (keep 0.8), softmax."""

    classifier_path = "last_linear"

    def __init__(self, *, num_classes: int = 1000, dropout: float = 0.2, se: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_v4_stem(), *[_v4_block_a(se) for _ in range(4)], _v4_reduction_a(),
            *[_v4_block_b(se) for _ in range(7)], _v4_reduction_b(),
            *[InceptionV4C(se) for _ in range(3)],
        )
        self.head_drop = nn.Dropout(dropout)
        self.last_linear = nn.Linear(1536, num_classes)
        init_he_fan_out(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class InceptionResNetV2(_InceptionNet):
    """Figure 15 with the v3-style stem of Google's released model (as timm's port):
    Mixed-5b, 10 x block35 (scale 0.17), Reduction-A, 20 x block17 (0.10), Reduction-B,
    9 x block8 (0.20) and a last block8 without scaling or ReLU, a 1x1 conv to 1536."""

    classifier_path = "classif"

    def __init__(self, *, num_classes: int = 1000, dropout: float = 0.2, se: bool = False) -> None:
        super().__init__()
        self.conv2d_1a = inception_conv(3, 32, 3, stride=2)
        self.conv2d_2a = inception_conv(32, 32, 3)
        self.conv2d_2b = inception_conv(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, 2)
        self.conv2d_3b = inception_conv(64, 80, 1)
        self.conv2d_4a = inception_conv(80, 192, 3)
        self.maxpool_5a = nn.MaxPool2d(3, 2)
        self.mixed_5b = Branches({
            "branch0": inception_conv(192, 96, 1),
            "branch1": _seq(inception_conv(192, 48, 1), inception_conv(48, 64, 5, padding=2)),
            "branch2": _seq(inception_conv(192, 64, 1), inception_conv(64, 96, 3, padding=1),
                            inception_conv(96, 96, 3, padding=1)),
            "branch3": _avg_pool_branch(192, 64),
        })
        self.repeat = nn.Sequential(*[_block35(0.17, se) for _ in range(10)])
        self.mixed_6a = Branches({  # Figure 7 with k, l, m, n = 256, 256, 384, 384 (Table 1)
            "branch0": inception_conv(320, 384, 3, stride=2),
            "branch1": _seq(inception_conv(320, 256, 1), inception_conv(256, 256, 3, padding=1),
                            inception_conv(256, 384, 3, stride=2)),
            "branch2": nn.MaxPool2d(3, 2),
        })
        self.repeat_1 = nn.Sequential(*[_block17(0.10, se) for _ in range(20)])
        self.mixed_7a = Branches({  # Figure 18
            "branch0": _seq(inception_conv(1088, 256, 1), inception_conv(256, 384, 3, stride=2)),
            "branch1": _seq(inception_conv(1088, 256, 1), inception_conv(256, 288, 3, stride=2)),
            "branch2": _seq(inception_conv(1088, 256, 1), inception_conv(256, 288, 3, padding=1),
                            inception_conv(288, 320, 3, stride=2)),
            "branch3": nn.MaxPool2d(3, 2),
        })
        self.repeat_2 = nn.Sequential(*[_block8(0.20, se) for _ in range(9)])
        self.block8 = _block8(1.0, se, relu=False)
        self.conv2d_7b = inception_conv(2080, 1536, 1)
        self.head_drop = nn.Dropout(dropout)
        self.classif = nn.Linear(1536, num_classes)
        init_he_fan_out(self)

    _LAYERS = ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a",
               "maxpool_5a", "mixed_5b", "repeat", "mixed_6a", "repeat_1", "mixed_7a",
               "repeat_2", "block8", "conv2d_7b")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._LAYERS:
            x = getattr(self, name)(x)
        return x


# --- builders --------------------------------------------------------------------------

_IMAGENET_299 = IMAGENET.at(299)
_V3 = "Szegedy et al., Rethinking the Inception Architecture for Computer Vision"
_V4 = ("Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual "
       "Connections on Learning")


@register_model(family="inception", paper=_V3, year=2015, data=_IMAGENET_299, top1_err=22.706,
                top5_err=6.550, params=27_161_264, figures=TORCHVISION_WEIGHTS,
                torchvision="inception_v3", timm="inception_v3",
                notes="Table 3 of the paper: 21.2 / 5.6 single crop; params include AuxLogits "
                      "(torchvision's count)")
def inception_v3(*, num_classes: int = 1000, aux_logits: bool = True,
                 transform_input: bool = False, dropout: float = 0.5,
                 se: bool = False) -> Inception3:
    return Inception3(num_classes=num_classes, aux_logits=aux_logits,
                      transform_input=transform_input, dropout=dropout, se=se)


@register_model(family="inception", paper="Hu et al., Squeeze-and-Excitation Networks; " + _V3,
                year=2018, data=_IMAGENET_299, params=28_542_180,
                notes="Inception v3 with an SE block (r=16) on every module that keeps the grid "
                      "size; no published error or count for this exact model (params is "
                      "v3's 27,161,264 plus the SE blocks)")
def se_inception_v3(*, num_classes: int = 1000, aux_logits: bool = True,
                    dropout: float = 0.5) -> Inception3:
    return Inception3(num_classes=num_classes, aux_logits=aux_logits, dropout=dropout, se=True)


@register_model(family="inception", paper=_V4, year=2016, data=_IMAGENET_299, top1_err=20.0,
                top5_err=5.0, params=42_679_816, timm="inception_v4",
                figures="Table 2, single crop, single model; params as timm")
def inception_v4(*, num_classes: int = 1000, dropout: float = 0.2, se: bool = False) -> InceptionV4:
    return InceptionV4(num_classes=num_classes, dropout=dropout, se=se)


@register_model(family="inception", paper=_V4, year=2016, data=_IMAGENET_299, top1_err=19.9,
                top5_err=4.9, params=55_843_464, timm="inception_resnet_v2",
                figures="Table 2, single crop, single model; params as timm")
def inception_resnet_v2(*, num_classes: int = 1000, dropout: float = 0.2,
                        se: bool = False) -> InceptionResNetV2:
    return InceptionResNetV2(num_classes=num_classes, dropout=dropout, se=se)
