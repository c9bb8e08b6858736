"""The papers' augmentation and evaluation recipes, as named presets.

A preset fixes the geometry and augmentation; the dataset supplies the normalisation
statistics (its own per-channel mean and std), so that any preset can be used with any
dataset. Every pipeline accepts a PIL image or a ``(C, H, W)`` tensor (uint8 in [0, 255]
or float in [0, 1]) and returns a float32 tensor of the model's ``input_size`` (except
"full", which keeps the whole 256/224-scaled square for multi-view evaluation).

Sizes scale with the model's input: the ImageNet presets crop ``H x W`` from an image
resized to ``256/224`` of that (256 for 224, 146 for 128), the CIFAR presets pad by
``4/32`` of the crop.

A training pipeline runs in three stages: geometry on the decoded image, colour on
float RGB in [0, 1] (the scale of the PCA eigenvalues), then, for presets that follow
Torch code which augments after normalising (``gunn-cifar``), steps on the normalised
tensor, where zero is the dataset's mean colour.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..errors import ConfigError

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "IMAGENET_EIGVAL", "IMAGENET_EIGVEC",
    "ColorJitter", "Jigsaw", "Lighting", "MatchChannels", "ShorterSideResize", "MAX_ASPECT",
    "Preset", "Stages", "PRESETS", "build_transform", "list_presets", "match_stats",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

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


def _resize_side(size: int) -> int:
    """The resize side for a crop of ``size``: the papers' 256 for 224."""
    return round(size * 256 / 224)


Steps = Callable[[int, int], list]  # the model's input (H, W) -> the transforms of one stage


def _nothing(h: int, w: int) -> list:
    return []


@dataclass(frozen=True)
class Stages:
    """The steps of one pipeline, by stage: ``geometry`` on the decoded image, ``colour``
    on float RGB in [0, 1] (skipped for grey images), ``normalised`` on the normalised
    tensor (where zero is the dataset's mean colour)."""

    geometry: Steps
    colour: Steps = _nothing
    normalised: Steps = _nothing


@dataclass(frozen=True)
class Preset:
    """One recipe: its training and evaluation pipelines, and where it comes from."""

    name: str
    description: str
    source: str
    train: Stages
    eval: Stages


def _resize(h: int, w: int) -> list:
    return [v2.Resize((h, w), antialias=True)]


def _cifar_crop(h: int, w: int) -> v2.RandomCrop:
    return v2.RandomCrop((h, w), padding=round(4 * h / 32))


def _centre_crop(h: int, w: int, interpolation=v2.InterpolationMode.BILINEAR) -> list:
    return [ShorterSideResize(_resize_side(min(h, w)), interpolation=interpolation),
            v2.CenterCrop((h, w))]


def _central_square(h: int, w: int) -> list:
    side = _resize_side(min(h, w))
    return [ShorterSideResize(side), v2.CenterCrop(side)]


