"""The papers' test protocols, one row each, and the views they take of an image.

A protocol starts from the decoded original image (never from a preset's crop) and
resizes it itself. Its sizes are those of a 224-pixel network and scale with the input
the model was trained at (``scale * input / 224``): a 32-pixel digit network evaluated
with ``alexnet-10crop`` takes 32-pixel crops of the original resized to 37.

Kinds of view, each taken at every scale (the shorter side resized to it, the aspect
kept, bilinear with antialiasing):

- ``centre``: the centre crop.
- ``ten``: the central square (AlexNet's 256x256 patch), its 4 corner and centre crops.
- ``grid``: a ``grid`` x ``grid`` regular grid of crops over the whole resized image
  (VGG Sec. 4.3).
- ``googlenet``: 3 squares along the longer side (left, centre, right, or top, centre,
  bottom), of each its 4 corner and centre crops and the square resized to the crop
  (Szegedy et al. 2015, Sec. 7).
- ``dense``: the whole resized image through the convolutionized network, the class-score
  map averaged over positions (VGG Sec. 3.2, ResNet Sec. 3.4).

``mirrors`` adds the horizontal flip of every view, only where the data's training
augmentation flips (:func:`flips_in_training`): the digits never do. ``pool`` turns a
score map into scores: ``mean``, or ``mean-max`` (the mean of global average and global
max pooling, DPN, Chen et al. 2017, Sec. 4.1). Views are combined by averaging softmax
outputs, as every paper of the zoo does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = ["Protocol", "PROTOCOLS", "CROPS_PROTOCOLS", "View", "get_protocol", "protocol_views",
           "views_per_image", "flips_in_training", "scaled_sizes"]

VIEW_KINDS = ("preset", "centre", "ten", "grid", "googlenet", "dense")


@dataclass(frozen=True)
class Protocol:
    """One paper's test protocol: which views, at which shorter sides (``scales``, at a
    224-pixel input), crops of ``crop`` pixels, mirrored or not, pooled how."""

    name: str
    source: str
    views: tuple[str, ...]
    scales: tuple[int, ...] = ()
    crop: int = 224
    mirrors: bool = False
    pool: str = "mean"
    grid: int = 5


# One row per protocol. "center" is the run's own evaluation preset (what training
# reports); every other row reads the original image.
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("center", "the evaluation preset of the run or dataset (resize 256, centre 224 on "
             "ImageNet): the single-crop figure training reports", ("preset",)),
    Protocol("alexnet-10crop", "Krizhevsky et al. 2012, Sec. 4.1 (and Zeiler & Fergus 2014, "
             "Sec. 3): the 4 corner and centre 224 patches of the central 256x256 patch, and "
             "their mirrors", ("ten",), (256,), mirrors=True),
    Protocol("googlenet-1crop", "Szegedy et al. 2015, Table 3, 1 crop: shorter side 256, centre "
             "224 (our choice of resize; the paper gives none)", ("centre",), (256,)),
    Protocol("googlenet-10crop", "Szegedy et al. 2015, Table 3, 10 crops: taken as AlexNet's "
             "(the paper does not describe them)", ("ten",), (256,), mirrors=True),
    Protocol("googlenet-144crop", "Szegedy et al. 2015, Sec. 7: shorter side 256, 288, 320, "
             "352; 3 squares along the longer side; 4 corners + centre 224 + the square "
             "resized to 224; and mirrors: 4 x 3 x 6 x 2 = 144", ("googlenet",),
             (256, 288, 320, 352), mirrors=True),
    Protocol("vgg-dense", "Simonyan & Zisserman 2015, Sec. 3.2 and Table 5: the convolutionized "
             "network on the whole image at Q = 256, 384, 512, and its flip",
             ("dense",), (256, 384, 512), mirrors=True),
    Protocol("vgg-multicrop", "Simonyan & Zisserman 2015, Sec. 4.3 and Table 5: a 5x5 grid of "
             "224 crops and their flips at Q = 256, 384, 512 (150 crops)", ("grid",),
             (256, 384, 512), mirrors=True),
    Protocol("vgg-multicrop+dense", "Simonyan & Zisserman 2015, Table 5: multi-crop and dense "
             "combined (their best single-network result)", ("grid", "dense"),
             (256, 384, 512), mirrors=True),
    Protocol("resnet-multiscale", "He et al. 2015, Sec. 3.4: fully convolutional, scores "
             "averaged over shorter sides 224, 256, 384, 480, 640 (no flips named)",
             ("dense",), (224, 256, 384, 480, 640)),
    Protocol("centre-320", "He et al. 2016 (pre-activation ResNet-200), Xie et al. 2017 "
             "(ResNeXt), Hu et al. 2018 (SENet-154): one 320x320 centre crop (resize to "
             "366 = 320 x 256/224: our choice)", ("centre",), (366,), crop=320),
    Protocol("centre-299", "Xie et al. 2017 and Hu et al. 2018: one 299x299 centre crop "
             "(resize to 342 = 299 x 256/224: our choice)", ("centre",), (342,), crop=299),
    Protocol("dpn-320-meanmax", "Chen et al. 2017 (DPN), Sec. 4.1: the 320x320 centre crop "
             "through the convolutionized network, mean-max pooling of the score map",
             ("centre",), (366,), crop=320, pool="mean-max"),
    Protocol("ten+dense", "AlexNet's 10 crops and VGG's dense evaluation at 256, combined "
             "(the old --crops ten+dense)", ("ten", "dense"), (256,), mirrors=True),
)}

# The old --crops names, each a protocol.
CROPS_PROTOCOLS = {"center": "center", "ten": "alexnet-10crop", "dense": "vgg-dense",
                   "ten+dense": "ten+dense", "multi": "vgg-multicrop",
                   "multi+dense": "vgg-multicrop+dense"}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ConfigError.of("protocol", f"{name!r} is unknown; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def flips_in_training(preset: str | None) -> bool:
    """Whether the training pipeline of ``preset`` mirrors images: the data's rule, which a
    protocol's mirrored views follow (derived from the preset's own steps)."""
    from torchvision.transforms import v2

    from ..data.transforms import PRESETS

    if preset not in PRESETS:
        return False
    train = PRESETS[preset].train
    steps = [*train.geometry(32, 32), *train.colour(32, 32), *train.normalised(32, 32)]
    return any(isinstance(s, v2.RandomHorizontalFlip) for s in steps)


def scaled_sizes(protocol: Protocol, input_hw: tuple[int, int],
                 scales: Sequence[int] | None = None) -> tuple[list[int], tuple[int, int]]:
    """The shorter sides and the crop ``(h, w)`` in pixels for a model trained at
    ``input_hw``: the protocol's 224-pixel sizes times ``input / 224``; ``scales``, where
    given, are already pixels and replace the protocol's."""
    h, w = input_hw
    ratio = min(h, w) / 224
    crop = (round(protocol.crop * h / 224), round(protocol.crop * w / 224))
    sides = list(scales) if scales else [max(1, round(q * ratio)) for q in protocol.scales]
    return sides, crop


