"""Datasets named by a short spec: ``open_dataset(spec, split, ...)``.

It returns a :class:`~convnets.data.protocol.LabelledDataset` of ``(image, label)``
pairs, read by the source the spec's prefix names (one module each in
:mod:`convnets.data.sources`) and transformed by a preset of
:mod:`convnets.data.transforms`. Spec forms (``SPEC_HELP``):

- ``None`` or ``"digits"``: scikit-learn's handwritten digits; ``"digits:CLASSES"`` some
  of them (:mod:`~convnets.data.sources.digits`).
- ``"synthetic[:N[:C]]"``: random tensors for measuring throughput
  (:mod:`~convnets.data.sources.synthetic`).
- ``"cifar10:DIR"``, ``"cifar100:DIR"``: the official "python version" directories
  (:mod:`~convnets.data.sources.cifar`).
- ``"imagenet:DIR"``: ``DIR/train/<wnid>/`` and ``DIR/val/<wnid>/``
  (:mod:`~convnets.data.sources.imagenet`).
- ``"folder:DIR"`` or an existing directory: ``DIR/<class>/<images>``, with or without
  train/ and val/ subfolders (:mod:`~convnets.data.sources.folder`).

Nothing is downloaded; a missing or malformed directory or file raises
:class:`~convnets.errors.DataError` (a ``ValueError``) with one line that says what was
expected. Splits are ``"train"`` and ``"val"``, with ``"test"`` a synonym of ``"val"``.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import DataError
from .arrays import ArrayDataset
from .image_folder import ImageFolderDataset
from .images import BadImageError, load_rgb
from .protocol import LabelledDataset
from .safe_pickle import restricted_pickle_load
from .sources import Request, find_source, spec_help
from .sources.cifar import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD
from .sources.digits import DIGITS_SPLIT_SEED, DIGITS_TEST_SIZE
from .sources.synthetic import SyntheticDataset
from .subsets import select_classes
from .transforms import build_transform
from .whitening import Whitening, whitening_for

__all__ = [
    "SPEC_HELP", "BadImageError", "open_dataset", "load_rgb", "restricted_pickle_load",
    "ArrayDataset", "SyntheticDataset", "ImageFolderDataset",
    "CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD",
    "DIGITS_SPLIT_SEED", "DIGITS_TEST_SIZE",
]

SPEC_HELP = spec_help()


def _check_input_size(input_size) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise DataError(f"input_size must be (C, H, W), got {input_size!r}") from None
    if c not in (1, 3) or h < 1 or w < 1:
        raise DataError(f"input_size must be (C, H, W) with C 1 or 3, got {input_size!r}")
    return c, h, w


def _split_name(split: str) -> str:
    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}: expected train, val or test")
    return "train" if split == "train" else "val"


def open_dataset(spec: str | None, split: str, *, input_size: tuple[int, int, int],
                 train_transform: bool, preset: str | None = None,
                 fail_fast: bool = False, max_pixels: int | None = None,
                 normalisation: tuple[Sequence[float], Sequence[float]] | None = None,
                 whitening: Whitening | None = None) -> LabelledDataset:
    """Open the dataset named by ``spec`` (see the module docstring) for ``split``.

    ``input_size`` is the model's ``(C, H, W)``: images come out as float32 tensors of
    that shape, normalised with the dataset's statistics, or with ``normalisation``
    (``(mean, std)``) where given: a network trained on other data sees these images as
    it saw its own. ``train_transform`` selects the preset's augmentation (True) or its
    evaluation pipeline (False). ``preset`` overrides the dataset's default (digits ->
    "digits", CIFAR -> "cifar", ImageNet and folders -> "imagenet"; synthetic data, which
    is no image and is never transformed, has "none" with mean 0 and std 1). ``fail_fast``
    makes an unreadable image file raise ``BadImageError`` instead of being skipped and
    counted; ``max_pixels`` bounds the pixels one image file may decode to (default:
    ``images.get_max_pixels()``). A preset that whitens (``nin-cifar``) is given
    ``whitening`` (a run's own fit), or else the whitening fitted on the training split of
    ``spec`` (:mod:`~convnets.data.whitening`).
    """
    input_size = _check_input_size(input_size)
    split = _split_name(split)
    source, arg = find_source(spec)
    opened = source.open(Request(arg, split, input_size, fail_fast, max_pixels))
    dataset, channels = opened.dataset, input_size[0]
    if opened.preset is None:  # already what the network takes
        chosen, mean, std = "none", (0.0,) * channels, (1.0,) * channels
    else:
        chosen = preset or opened.preset
        mean, std = (tuple(v) for v in (normalisation or (opened.mean, opened.std)))
        dataset.transform = build_transform(chosen, train=train_transform, input_size=input_size,
                                            mean=mean, std=std,
                                            whitening=whitening_for(chosen, spec, input_size,
                                                                    whitening))
    dataset.preset, dataset.mean, dataset.std = chosen, mean, std
    return select_classes(dataset, opened.selection)