def _fb_resnet_crop(h: int, w: int) -> list:
    # torchvision's crop draws the aspect log-uniformly and falls back to a centre crop of
    # the clamped aspect after 10 misses; the Torch code draws it uniformly (then swaps w
    # and h with probability 1/2) and falls back to resize + centre crop. The flip
    # commutes with the colour steps, so it may come before them.
    return [v2.RandomResizedCrop((h, w), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                                 interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.RandomHorizontalFlip()]


def _digits_resize(h: int, w: int) -> list:
    return [v2.Resize((h, w), interpolation=v2.InterpolationMode.BILINEAR, antialias=False)]


# One row per preset, in the order list_presets() gives them.
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("cifar", "4-pixel pad + random crop + horizontal flip (train); normalise only (eval)",
           "He et al. 2016, Sec. 4.2: \"mirroring and shifting\" (the resize is a no-op for "
           "32x32 data fed to a 32x32 model)",
           train=Stages(lambda h, w: [*_resize(h, w), _cifar_crop(h, w), v2.RandomHorizontalFlip()]),
           eval=Stages(_resize)),
    Preset("gunn-cifar", "the GUNN authors' code: flip, 4-pixel mean-colour pad + random crop, "
           "then with p 2/3 a random circular shift along width or height (train); "
           "normalise only (eval)",
           "the GUNN authors' datasets/cifar10.lua (and cifar100.lua): ColorNormalize, then "
           "HorizontalFlip(0.5), RandomCrop(32, 4) with zero padding, which after "
           "normalisation is the mean colour, then Jigsaw",
           train=Stages(_resize, normalised=lambda h, w: [v2.RandomHorizontalFlip(),
                                                          _cifar_crop(h, w), Jigsaw()]),
           eval=Stages(_resize)),
    Preset("imagenet", "random-resized crop 8-100%, aspect 3/4-4/3, bilinear + flip, no colour "
           "augmentation (train); resize 256 + centre crop 224 (eval)",
           "the crop of Szegedy et al. 2015, Sec. 6, as torchvision's reference recipe",
           train=Stages(lambda h, w: [v2.RandomResizedCrop((h, w), antialias=True),
                                      v2.RandomHorizontalFlip()]),
           eval=Stages(_centre_crop)),
    Preset("fb-resnet", "fb.resnet.torch: random-resized crop 8-100%, aspect 3/4-4/3, bicubic + "
           "flip + colour jitter 0.4 + PCA lighting 0.1 (train); bicubic resize 256 + "
           "centre crop 224 (eval)",
           "fb.resnet.torch, datasets/imagenet.lua: RandomSizedCrop (bicubic), ColorJitter "
           "0.4, Lighting 0.1; its validation Scale(256) is bicubic too",
           train=Stages(_fb_resnet_crop,
                        colour=lambda h, w: [ColorJitter(0.4, 0.4, 0.4), Lighting(0.1)]),
           eval=Stages(lambda h, w: _centre_crop(h, w, v2.InterpolationMode.BICUBIC))),
    Preset("alexnet", "random 224 crop of the 256x256 image + flip + PCA lighting noise "
           "(train); centre 224 crop (eval)",
           "Krizhevsky et al. 2012, Sec. 2: shorter side to 256, central 256x256 patch; "
           "Sec. 4.1: random 224 patches and their mirrors, PCA lighting on float RGB",
           train=Stages(lambda h, w: [*_central_square(h, w), v2.RandomCrop((h, w)),
                                      v2.RandomHorizontalFlip()],
                        colour=lambda h, w: [Lighting()]),
           eval=Stages(_centre_crop)),
    Preset("digits", "bilinear resize + small random affine shift/rotation/scale (train); "
           "resize (eval)",
           "this package: bilinear upsampling of the 8x8 digits; no flips in training "
           "(mirrored digits are other shapes)",
           train=Stages(lambda h, w: [*_digits_resize(h, w), v2.RandomAffine(
               degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1))]),
           eval=Stages(_digits_resize)),
    Preset("full", "shorter side to 256/224 of the input, central square, no crop to the input "
           "size: the whole image for 10-crop, multi-crop and dense evaluation (no augmentation)",
           "AlexNet's test input (Krizhevsky et al. 2012, Sec. 2), left uncropped for "
           "evaluate()'s multi-view modes",
           train=Stages(_central_square), eval=Stages(_central_square)),
    Preset("none", "resize to the input size, normalise; no augmentation", "",
           train=Stages(_resize), eval=Stages(_resize)),
)}


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description, in a fixed order."""
    return {name: p.description for name, p in PRESETS.items()}


def build_transform(preset: str, *, train: bool, input_size: tuple[int, int, int],
                    mean: Sequence[float], std: Sequence[float]) -> Callable:
    """The pipeline of ``preset`` for a model taking ``input_size = (C, H, W)``.

    ``mean``/``std`` are the dataset's per-channel statistics of values in [0, 1]
    (one value for grey data, three for RGB); they are adapted to ``C`` the same way as
    the image (replicated, or luma-weighted for one-channel models from RGB data).
    """
    c, h, w = input_size
    if preset not in PRESETS:
        raise ConfigError.of("preset", f"{preset!r} is unknown; choose from {', '.join(PRESETS)}")
    stages = PRESETS[preset].train if train else PRESETS[preset].eval
    mean_c, std_c = match_stats(mean, std, c)
    ops = [_ToImage(), *stages.geometry(h, w), v2.ToDtype(torch.float32, scale=True),
           *[_RGBOnly(op) for op in stages.colour(h, w)],
           MatchChannels(c), v2.Normalize(mean_c, std_c), *stages.normalised(h, w)]
    pipeline = v2.Compose(ops + [_Plain()])
    # _ToImage takes a PIL image or the equal uint8 (C, H, W) tensor: datasets may decode
    # straight into the tensor (images.load_rgb_tensor).
    pipeline.takes_uint8_tensors = True
    return pipeline


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


class _ToImage(nn.Module):
    """PIL or tensor -> tv_tensors.Image, so that v2 treats it as the image."""

    def forward(self, img):
        return img if isinstance(img, tv_tensors.Image) else v2.functional.to_image(img)


class _RGBOnly(nn.Module):
    """Apply a colour transform only to 3-channel images (grey data passes unchanged)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.inner(img) if img.shape[-3] == 3 else img


class _Plain(nn.Module):
    """Return a plain tensor, so batches hold no tv_tensors subclasses."""

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return img.as_subclass(torch.Tensor)
