"""The image operations the presets are made of, where torchvision has no equal: the
papers' colour augmentations (AlexNet's PCA lighting, fb.resnet.torch's jitter, TF-slim's
photometric distortions, MXNet's random HSL), the GUNN authors' circular shift, channel
matching, a memory-bounded shorter-side resize (fixed, or VGG's jittered scale), the
Inception crop with a random interpolation and TF-slim's central crop. Each accepts
``(C, H, W)`` (the geometry steps a uint8 or float image; the colour steps float RGB in
[0, 1]); those that say so also a batch."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

__all__ = ["IMAGENET_EIGVAL", "IMAGENET_EIGVEC", "ColorJitter", "Jigsaw", "Lighting",
           "MatchChannels", "ShorterSideResize", "RandomShorterSide", "MAX_ASPECT",
           "InceptionCrop", "CentralFraction", "PhotometricDistortions", "RandomHSL",
           "scale_saturation", "rgb_to_hls", "hls_to_rgb", "match_stats"]

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


class PhotometricDistortions(nn.Module):
    """The Inception line's colour distortions (Szegedy et al. 2015, Sec. 6, after Howard
    2013), with the strengths and orders of TF-slim's ``inception_preprocessing.distort_color``
    where the paper gives none: brightness ``+ U(-32/255, 32/255)``, saturation ``x U(0.5,
    1.5)`` in HSV, hue ``+ U(-0.2, 0.2)`` of the colour circle, contrast ``x U(0.5, 1.5)``
    about each channel's mean, applied in one of TF-slim's four orders drawn per image
    (``ORDERS``). Each step clamps to [0, 1] (TF-slim clamps once at the end; its HSV
    steps need values in range). Expects float RGB in [0, 1], ``(3, H, W)`` or a batch."""

    # distort_color's color_ordering 0..3 (fast_mode=False)
    ORDERS = (("brightness", "saturation", "hue", "contrast"),
              ("saturation", "brightness", "contrast", "hue"),
              ("contrast", "hue", "brightness", "saturation"),
              ("hue", "saturation", "contrast", "brightness"))

    def __init__(self, brightness: float = 32 / 255, saturation: tuple[float, float] = (0.5, 1.5),
                 hue: float = 0.2, contrast: tuple[float, float] = (0.5, 1.5),
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.brightness, self.saturation = brightness, saturation
        self.hue, self.contrast = hue, contrast
        self.generator = generator

    def _uniform(self, low: float, high: float) -> float:
        return torch.empty(()).uniform_(low, high, generator=self.generator).item()

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[-3] != 3:
            raise ValueError(f"PhotometricDistortions expects 3 RGB channels, got shape "
                             f"{tuple(img.shape)}")
        if img.dim() > 3:
            return torch.stack([self(one) for one in img.flatten(0, -4)]).view_as(img)
        order = self.ORDERS[int(torch.randint(len(self.ORDERS), (), generator=self.generator))]
        for step in order:
            if step == "brightness":
                img = img + self._uniform(-self.brightness, self.brightness)
            elif step == "saturation":
                img = scale_saturation(img, self._uniform(*self.saturation))
            elif step == "hue":
                img = v2.functional.adjust_hue(img, self._uniform(-self.hue, self.hue))
            else:
                mean = img.mean((-2, -1), keepdim=True)
                img = (img - mean) * self._uniform(*self.contrast) + mean
            img = img.clamp(0, 1)
        return img

    def extra_repr(self) -> str:
        return (f"brightness={self.brightness:.4g}, saturation={self.saturation}, hue={self.hue}, "
                f"contrast={self.contrast}")


def scale_saturation(img: torch.Tensor, factor: float) -> torch.Tensor:
    """HSV saturation times ``factor``, capped at 1, hue and value kept (TF's
    ``adjust_saturation``). At fixed hue and value every channel is linear in the
    saturation, ``c = V - S * (V - c0) / S0``, so no trip through HSV is needed."""
    value = img.amax(-3, keepdim=True)
    spread = value - img.amin(-3, keepdim=True)
    cap = torch.where(spread > 0, value / spread.clamp_min(1e-12), torch.full_like(value, factor))
    return value - torch.minimum(cap, torch.full_like(cap, factor)) * (value - img)


class RandomHSL(nn.Module):
    """DPN's "random HSL [20, 40, 50]" (cypw/DPNs README; MXNet's ``random_h``,
    ``random_s``, ``random_l``, src/io/image_aug_default.cc): for each image, offsets
    drawn uniformly from ``+-hue`` (OpenCV's 8-bit hue units, 180 to the circle),
    ``+-saturation`` and ``+-lightness`` (units of 1/255) are added in HLS space, each
    channel clamped to its range (hue too: MXNet clamps, it does not wrap). MXNet rounds
    the offsets to whole units and the HLS values to bytes; here both stay real.
    Expects float RGB in [0, 1], ``(3, H, W)`` or a batch."""

    def __init__(self, hue: float = 20, saturation: float = 40, lightness: float = 50,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.hue, self.saturation, self.lightness = hue, saturation, lightness
        self.generator = generator

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[-3] != 3:
            raise ValueError(f"RandomHSL expects 3 RGB channels, got shape {tuple(img.shape)}")
        if img.dim() > 3:
            return torch.stack([self(one) for one in img.flatten(0, -4)]).view_as(img)
        spans = torch.tensor([self.hue / 180, self.lightness / 255, self.saturation / 255])
        offsets = (torch.rand(3, generator=self.generator) * 2 - 1) * spans
        hls = (rgb_to_hls(img) + offsets.view(3, 1, 1).to(img.dtype)).clamp(0, 1)
        return hls_to_rgb(hls)

    def extra_repr(self) -> str:
        return f"hue={self.hue}, saturation={self.saturation}, lightness={self.lightness}"


def rgb_to_hls(img: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> (hue as a fraction of the circle, lightness, saturation), as
    :func:`colorsys.rgb_to_hls` per pixel."""
    r, g, b = img.unbind(-3)
    high, low = img.amax(-3), img.amin(-3)
    spread, light = high - low, (high + low) / 2
    safe = spread.clamp_min(1e-12)
    sat = torch.where(spread > 0, spread / torch.where(light <= 0.5, high + low, 2 - high - low)
                      .clamp_min(1e-12), torch.zeros_like(spread))
    hue = torch.where(high == r, (g - b) / safe,
                      torch.where(high == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    hue = torch.where(spread > 0, (hue / 6) % 1.0, torch.zeros_like(hue))
    return torch.stack([hue, light, sat], -3)


def hls_to_rgb(hls: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_hls`: ``f(n) = L - a * clamp(min(k - 3, 9 - k), -1, 1)``
    with ``k = (n + 12 H) mod 12``, ``a = S * min(L, 1 - L)``, n = 0, 8, 4 for R, G, B."""
    hue, light, sat = hls.unbind(-3)
    a = sat * torch.minimum(light, 1 - light)
    channels = []
    for n in (0, 8, 4):
        k = (n + hue * 12) % 12
        channels.append(light - a * torch.minimum(k - 3, 9 - k).clamp(-1, 1))
    return torch.stack(channels, -3)


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
    return ([sum(m * k for m, k in zip(mean, _LUMA))], [sum(s * k for s, k in zip(std, _LUMA))])
