"""Blocks and conventions shared by every model family."""
from __future__ import annotations

import abc
import math
from collections import OrderedDict

import torch
from torch import nn

from ..errors import ConfigError
from .conventions import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["ConvNet", "ConvNormAct", "ConvBNAct", "inception_conv", "same_conv", "TF_BN_EPS",
           "SqueezeExcite", "DropPath", "drop_path", "StackedConv2d", "init_he_fan_out"]


class ConvNet(nn.Module, abc.ABC):
    """The interface every model of the zoo offers.

    ``forward_features`` returns the last feature map, ``forward_head`` turns it into
    logits (``pre_logits=True`` stops before the classifier, for feature transfer),
    and ``reset_classifier`` replaces the final linear layer. A subclass names its
    final linear layer by the dotted path ``classifier_path`` (``"fc"``,
    ``"classifier.6"``), keeping the key names of torchvision where it has the model.
    ``default_input_size`` is the image size of the registered entry the model was built
    from, for tools that need one example input (``convnets.optimize``).
    """

    classifier_path: str = "fc"
    # The (C, H, W) images the model was registered for: ``create_model`` sets it from the
    # registry; None for a model built from its class, whose size is the caller's choice.
    default_input_size: tuple[int, int, int] | None = None

    @abc.abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before global pooling."""

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_path)

    @property
    def num_features(self) -> int:
        return self.get_classifier().in_features

    @property
    def num_classes(self) -> int:
        return self.get_classifier().out_features

    def head_classes(self, state_dict: dict[str, torch.Tensor]) -> int | None:
        """How many classes the classifier in ``state_dict`` (this model's key names) has,
        or None if it holds none: weights trained on another number of classes than the
        model was built with are read back by first resetting the classifier to this."""
        weight = state_dict.get(f"{self.classifier_path}.weight")
        return int(weight.shape[0]) if weight is not None and weight.ndim >= 1 else None

    def reset_classifier(self, num_classes: int) -> None:
        old = self.get_classifier()
        new = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
        nn.init.zeros_(new.bias)
        parent, _, leaf = self.classifier_path.rpartition(".")
        setattr(self.get_submodule(parent) if parent else self, leaf, new)


def same_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
              groups: int = 1) -> nn.Conv2d:
    """A convolution without bias (a batch norm follows or precedes it) whose padding
    keeps the size at stride 1: ResNet's, whose blocks keep torchvision's separate
    ``convN``/``bnN`` names rather than a :class:`ConvNormAct` per pair."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                     groups=groups, bias=False)


# TensorFlow's batch norm epsilon: Google's Inception models and the MXNet DPN models were
# trained with it, and their ported weights give the same outputs only with it.
TF_BN_EPS = 1e-3


class ConvNormAct(nn.Sequential):
    """Convolution, batch norm, ReLU: the unit of most CNNs since 2015 (Ioffe & Szegedy 2015).

    ``preact=True`` orders it BN -> ReLU -> convolution, the pre-activation unit of
    He et al. 2016b, DenseNet and DPN (the BN then normalises the input channels). The
    submodules are ``conv``, ``bn`` and ``act`` (torchvision's and timm's names for the
    Inception and DPN families); ``padding`` defaults to half the kernel (the size kept
    at stride 1); ``act=False`` leaves the ReLU out; ``inplace=False`` gives the ReLU a
    fresh output (as DPN's blocks compute it).
    """

    indexed = False  # subclasses whose checkpoints name the submodules 0, 1, 2

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int] = 1,
        stride: int = 1, padding: int | tuple[int, int] | None = None, groups: int = 1, *,
        preact: bool = False, act: bool = True, eps: float = 1e-5, bias: bool = False,
        inplace: bool = True,
    ) -> None:
        if padding is None:
            padding = (kernel_size // 2 if isinstance(kernel_size, int)
                       else tuple(k // 2 for k in kernel_size))
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups,
                         bias=bias)
        layers = [("conv", conv), ("bn", nn.BatchNorm2d(in_channels if preact else out_channels,
                                                         eps=eps))]
        if act:
            layers.append(("act", nn.ReLU(inplace=inplace)))
        if preact:  # BN -> ReLU -> conv
            layers = layers[1:] + layers[:1]
        if self.indexed:
            super().__init__(*(module for _, module in layers))
        else:
            super().__init__(OrderedDict(layers))


class ConvBNAct(ConvNormAct):
    """:class:`ConvNormAct` with its submodules named 0 (conv), 1 (BN), 2 (ReLU): the key
    names of the GUNN models (those of ``nn.Sequential(conv, bn, relu)``), kept so that
    their saved runs load."""

    indexed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, groups=groups, act=act)


