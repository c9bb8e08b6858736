"""GoogLeNet (Inception v1): Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.

Nine Inception modules (Figure 2b, Table 1): parallel 1x1, 1x1->3x3, 1x1->5x5 and
3x3-pool->1x1 branches concatenated along channels, with two auxiliary classifiers on
4a and 4d that add their losses (weight 0.3) during training only (Section 5).

Built as torchvision's ``GoogLeNet`` so that its checkpoints load unchanged: 6,624,904
parameters for inference (``aux_logits=False``, torchvision's published count), 13,004,888
with the two auxiliary heads (each has a 2048x1024 FC layer). Every convolution is followed
by batch norm (eps 1e-3), which the 2014 network did not have (it used local response
normalisation), and the "5x5" branch uses a 3x3 kernel, a slip torchvision keeps for
compatibility with its weights; ``paper_5x5=True`` restores the 5x5 kernel of Table 1.

In training mode with ``aux_logits`` the model returns ``GoogLeNetOutputs(logits, aux1,
aux2)`` (a tuple whose first element is the main logits; the loss is
``ce(logits) + aux_loss_weight * (ce(aux1) + ce(aux2))``); in eval mode it returns the logits.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvNet, inception_conv, init_he_fan_out, transform_input
from .registry import IMAGENET, TORCHVISION_WEIGHTS, register_model

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "Inception", "InceptionAux"]


# --- helpers ---------------------------------------------------------------------------

class GoogLeNetOutputs(NamedTuple):
    logits: torch.Tensor
    aux1: torch.Tensor
    aux2: torch.Tensor


# --- blocks ----------------------------------------------------------------------------

class Inception(nn.Module):
    """Figure 2b: the 1x1 reductions before the 3x3 and 5x5 convolutions (and after the pool)
    keep the concatenated width, and the cost, under control."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                 ch5x5: int, pool_proj: int, paper_5x5: bool = False) -> None:
        super().__init__()
        k5 = 5 if paper_5x5 else 3
        self.branch1 = inception_conv(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(inception_conv(in_channels, ch3x3red, 1),
                                     inception_conv(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(inception_conv(in_channels, ch5x5red, 1),
                                     inception_conv(ch5x5red, ch5x5, k5, padding=k5 // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, padding=1, ceil_mode=True),
                                     inception_conv(in_channels, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Section 5: 5x5/3 average pooling (4x4 output on 14x14 maps; adaptive here, so other
    input sizes work), 1x1 conv to 128, FC-1024 + ReLU, dropout 0.7, linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = inception_conv(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


# --- model -----------------------------------------------------------------------------

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj for each module.
_MODULES = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNet(ConvNet):
    classifier_path = "fc"
    aux_loss_weight = 0.3  # Section 5: auxiliary losses "weighted by 0.3"

    def __init__(self, *, num_classes: int = 1000, aux_logits: bool = True,
                 transform_input: bool = False, dropout: float = 0.2, dropout_aux: float = 0.7,
                 paper_5x5: bool = False) -> None:
        super().__init__()
        self.aux_logits, self.transform_input = aux_logits, transform_input
        self.conv1 = inception_conv(3, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = inception_conv(64, 64, 1)
        self.conv3 = inception_conv(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        for name, cfg in _MODULES.items():
            setattr(self, f"inception{name}", Inception(*cfg, paper_5x5=paper_5x5))
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.aux1 = InceptionAux(512, num_classes, dropout_aux) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, dropout_aux) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        init_he_fan_out(self)

    def _trunk(self, x: torch.Tensor, with_aux: bool):
        if self.transform_input:
            x = transform_input(x)
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if with_aux else None
        x = self.maxpool4(self.inception4e(x))
        return self.inception5b(self.inception5a(x)), aux1, aux2

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        with_aux = self.training and self.aux1 is not None
        x, aux1, aux2 = self._trunk(x, with_aux)
        logits = self.forward_head(x)
        return GoogLeNetOutputs(logits, aux1, aux2) if with_aux else logits

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                old = aux.fc2
                aux.fc2 = nn.Linear(old.in_features, num_classes, device=old.weight.device,
                                    dtype=old.weight.dtype)


# --- builders --------------------------------------------------------------------------

@register_model(family="inception", paper="Szegedy et al., Going Deeper with Convolutions",
                year=2014, data=IMAGENET, top1_err=30.222, top5_err=10.470, params=13_004_888,
                figures=TORCHVISION_WEIGHTS, torchvision="googlenet",
                notes="torchvision's weights are of the BN variant; Table 3 of the paper: one "
                      "model, one crop, 10.07 top-5; params include the two auxiliary heads "
                      "(6,624,904 without them, torchvision's published count)",
                protocol="googlenet-144crop")
def googlenet(*, num_classes: int = 1000, aux_logits: bool = True,
              transform_input: bool = False, dropout: float = 0.2,
              paper_5x5: bool = False, dropout_aux: float = 0.7) -> GoogLeNet:
    # The paper (Sec. 5): dropout 0.4 before the classifier, 0.7 in the auxiliary heads;
    # 0.2 is torchvision's, whose weights these are.
    return GoogLeNet(num_classes=num_classes, aux_logits=aux_logits,
                     transform_input=transform_input, dropout=dropout, dropout_aux=dropout_aux,
                     paper_5x5=paper_5x5)
