"""The image operations the presets are made of, where torchvision has no equal: the
GUNN authors' circular shift, channel matching, a memory-bounded shorter-side resize
(fixed, or VGG's jittered scale), the Inception crop with a random interpolation and
TF-slim's central crop; the colour augmentations live in :mod:`convnets.data.colour`
(importable from here too). Each accepts ``(C, H, W)``, uint8 or float; those that say
so also a batch."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from .colour import (IMAGENET_EIGVAL, IMAGENET_EIGVEC, LUMA, ColorJitter, Lighting,
                     PhotometricDistortions, RandomHSL, hls_to_rgb, rgb_to_hls, scale_saturation)

__all__ = ["IMAGENET_EIGVAL", "IMAGENET_EIGVEC", "ColorJitter", "Jigsaw", "Lighting",
           "MatchChannels", "ShorterSideResize", "RandomShorterSide", "MAX_ASPECT",
           "InceptionCrop", "CentralFraction", "PhotometricDistortions", "RandomHSL",
           "scale_saturation", "rgb_to_hls", "hls_to_rgb", "match_stats"]

class Jigsaw(nn.Module):
    """The GUNN authors' "Jigsaw" augmentation (their datasets/transforms.lua, ``Jigsaw``;
    used by their CIFAR loaders, not described in the paper).

    With probability ``p`` (2/3 there), a circular shift of the whole image along its
    width or its height (each with probability 1/2): with ``d`` drawn uniformly from
    1..size of that axis, the first ``d`` columns (rows) move behind the others, so
    output column ``j`` is input column ``(j + d) mod W``; ``d = W`` leaves the image as
    it was. Applied to ``(C, H, W)``, or a batch with one draw per image.
    """

    def __init__(self, p: float = 2 / 3, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Jigsaw probability must be in [0, 1], got {p}")
        self.p = p
        self.generator = generator

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.dim() > 3:
            return torch.stack([self(one) for one in img.flatten(0, -4)]).view_as(img)
        g = self.generator
        if torch.rand((), generator=g).item() >= self.p:
            return img
        dim = -1 if torch.rand((), generator=g).item() < 0.5 else -2
        d = int(torch.randint(1, img.shape[dim] + 1, (), generator=g))
        return img.roll(-d, dim)

    def extra_repr(self) -> str:
        return f"p={self.p:.4g}"


class MatchChannels(nn.Module):
    """Give a float image the model's channel count: grey replicated to RGB, or RGB
    reduced to luma (ITU-R 601 weights) for one-channel models."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"input channels must be 1 or 3, got {channels}")
        self.channels = channels

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        c = img.shape[-3]
        if c == self.channels:
            return img
        if c == 1:
            return img.expand(*img.shape[:-3], 3, *img.shape[-2:]).clone()
        weights = torch.tensor(LUMA, dtype=img.dtype).view(3, 1, 1)
        return (img * weights).sum(-3, keepdim=True)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


# Resizing by the shorter side multiplies an image's pixels by its aspect ratio: a 1 x
# 20,000 image resized to 256 would take 256 x 5,120,000 pixels (3.9 GB). Every preset
# that resizes so then crops the centre, so the long side is first cut to this many times
# the short one, which leaves the crop unchanged and bounds the memory.
MAX_ASPECT = 16


def _cut_to_aspect(img: torch.Tensor, max_aspect: float) -> torch.Tensor:
    """The central ``max_aspect``:1 part of an image that is longer than that."""
    h, w = img.shape[-2:]
    longest = math.floor(max_aspect * min(h, w))
    if max(h, w) > longest:
        img = v2.functional.center_crop(img, [min(h, longest), min(w, longest)])
    return img


class ShorterSideResize(nn.Module):
    """Resize the shorter side to ``size`` (``v2.Resize(size)``), after cutting the
    central ``MAX_ASPECT``:1 part out of an image that is longer than that."""

    def __init__(self, size: int, max_aspect: float = MAX_ASPECT,
                 interpolation: v2.InterpolationMode = v2.InterpolationMode.BILINEAR) -> None:
        super().__init__()
        self.size, self.max_aspect = size, max_aspect
        self.resize = v2.Resize(size, interpolation=interpolation, antialias=True)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.resize(_cut_to_aspect(img, self.max_aspect))

    def extra_repr(self) -> str:
        return f"size={self.size}, max_aspect={self.max_aspect}"