def views_per_image(protocol: Protocol, n_scales: int, mirrors: bool) -> int:
    """How many views each image is evaluated on (per ensemble member)."""
    per_scale = {"preset": 1, "centre": 1, "ten": 5, "grid": protocol.grid ** 2,
                 "googlenet": 18, "dense": 1}
    scales = 1 if protocol.views == ("preset",) else n_scales
    return sum(per_scale[v] for v in protocol.views) * scales * (2 if mirrors else 1)


@dataclass(frozen=True)
class View:
    """One view of a batch of same-sized images ``(B, C, h, w)``; ``dense`` when it goes
    whole through the convolutionized network."""

    image: torch.Tensor
    dense: bool = False


def resize_shorter(x: torch.Tensor, side: int) -> torch.Tensor:
    """``x`` ``(B, C, H, W)`` with its shorter side resized to ``side``, the aspect kept."""
    h, w = x.shape[-2:]
    size = (round(h * side / min(h, w)), round(w * side / min(h, w)))
    if size == (h, w):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _crop(x: torch.Tensor, top: int, left: int, hw: tuple[int, int]) -> torch.Tensor:
    return x[..., top:top + hw[0], left:left + hw[1]]


def _centre(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    h, w = x.shape[-2:]
    return _crop(x, (h - hw[0]) // 2, (w - hw[1]) // 2, hw)


def _five(x: torch.Tensor, hw: tuple[int, int]) -> list[torch.Tensor]:
    """The 4 corner crops (top-left, top-right, bottom-left, bottom-right) and the centre."""
    h, w = x.shape[-2:]
    corners = [(0, 0), (0, w - hw[1]), (h - hw[0], 0), (h - hw[0], w - hw[1])]
    return [_crop(x, t, l, hw) for t, l in corners] + [_centre(x, hw)]


def _offsets(size: int, crop: int, n: int) -> list[int]:
    return [round(i * (size - crop) / (n - 1)) for i in range(n)] if n > 1 else [(size - crop) // 2]


def _squares(x: torch.Tensor) -> list[torch.Tensor]:
    """GoogLeNet's 3 squares along the longer side: left, centre, right (or top, centre,
    bottom)."""
    h, w = x.shape[-2:]
    side = min(h, w)
    if w >= h:
        return [_crop(x, 0, left, (side, side)) for left in (0, (w - side) // 2, w - side)]
    return [_crop(x, top, 0, (side, side)) for top in (0, (h - side) // 2, h - side)]


def _at_scale(xs: torch.Tensor, kind: str, crop: tuple[int, int], grid: int) -> list[View]:
    if kind == "dense":
        return [View(xs, dense=True)]
    h, w = xs.shape[-2:]
    if kind == "ten":
        side = min(h, w)
        xs, (h, w) = _centre(xs, (side, side)), (side, side)
    if crop[0] > h or crop[1] > w:
        raise ConfigError(f"crop {crop[0]}x{crop[1]} is larger than the resized image {h}x{w}")
    if kind == "centre":
        return [View(_centre(xs, crop))]
    if kind == "ten":
        return [View(c) for c in _five(xs, crop)]
    if kind == "grid":
        return [View(_crop(xs, t, l, crop)) for t in _offsets(h, crop[0], grid)
                for l in _offsets(w, crop[1], grid)]
    if kind == "googlenet":
        views = []
        for square in _squares(xs):
            resized = F.interpolate(square, size=crop, mode="bilinear", align_corners=False,
                                    antialias=True)
            views += [View(c) for c in _five(square, crop)] + [View(resized)]
        return views
    raise ValueError(f"unknown view kind {kind!r}")


def protocol_views(x: torch.Tensor, protocol: Protocol, sides: Sequence[int],
                   crop: tuple[int, int], mirrors: bool) -> Iterator[View]:
    """Every view of the original images ``x`` ``(B, C, H, W)`` (one size) under
    ``protocol`` at the shorter sides ``sides`` with crops ``crop``, each followed by its
    mirror where ``mirrors``."""
    for side in sides:
        xs = resize_shorter(x, side)
        for kind in protocol.views:
            for view in _at_scale(xs, kind, crop, protocol.grid):
                yield view
                if mirrors:
                    yield View(view.image.flip(-1), view.dense)