def inception_conv(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                   stride: int = 1, padding: int | tuple[int, int] = 0) -> ConvNormAct:
    """The Inception family's unit (torchvision's and timm's ``BasicConv2d``): conv without
    bias, BN with TensorFlow's epsilon, ReLU; unpadded unless ``padding`` is given."""
    return ConvNormAct(in_channels, out_channels, kernel_size, stride, padding, eps=TF_BN_EPS)


def transform_input(x: torch.Tensor) -> torch.Tensor:
    """Map inputs normalised with ImageNet's mean/std to the [-1, 1] scaling of Google's
    TensorFlow models, which torchvision's ported GoogLeNet and Inception-v3 weights expect."""
    # (x * std + mean - 0.5) / 0.5, folded into one scale and shift per channel.
    scale = x.new_tensor([s / 0.5 for s in IMAGENET_STD]).view(1, 3, 1, 1)
    shift = x.new_tensor([(m - 0.5) / 0.5 for m in IMAGENET_MEAN])
    return x * scale + shift.view(1, 3, 1, 1)


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al. 2018, Fig. 1): global average pool, a bottleneck of
    two 1x1 convolutions (reduction ``r``), a sigmoid gate that rescales each channel.
    Key names ``fc1``/``fc2`` follow timm's SE-ResNet so its checkpoints map directly."""

    def __init__(self, channels: int, reduction: int = 16, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
        return x * s


def drop_path(x: torch.Tensor, p: float, training: bool, per_batch: bool = False) -> torch.Tensor:
    """Stochastic depth (Huang et al. 2016): drop a residual branch for whole samples with
    probability ``p`` in training, scaling survivors by 1/(1-p) so that evaluation needs no
    rescaling (the "inverted" form of the paper's test-time multiplication by 1-p).
    ``per_batch`` draws once for the whole mini-batch, as Huang et al. do (Sec. 3: "for
    each mini-batch, randomly select sets of layers"; their Torch code), rather than once
    per sample, the drop-path of later work."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (1 if per_batch else x.shape[0],) + (1,) * (x.ndim - 1)
    mask = x.new_empty(shape).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    def __init__(self, p: float = 0.0, per_batch: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"drop-path probability must be in [0, 1), got {p}")
        self.p, self.per_batch = p, per_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training, self.per_batch)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (", per_batch=True" if self.per_batch else "")


class StackedConv2d(nn.Conv2d):
    """``stacks`` independent convolutions of equal shape stored as one: output channels
    ``[i * out/stacks, (i + 1) * out/stacks)`` are the i-th's. Computing them together is
    an implementation choice; each is initialised as the separate convolution it stands
    for (``init_he_fan_out`` counts the fan-out of one stack, not of all of them)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stacks: int,
                 padding: int = 0, groups: int = 1) -> None:
        if out_channels % stacks:
            raise ValueError(f"{out_channels} output channels do not split into {stacks} stacks")
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, groups=groups,
                         bias=False)
        self.stacks = stacks

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, stacks={self.stacks}"


def init_he_fan_out(model: nn.Module) -> None:
    """ResNet's initialisation (He et al. 2015): conv weights N(0, 2/(k*k*out)),
    BN weight 1 and bias 0, linear bias 0 (the linear weight keeps PyTorch's default,
    U(-1/sqrt(in), 1/sqrt(in)), which is also Torch7's). ``out`` is the output channels
    of one convolution: of one stack of a ``StackedConv2d``."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            stacks = m.stacks if isinstance(m, StackedConv2d) else 1
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // stacks
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
