"""The papers' colour augmentations, on float RGB in [0, 1]: AlexNet's PCA lighting,
fb.resnet.torch's colour jitter, TF-slim's photometric distortions for the Inception
line and MXNet's random HSL for DPN, with the colour-space helpers they need. Each
accepts ``(3, H, W)`` or a batch, with one draw per image."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.transforms import v2

__all__ = ["IMAGENET_EIGVAL", "IMAGENET_EIGVEC", "LUMA", "Lighting", "ColorJitter",
           "PhotometricDistortions", "RandomHSL", "scale_saturation", "rgb_to_hls", "hls_to_rgb"]

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
LUMA = (0.299, 0.587, 0.114)


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
        luma = torch.tensor(LUMA, dtype=img.dtype).view(3, 1, 1)
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
