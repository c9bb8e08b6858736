"""Dual Path Networks.

Chen, Li, Xiao, Jin, Yan, Feng, "Dual Path Networks", NeurIPS 2017.

A DPN block is a ResNeXt bottleneck whose last 1x1 convolution produces two things:
``c`` channels added to a residual path (feature re-use) and ``inc`` channels appended
to a densely connected path (feature exploration), Eq. 3-5. The two paths travel as one
tensor, residual channels first. Module names follow timm's port of the authors' MXNet
models, so timm's checkpoints load after :meth:`DPN.remap_state_dict` reshapes the 1x1
convolution classifier into a linear layer.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

from .layers import TF_BN_EPS, ConvNet, ConvNormAct, init_he_fan_out
from .registry import IMAGENET, register_model

__all__ = ["DPN", "DualPathBlock"]

# --- helpers ---------------------------------------------------------------------------

def _bn_act_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> ConvNormAct:
    """BN-ReLU-conv: DPN's blocks are pre-activation units."""
    return ConvNormAct(in_channels, out_channels, kernel_size, stride, groups=groups,
                       preact=True, eps=TF_BN_EPS, inplace=False)


class BnAct(nn.Module):
    """The BN-ReLU that pre-activates the last block's output before pooling."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=TF_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(x))


# --- blocks ----------------------------------------------------------------------------

class DualPathBlock(nn.Module):
    """1x1 (``r``), grouped 3x3 (``r``), 1x1 to ``c + inc`` channels (Fig. 2e).

    The first block of a stage projects the input into a fresh residual path of ``c``
    channels and a dense path of ``2 * inc`` (stride 2 where the stage downsamples); the
    others use the input itself. The output is [residual + new c, dense, new inc].
    """

    def __init__(self, in_channels: int, r: int, c: int, inc: int, groups: int,
                 kind: str = "normal") -> None:
        super().__init__()
        if kind not in ("proj", "down", "normal"):
            raise ConfigError(f"unknown dual path block kind {kind!r}")
        self.c = c
        stride = 2 if kind == "down" else 1
        # The projection's name records its stride, as in the MXNet and timm models.
        self.c1x1_w_s1 = _bn_act_conv(in_channels, c + 2 * inc, 1) if kind == "proj" else None
        self.c1x1_w_s2 = _bn_act_conv(in_channels, c + 2 * inc, 1, 2) if kind == "down" else None
        self.c1x1_a = _bn_act_conv(in_channels, r, 1)
        self.c3x3_b = _bn_act_conv(r, r, 3, stride, groups)
        self.c1x1_c = _bn_act_conv(r, c + inc, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.c1x1_w_s1 is not None:
            paths = self.c1x1_w_s1(x)
        elif self.c1x1_w_s2 is not None:
            paths = self.c1x1_w_s2(x)
        else:
            paths = x
        out = self.c1x1_c(self.c3x3_b(self.c1x1_a(x)))
        c = self.c
        return torch.cat([paths[:, :c] + out[:, :c], paths[:, c:], out[:, c:]], dim=1)


# --- model -----------------------------------------------------------------------------

class DPN(ConvNet):
    """A DPN: 7x7/2 conv stem and 3x3/2 max pool, four stages of dual path blocks
    (``conv2_*``...``conv5_*``), BN-ReLU, global pooling and ``classifier``.

    Stage s has ``k_sec[s]`` blocks; its residual path has 256 * 2**s channels, its
    grouped convolutions ``k_r * 2**s`` (``groups`` groups) and each block adds
    ``inc_sec[s]`` dense channels (Table 1).
    """

    classifier_path = "classifier"

    def __init__(self, *, k_sec: tuple[int, ...], inc_sec: tuple[int, ...], k_r: int,
                 groups: int, num_init_features: int = 64, num_classes: int = 1000) -> None:
        super().__init__()
        if len(k_sec) != len(inc_sec):
            raise ConfigError("give one dense increment per stage")
        blocks: OrderedDict[str, nn.Module] = OrderedDict(
            conv1_1=ConvNormAct(3, num_init_features, 7, 2, eps=TF_BN_EPS, inplace=False),
            conv1_pool=nn.MaxPool2d(3, 2, 1),
        )
        channels = num_init_features
        for s, (depth, inc) in enumerate(zip(k_sec, inc_sec)):
            c, r = 256 * 2 ** s, k_r * 2 ** s
            for b in range(depth):
                kind = "normal" if b else ("proj" if s == 0 else "down")
                blocks[f"conv{s + 2}_{b + 1}"] = DualPathBlock(channels, r, c, inc, groups, kind)
                channels = c + 3 * inc if b == 0 else channels + inc
        blocks["conv5_bn_ac"] = BnAct(channels)
        self.features = nn.Sequential(blocks)
        self.classifier = nn.Linear(channels, num_classes)
        init_he_fan_out(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def remap_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """timm's classifier is a 1x1 convolution: drop its two unit spatial dimensions."""
        weight = state.get("classifier.weight")
        if weight is not None and weight.ndim == 4:
            state["classifier.weight"] = weight.flatten(1)
        return state


# --- builders --------------------------------------------------------------------------

def _dpn(**config) -> DPN:
    return DPN(**config)


_PAPER = "Chen et al., Dual Path Networks"


@register_model(family="dpn", paper=_PAPER, year=2017, data=IMAGENET, top1_err=20.7,
                top5_err=5.4, params=37_668_392, timm="dpn92",
                figures="Table 2, DPN-92 (32x3d), single 224 crop; params as timm",
                notes="the paper lists 37.8M parameters",
                protocol="dpn-320-meanmax")
def dpn92(*, num_classes: int = 1000) -> DPN:
    return _dpn(k_sec=(3, 4, 20, 3), inc_sec=(16, 32, 24, 128), k_r=96, groups=32,
                num_init_features=64, num_classes=num_classes)


@register_model(family="dpn", paper=_PAPER, year=2017, data=IMAGENET, top1_err=20.2,
                top5_err=5.2, params=61_570_728, timm="dpn98",
                figures="Table 2, DPN-98 (40x4d), single 224 crop; params as timm",
                notes="the paper lists 61.7M parameters",
                protocol="dpn-320-meanmax")
def dpn98(*, num_classes: int = 1000) -> DPN:
    return _dpn(k_sec=(3, 6, 20, 3), inc_sec=(16, 32, 32, 128), k_r=160, groups=40,
                num_init_features=96, num_classes=num_classes)
