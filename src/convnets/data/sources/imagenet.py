"""``imagenet:DIR``: ``DIR/train/<wnid>/*.JPEG`` and ``DIR/val/<wnid>/*.JPEG`` (the
validation images sorted into class folders). Classes are the sorted wnids of train/
(attribute ``wnids``); with all 1,000 ILSVRC-2012 classes, ``classes`` holds the
human-readable names of ``convnets.imagenet_classes()``, which follow that order."""
from __future__ import annotations

import os

from ...errors import DataError
from ..folders import class_dirs, entries, is_image_name, require_folder, scan_classes
from ..image_folder import ImageFolderDataset
from ..images import display_path
from ...models.conventions import IMAGENET_MEAN, IMAGENET_STD
from . import Opened, Request, register_source


def _imagenet_names(wnids: list[str]) -> list[str]:
    """Human-readable names where the directory holds the 1,000 ILSVRC-2012 classes (whose
    standard order, that of convnets.imagenet_classes(), is the sorted wnids)."""
    if len(wnids) != 1000:
        return wnids
    try:
        from ...models.classes import imagenet_classes
        names = list(imagenet_classes())
    except (ImportError, AttributeError):
        return wnids
    return names if len(names) == 1000 else wnids


def open_imagenet(request: Request) -> Opened:
    root, split = os.path.expanduser(request.arg), request.split
    where = f"imagenet:{root}"
    expected = ("expected train/<wnid>/*.JPEG and val/<wnid>/*.JPEG "
                "(ILSVRC-2012, validation images sorted into class folders)")
    require_folder(root, where, expected)
    sub = os.path.join(root, split)
    if not os.path.isdir(sub):
        raise DataError(f"{where}: no {split}/ folder; {expected}")
    class_root = os.path.join(root, "train") if os.path.isdir(os.path.join(root, "train")) else sub
    wnids = class_dirs(class_root)
    for d in {class_root, sub}:
        if not class_dirs(d):
            flat = any(is_image_name(e.name) for e in entries(d))
            hint = f"; the images lie directly in {d}, sort them into class folders" if flat else ""
            raise DataError(f"{where}: no class folders in {d}; {expected}{hint}")
    samples = scan_classes(sub, wnids, where, root)
    if not samples:
        raise DataError(f"{where}: no image files under {sub}; {expected}")
    dataset = ImageFolderDataset(samples, _imagenet_names([display_path(w) for w in wnids]),
                                 fail_fast=request.fail_fast, root=sub,
                                 max_pixels=request.max_pixels)
    dataset.wnids = wnids
    return Opened(dataset, "imagenet", IMAGENET_MEAN, IMAGENET_STD)


register_source("imagenet", open_imagenet)