class RandomShorterSide(nn.Module):
    """Scale jittering (Simonyan & Zisserman 2015, Sec. 3.1): resize the shorter side to
    ``S`` drawn uniformly from the whole numbers ``low..high`` (both included), anew for
    each image; the long side is first cut as for :class:`ShorterSideResize`."""

    def __init__(self, low: int, high: int, max_aspect: float = MAX_ASPECT,
                 interpolation: v2.InterpolationMode = v2.InterpolationMode.BILINEAR,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not 1 <= low <= high:
            raise ValueError(f"RandomShorterSide needs 1 <= low <= high, got {low}, {high}")
        self.low, self.high, self.max_aspect = low, high, max_aspect
        self.interpolation, self.generator = interpolation, generator

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        side = int(torch.randint(self.low, self.high + 1, (), generator=self.generator))
        return v2.functional.resize(_cut_to_aspect(img, self.max_aspect), side,
                                    interpolation=self.interpolation, antialias=True)

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


# The resize methods GoogLeNet draws among, with equal probability (Szegedy et al. 2015,
# Sec. 6: "bilinear, area, nearest neighbor and cubic"), as torch.nn.functional names.
INCEPTION_INTERPOLATIONS = ("bilinear", "area", "nearest", "bicubic")


class InceptionCrop(nn.Module):
    """GoogLeNet's patch sampling (Szegedy et al. 2015, Sec. 6): a patch of ``scale`` of
    the image's area with aspect ratio in ``ratio`` (torchvision's
    ``RandomResizedCrop.get_params``: aspect drawn log-uniformly, a centre crop after 10
    misses), resized to ``size`` by a method drawn from ``interpolations`` for each
    image. The resize does not antialias, as TensorFlow's ``resize_images`` (TF-slim's
    inception preprocessing) does not. A uint8 image comes back as uint8 (rounded)."""

    def __init__(self, size: tuple[int, int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 interpolations: Sequence[str] = INCEPTION_INTERPOLATIONS,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.size, self.scale, self.ratio = tuple(size), tuple(scale), tuple(ratio)
        self.interpolations, self.generator = tuple(interpolations), generator

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import RandomResizedCrop

        top, left, h, w = RandomResizedCrop.get_params(img, list(self.scale), list(self.ratio))
        mode = self.interpolations[int(torch.randint(len(self.interpolations), (),
                                                     generator=self.generator))]
        patch = img[..., top:top + h, left:left + w]
        return _interpolate(patch, self.size, mode)

    def extra_repr(self) -> str:
        return f"size={self.size}, scale={self.scale}, interpolations={self.interpolations}"


def _interpolate(img: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    x = img.float()[None] if img.dim() == 3 else img.float()
    smooth = mode in ("bilinear", "bicubic")
    out = F.interpolate(x, size=size, mode=mode, **({"align_corners": False} if smooth else {}))
    out = out[0] if img.dim() == 3 else out
    if img.dtype == torch.uint8:
        return out.round().clamp(0, 255).to(torch.uint8)
    return out.to(img.dtype)


class CentralFraction(nn.Module):
    """TF's ``central_crop``: the central ``fraction`` of each side (TF-slim's inception
    evaluation: 0.875, then a resize to the input size, not keeping the aspect ratio)."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        if not 0 < fraction <= 1:
            raise ValueError(f"CentralFraction needs a fraction in (0, 1], got {fraction}")
        self.fraction = fraction

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        top, left = int((h - h * self.fraction) / 2), int((w - w * self.fraction) / 2)
        return img[..., top:h - top, left:w - left]

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}"


def match_stats(mean: Sequence[float], std: Sequence[float], c: int) -> tuple[list[float], list[float]]:
    """Per-channel statistics of the data as the normalisation of a ``c``-channel input."""
    mean, std = list(mean), list(std)
    if len(mean) != len(std) or len(mean) not in (1, 3):
        raise ValueError(f"mean/std must have 1 or 3 values, got {mean} and {std}")
    if len(mean) == c:
        return mean, std
    if len(mean) == 1:
        return mean * c, std * c
    # RGB statistics for a luma image: exact for the mean; the std assumes perfectly
    # correlated channels, a close upper bound for natural images.
    return ([sum(m * k for m, k in zip(mean, LUMA))], [sum(s * k for s, k in zip(std, LUMA))])
