"""Write a dataset's images out as PNG files, one folder per class.

``convnets export-images digits DIR`` gives a user images to try ``predict`` on, taken
from data the network never trained on (the test split by default). The layout,
``DIR/<class>/<index>.png``, is an image folder: ``--data folder:DIR`` reads it back.
Pixels are written as the dataset holds them, before any transform (the digits at their
8x8 resolution, values 0..16 scaled to 0..255 grey).
"""
from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, DataError

__all__ = ["export_images", "to_pil"]


def to_pil(image) -> Image.Image:
    """A raw dataset image (a PIL image, or a (C, H, W) tensor, uint8 or float in [0, 1])
    as an 8-bit grey or RGB PIL image."""
    if isinstance(image, Image.Image):
        return image
    x = image.detach().cpu()
    if x.is_floating_point():
        x = (x.clamp(0, 1) * 255).round()
    arr = x.to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else np.ascontiguousarray(arr),
                           "L" if arr.shape[2] == 1 else "RGB")


def _folder_name(name: str) -> str:
    return name.replace(os.sep, "_").replace("\0", "_") or "_"


def export_images(spec: str | None, out: str, *, split: str = "test",
                  per_class: int | None = None) -> dict[str, int]:
    """Write the images of ``split`` (at most ``per_class`` of each class, the first in the
    split's order) to ``out/<class>/<index>.png``; returns the count per class. ``out``
    must not exist or be empty, so no file of the user's is ever overwritten."""
    from .datasets import open_dataset

    if per_class is not None and per_class < 1:
        raise ConfigError.of("per_class", f"must be at least 1, got {per_class}")
    if spec is not None and str(spec).startswith("synthetic"):
        raise DataError("synthetic data are random tensors, not images: nothing to export")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise DataError(f"{out} exists and is not an empty folder; choose a new one")
    dataset = open_dataset(spec, split, input_size=(3, 8, 8), train_transform=False)
    width = len(str(len(dataset) - 1))
    counts = {name: 0 for name in dataset.classes}
    for i, label in enumerate(dataset.targets):
        name = dataset.classes[label]
        if per_class is not None and counts[name] >= per_class:
            continue
        folder = os.path.join(out, _folder_name(name))
        os.makedirs(folder, exist_ok=True)
        to_pil(dataset.raw_image(i)).save(os.path.join(folder, f"{i:0{width}d}.png"))
        counts[name] += 1
    return counts
