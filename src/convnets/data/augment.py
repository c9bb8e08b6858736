"""The image operations the presets are made of, where torchvision has no equal: the
papers' colour augmentations, the GUNN authors' circular shift, channel matching and a
memory-bounded shorter-side resize. Each accepts ``(C, H, W)`` or a batch."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torchvision.transforms import v2

__all__ = ["IMAGENET_EIGVAL", "IMAGENET_EIGVEC", "ColorJitter", "Jigsaw", "Lighting",
           "MatchChannels", "ShorterSideResize", "MAX_ASPECT", "match_stats"]

# Principal components of ImageNet RGB pixel values in [0, 1] (AlexNet, Krizhevsky et al.
# 2012, Sec. 4.1). The paper does not print them; these are the values published with
# fb.resnet.torch and used by most re-implementations. Columns of the matrix are the
# eigenvectors, in the order of the eigenvalues.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

# ITU-R 601 luma weights, for models that take one channel from colour data.
_LUMA = (0.299, 0.587, 0.114)


class Lighting(nn.Module):
    """AlexNet's PCA colour augmentation (Krizhevsky et al. 2012, Sec. 4.1).

    For each image, draw ``alpha = alphastd * randn(3)`` (from ``generator`` if given)
    and add the same RGB offset ``eigvec @ (alpha * eigval)`` to every pixel, so the
    image's colour shifts along the principal components of natural-image colour, by an
    amount proportional to the variance along each. Expects float RGB in [0, 1] (the
    scale of the eigenvalues), before mean/std normalisation; a batch ``(B, 3, H, W)``
    gets one draw per image. No clamping: the paper adds the offset to raw intensities.
    """

    def __init__(self, alphastd: float = 0.1, eigval: Sequence[float] = IMAGENET_EIGVAL,
                 eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.alphastd = alphastd
        self.register_buffer("eigval", torch.tensor(eigval, dtype=torch.float32), persistent=False)
        self.register_buffer("eigvec", torch.tensor(eigvec, dtype=torch.float32), persistent=False)
        self.generator = generator

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.alphastd == 0:
            return img
        if img.shape[-3] != 3:
            raise ValueError(f"Lighting expects 3 RGB channels, got shape {tuple(img.shape)}")
        batch = img.shape[:-3]
        alpha = torch.randn((*batch, 3), generator=self.generator) * self.alphastd
        rgb = (alpha * self.eigval) @ self.eigvec.T  # row form of eigvec @ (alpha * eigval)
        return img + rgb.to(img.dtype).unsqueeze(-1).unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"alphastd={self.alphastd}"


class ColorJitter(nn.Module):
    """fb.resnet.torch's colour jitter (datasets/transforms.lua, ``ColorJitter``).

    Brightness, contrast and saturation, in a random order drawn per image, each blend
    the image with a reference, ``alpha * img + (1 - alpha) * ref`` with ``alpha = 1 +
    U(-v, v)``: black for brightness, the mean luma of the whole image for contrast, each
    pixel's own luma for saturation (luma weights 0.299, 0.587, 0.114). A strength of 0
    leaves that step out. It differs from torchvision's ``ColorJitter``: nothing is
    clamped to [0, 1] (the Torch code never clamps, and lighting noise is added after
    it), the luma weight of red is 0.299 rather than 0.2989, and there is no hue step.
    Expects float RGB in [0, 1], ``(3, H, W)`` or a batch with one draw per image.
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        for name, v in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0 <= v <= 1:
                raise ValueError(f"ColorJitter {name} must be in [0, 1], got {v}")
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.steps = [(name, v) for name, v in (("brightness", brightness), ("contrast", contrast),
                                                 ("saturation", saturation)) if v]
        self.generator = generator

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[-3] != 3:
            raise ValueError(f"ColorJitter expects 3 RGB channels, got shape {tuple(img.shape)}")
        if not self.steps:
            return img
        if img.dim() > 3:
            return torch.stack([self(one) for one in img.flatten(0, -4)]).view_as(img)
        luma = torch.tensor(_LUMA, dtype=img.dtype).view(3, 1, 1)
        for k in torch.randperm(len(self.steps), generator=self.generator).tolist():
            name, v = self.steps[k]
            alpha = 1.0 + torch.empty(()).uniform_(-v, v, generator=self.generator).item()
            if name == "brightness":
                ref = torch.zeros((), dtype=img.dtype)
            elif name == "contrast":
                ref = (img * luma).sum(0).mean()
            else:
                ref = (img * luma).sum(0, keepdim=True)
            img = alpha * img + (1.0 - alpha) * ref
        return img

    def extra_repr(self) -> str:
        return f"brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}"


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
        weights = torch.tensor(_LUMA, dtype=img.dtype).view(3, 1, 1)
        return (img * weights).sum(-3, keepdim=True)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


# Resizing by the shorter side multiplies an image's pixels by its aspect ratio: a 1 x
# 20,000 image resized to 256 would take 256 x 5,120,000 pixels (3.9 GB). Every preset
# that resizes so then crops the centre, so the long side is first cut to this many times
# the short one, which leaves the crop unchanged and bounds the memory.
MAX_ASPECT = 16


class ShorterSideResize(nn.Module):
    """Resize the shorter side to ``size`` (``v2.Resize(size)``), after cutting the
    central ``MAX_ASPECT``:1 part out of an image that is longer than that."""

    def __init__(self, size: int, max_aspect: float = MAX_ASPECT,
                 interpolation: v2.InterpolationMode = v2.InterpolationMode.BILINEAR) -> None:
        super().__init__()
        self.size, self.max_aspect = size, max_aspect
        self.resize = v2.Resize(size, interpolation=interpolation, antialias=True)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        longest = math.floor(self.max_aspect * min(h, w))
        if max(h, w) > longest:
            img = v2.functional.center_crop(img, [min(h, longest), min(w, longest)])
        return self.resize(img)

    def extra_repr(self) -> str:
        return f"size={self.size}, max_aspect={self.max_aspect}"


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
    return ([sum(m * k for m, k in zip(mean, _LUMA))], [sum(s * k for s, k in zip(std, _LUMA))])
