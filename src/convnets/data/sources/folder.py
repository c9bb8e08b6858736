"""``folder:DIR`` or an existing directory: ``DIR/<class>/<images>``.

Where ``DIR`` has ``train/`` and ``val/`` (or ``test/``) subfolders, the split's
subfolder is used (for the test split, whichever of val/ and test/ exists, val/ first)
and the class list comes from ``train/``; otherwise every tenth file of each class
(sorted by path) is held out as the test split and the rest is the training split.
Files are found by :mod:`convnets.data.folders`; the normalisation is ImageNet's, the
preset ``imagenet``.
"""
from __future__ import annotations

import os

from ...errors import DataError
from ..folders import IMG_EXTENSIONS, class_dirs, require_folder, scan_classes
from ..image_folder import ImageFolderDataset
from ..images import display_path
from ...models.conventions import IMAGENET_MEAN, IMAGENET_STD
from . import Opened, Request, register_source

_VAL_NAMES = ("val", "test")


def _hold_out(samples: list[tuple[str, int]], split: str) -> list[tuple[str, int]]:
    """Every tenth file of each class (in sorted order) is the test split, the rest train:
    the same split on every machine, and never a test image seen in training."""
    rank: dict[int, int] = {}
    kept = []
    for path, label in samples:
        k = rank[label] = rank.get(label, -1) + 1
        if (k % 10 == 9) == (split != "train"):
            kept.append((path, label))
    return kept


def open_folder(request: Request) -> Opened:
    root, split = os.path.expanduser(request.arg), request.split
    where = f"folder:{root}"
    expected = "expected DIR/<class>/<image files>, or DIR/train/<class>/ and DIR/val/<class>/"
    require_folder(root, where, expected)
    train_dir = os.path.join(root, "train")
    val_dirs = [os.path.join(root, v) for v in _VAL_NAMES if os.path.isdir(os.path.join(root, v))]
    if os.path.isdir(train_dir) or val_dirs:
        if split == "train":
            if not os.path.isdir(train_dir):
                raise DataError(f"{where}: no train/ folder beside {os.path.basename(val_dirs[0])}/; {expected}")
            sub = train_dir
        else:
            if not val_dirs:
                raise DataError(f"{where}: no val/ or test/ folder beside train/; {expected}")
            sub = val_dirs[0]
        class_root = train_dir if os.path.isdir(train_dir) else sub
    else:
        sub = class_root = root
    classes = class_dirs(class_root)
    if not classes:
        raise DataError(f"{where}: no class folders in {class_root}; {expected}")
    samples = scan_classes(sub, classes, where, root)
    if sub == root:  # one flat folder: hold out a fixed tenth of each class for testing
        samples = _hold_out(samples, split)
    if not samples:
        raise DataError(f"{where}: no image files ({', '.join(IMG_EXTENSIONS[:4])}, ...) "
                        f"{'held out ' if split != 'train' and sub == root else ''}under {sub}; {expected}")
    # Class names are for printing and plotting: folder names that are not UTF-8 (made on
    # another system) keep their bytes as \xNN escapes.
    dataset = ImageFolderDataset(samples, [display_path(c) for c in classes],
                                 fail_fast=request.fail_fast, root=sub,
                                 max_pixels=request.max_pixels)
    return Opened(dataset, "imagenet", IMAGENET_MEAN, IMAGENET_STD)


register_source("folder", open_folder, paths=True, usage="folder:DIR or an image-folder path")
