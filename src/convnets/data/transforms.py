"""The papers' augmentation and evaluation recipes, as named presets.

A preset fixes the geometry and augmentation; the dataset supplies the normalisation
statistics (its own per-channel mean and std), so that any preset can be used with any
dataset. Every pipeline accepts a PIL image or a ``(C, H, W)`` tensor (uint8 in [0, 255]
or float in [0, 1]) and returns a float32 tensor of the model's ``input_size`` (except
"full", which keeps the whole 256/224-scaled square, and "original", which keeps the
image as decoded, both for multi-view evaluation).

Sizes scale with the model's input: the ImageNet presets crop ``H x W`` from an image
resized to ``256/224`` of that (256 for 224, 146 for 128), the CIFAR presets pad by
``4/32`` of the crop.

A training pipeline runs in three stages: geometry on the decoded image, colour on
float RGB in [0, 1] (the scale of the PCA eigenvalues), then, for presets that follow
Torch code which augments after normalising (``gunn-cifar``), steps on the normalised
tensor, where zero is the dataset's mean colour. Each preset is one row of ``PRESETS``;
the operations without a torchvision equal live in :mod:`convnets.data.augment` and
:mod:`convnets.data.colour` (and are importable from here too). A preset that
``whitens`` (``nin-cifar``) puts the GCN + ZCA whitening fitted on the training split
(:mod:`convnets.data.whitening`) in place of the normalisation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..errors import ConfigError
from ..models.conventions import IMAGENET_MEAN, IMAGENET_STD
from .augment import (MAX_ASPECT, CentralFraction, InceptionCrop, Jigsaw, MatchChannels,
                      RandomShorterSide, ShorterSideResize, match_stats)
from .colour import (IMAGENET_EIGVAL, IMAGENET_EIGVEC, ColorJitter, Lighting,
                     PhotometricDistortions, RandomHSL)
from .whitening import Whiten, Whitening

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "IMAGENET_EIGVAL", "IMAGENET_EIGVEC",
    "ColorJitter", "Jigsaw", "Lighting", "MatchChannels", "ShorterSideResize", "MAX_ASPECT",
    "Preset", "Stages", "PRESETS", "build_transform", "list_presets", "match_stats",
]

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
    """One recipe: its training and evaluation pipelines, and where it comes from.
    ``whitens``: the per-channel normalisation is replaced by global contrast
    normalisation and ZCA whitening fitted on the training split
    (:mod:`convnets.data.whitening`), so the ``normalised`` steps see whitened images."""

    name: str
    description: str
    source: str
    train: Stages
    eval: Stages
    whitens: bool = False


def _resize(h: int, w: int) -> list:
    return [v2.Resize((h, w), antialias=True)]


def _cifar_crop(h: int, w: int) -> v2.RandomCrop:
    return v2.RandomCrop((h, w), padding=round(4 * h / 32))


def _flip_and_shift(h: int, w: int) -> list:
    # The Torch codes' order (fb.resnet.torch's cifar10.lua): after normalisation, so the
    # zero padding is the mean colour (for a whitened image, the whitened mean).
    return [v2.RandomHorizontalFlip(), _cifar_crop(h, w)]


def _centre_crop(h: int, w: int, interpolation=v2.InterpolationMode.BILINEAR) -> list:
    return [ShorterSideResize(_resize_side(min(h, w)), interpolation=interpolation),
            v2.CenterCrop((h, w))]


def _central_square(h: int, w: int) -> list:
    side = _resize_side(min(h, w))
    return [ShorterSideResize(side), v2.CenterCrop(side)]


def _scaled(side: int, h: int, w: int) -> int:
    """A paper's image side for a 224 crop, at the model's input size."""
    return round(side * min(h, w) / 224)


def _fixed_scale_crop(side: int) -> Steps:
    """VGG's training at a fixed scale S (Sec. 3.1): shorter side to S, a random crop of
    the input size, its mirror with probability 1/2."""
    return lambda h, w: [ShorterSideResize(_scaled(side, h, w)), v2.RandomCrop((h, w)),
                         v2.RandomHorizontalFlip()]


def _jittered_scale_crop(low: int, high: int) -> Steps:
    """Scale jittering (VGG Sec. 3.1; the ResNet paper Sec. 3.4): shorter side to S drawn
    from [low, high] per image, then a random crop of the input size and the flip."""
    return lambda h, w: [RandomShorterSide(_scaled(low, h, w), _scaled(high, h, w)),
                         v2.RandomCrop((h, w)), v2.RandomHorizontalFlip()]


def _scale_centre_crop(side: int) -> Steps:
    """The centre crop of the image scaled to shorter side ``side`` (VGG's test scale Q)."""
    return lambda h, w: [ShorterSideResize(_scaled(side, h, w)), v2.CenterCrop((h, w))]


def _lighting(h: int, w: int) -> list:
    return [Lighting()]


def _tf_central_crop(h: int, w: int) -> list:
    # TF-slim's inception_preprocessing.preprocess_for_eval: central 87.5% of each side,
    # then a bilinear resize without antialiasing, as tf.image.resize_bilinear does.
    return [CentralFraction(0.875), v2.Resize((h, w), antialias=False)]


def _vgg(name: str, scale: str, train: Steps, test_side: int, source: str) -> Preset:
    """A VGG preset (Simonyan & Zisserman 2015): its training scale, then a random crop,
    the flip and AlexNet's RGB colour shift (Sec. 3.1); the centre crop of the image at
    the test scale Q (Sec. 4.1; dense and multi-crop testing: preset full with --crops)."""
    return Preset(name, f"{scale} + random 224 crop + flip + PCA lighting (train); shorter side "
                  f"{test_side} + centre crop 224 (eval)",
                  f"Simonyan & Zisserman 2015, Sec. 3.1: {source}; random crops, flips and "
                  "AlexNet's RGB colour shift; a centre crop at Q stands in for dense testing",
                  train=Stages(train, colour=_lighting), eval=Stages(_scale_centre_crop(test_side)))


def _bicubic_sized_crop(h: int, w: int) -> list:
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
           train=Stages(_resize, normalised=lambda h, w: [*_flip_and_shift(h, w), Jigsaw()]),
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
           train=Stages(_bicubic_sized_crop,
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
    # --- the papers' recipes for VGG, ResNet, the Inception line, WRN, DenseNet, DPN, NiN ---
    _vgg("vgg-s256", "shorter side 256", _fixed_scale_crop(256), 256,
         "single-scale training at S = 256; Sec. 4.1: test scale Q = S"),
    _vgg("vgg-s384", "shorter side 384", _fixed_scale_crop(384), 384,
         "single-scale training at S = 384 (started from the S = 256 weights); Sec. 4.1: "
         "test scale Q = S"),
    _vgg("vgg-jitter", "shorter side drawn from [256, 512] per image",
         _jittered_scale_crop(256, 512), 384,
         "multi-scale training, S uniform in [256, 512]; Sec. 4.1: test scale Q = (256 + "
         "512) / 2"),
    Preset("resnet-paper", "shorter side drawn from [256, 480] per image + random 224 crop + "
           "flip + PCA lighting (train); shorter side 256 + centre crop 224 (eval)",
           "He et al. 2016, Sec. 3.4: scale augmentation in [256, 480], 224 crops and flips, "
           "\"the standard color augmentation\" of AlexNet; per-channel mean (and std) "
           "instead of the per-pixel mean. The paper tests 10-crop at 256 (evaluate's "
           "ten_crop); the eval pipeline is its centre crop",
           train=Stages(_jittered_scale_crop(256, 480), colour=_lighting),
           eval=Stages(_centre_crop)),
    Preset("inception", "patch of 8-100% of the area, aspect 3/4-4/3, resized by a random "
           "method (bilinear, area, nearest, bicubic) + flip + brightness, saturation, hue, "
           "contrast in a random order (train); central 87.5% resized (eval)",
           "Szegedy et al. 2015 (GoogLeNet), Sec. 6: the patch sizes, aspect ratios, random "
           "interpolation and Howard's photometric distortions; the paper gives no "
           "strengths, so those of TF-slim's inception_preprocessing.py (distort_color: "
           "brightness 32/255, saturation and contrast 0.5-1.5, hue 0.2, its four orders), "
           "whose evaluation crop (central_crop 0.875) is the eval pipeline",
           train=Stages(lambda h, w: [InceptionCrop((h, w)), v2.RandomHorizontalFlip()],
                        colour=lambda h, w: [PhotometricDistortions()]),
           eval=Stages(_tf_central_crop)),
    Preset("wrn-cifar", "4-pixel reflection pad + random crop + horizontal flip (train); "
           "normalise only (eval)",
           "Zagoruyko & Komodakis 2016, Sec. 4: \"horizontal flips and random crops from "
           "image padded by 4 pixels on each side, filling missing pixels with reflections "
           "of original image\"",
           train=Stages(lambda h, w: [*_resize(h, w), v2.RandomCrop(
               (h, w), padding=round(4 * h / 32), padding_mode="reflect"),
               v2.RandomHorizontalFlip()]),
           eval=Stages(_resize)),
    Preset("densenet-cifar", "normalise, then flip + 4-pixel mean-colour pad + random crop "
           "(train); normalise only (eval)",
           "Huang et al. 2017, Sec. 4.1: \"mirroring/shifting\"; the authors' code "
           "(liuzhuang13/DenseNet, fb.resnet.torch's datasets/cifar10.lua): ColorNormalize, "
           "HorizontalFlip(0.5), RandomCrop(32, 4) with zero padding, which after "
           "normalisation is the mean colour (gunn-cifar without the Jigsaw)",
           train=Stages(_resize, normalised=_flip_and_shift),
           eval=Stages(_resize)),
    Preset("dpn", "random-resized crop 8-100%, aspect 3/4-4/3, bicubic + flip + random HSL "
           "(train); bicubic resize 256 + centre crop 224 (eval)",
           "Chen et al. 2017 (DPN) give no augmentation; the authors' cypw/DPNs README: "
           "mirror, crop 8-100%, aspect 3/4-4/3, random HSL [20, 40, 50] (MXNet's random_h, "
           "random_s, random_l), bicubic resizing, no PCA lighting; its score.py tests a "
           "bicubic centre crop",
           train=Stages(_bicubic_sized_crop, colour=lambda h, w: [RandomHSL(20, 40, 50)]),
           eval=Stages(lambda h, w: _centre_crop(h, w, v2.InterpolationMode.BICUBIC))),
    Preset("nin-cifar", "global contrast normalisation + ZCA whitening fitted on the training "
           "split, then flip + 4-pixel pad with the whitened mean + random crop (train); the "
           "whitening only (eval)",
           "Lin et al. 2014 (NiN), Sec. 4.2: GCN and ZCA whitening as Goodfellow et al. 2013 "
           "(maxout) did, with their augmentation, translation and flipping; the whitening of "
           "pylearn2's make_cifar10_gcn_whitened.py (GCN scale 55, ZCA filter_bias 0.1); the "
           "translation (4 pixels) is not given in either paper",
           train=Stages(_resize, normalised=_flip_and_shift),
           eval=Stages(_resize), whitens=True),
    # --- this package's own ---
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
    Preset("original", "the decoded image as it is (any size), normalised: the input of the "
           "test protocols, which resize and crop it themselves",
           "convnets.engine.protocols: every paper's multi-view test starts from the original "
           "image", train=Stages(_nothing), eval=Stages(_nothing)),
)}


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description, in a fixed order."""
    return {name: p.description for name, p in PRESETS.items()}


def build_transform(preset: str, *, train: bool, input_size: tuple[int, int, int],
                    mean: Sequence[float], std: Sequence[float],
                    whitening: Whitening | None = None) -> Callable:
    """The pipeline of ``preset`` for a model taking ``input_size = (C, H, W)``.

    ``mean``/``std`` are the dataset's per-channel statistics of values in [0, 1]
    (one value for grey data, three for RGB); they are adapted to ``C`` the same way as
    the image (replicated, or luma-weighted for one-channel models from RGB data). A
    preset that ``whitens`` takes the ``whitening`` fitted on its training split in
    their place (:func:`convnets.data.whitening.whitening_for`).
    """
    c, h, w = input_size
    if preset not in PRESETS:
        raise ConfigError.of("preset", f"{preset!r} is unknown; choose from {', '.join(PRESETS)}")
    row = PRESETS[preset]
    if row.whitens and whitening is None:
        raise ConfigError.of("preset", f"{preset!r} needs the whitening fitted on its training "
                             "split, which is not at hand (a run keeps it in "
                             "whitening.safetensors; an ONNX export does not carry it)")
    if whitening is not None and not row.whitens:
        raise ValueError(f"preset {preset!r} does not whiten; no whitening may be given")
    if whitening is not None and tuple(whitening.input_size) != (c, h, w):
        raise ValueError(f"the whitening is fitted at {whitening.input_size}, not {input_size}")
    stages = row.train if train else row.eval
    mean_c, std_c = match_stats(mean, std, c)
    normalise = Whiten(whitening) if whitening is not None else v2.Normalize(mean_c, std_c)
    ops = [_ToImage(), *stages.geometry(h, w), v2.ToDtype(torch.float32, scale=True),
           *[_RGBOnly(op) for op in stages.colour(h, w)],
           MatchChannels(c), normalise, *stages.normalised(h, w)]
    pipeline = v2.Compose(ops + [_Plain()])
    # _ToImage takes a PIL image or the equal uint8 (C, H, W) tensor: datasets may decode
    # straight into the tensor (images.load_rgb_tensor).
    pipeline.takes_uint8_tensors = True
    return pipeline


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
