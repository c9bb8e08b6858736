"""``digits`` (the default) and ``digits:CLASSES``: scikit-learn's handwritten digits.

1,797 real 8x8 grey images, 10 classes, split by a stratified shuffle with seed 0 into
1,437 training and 360 test images; upsampled bilinearly to the model's input, values
scaled to [0, 1] and normalised with the training split's mean and std (of all ten
classes). ``digits:CLASSES`` keeps some of the classes (``digits:0-4``, ``digits:5,7,9``),
relabelled 0..k-1 and keeping their names (see :mod:`convnets.data.subsets`).
"""
from __future__ import annotations

import numpy as np
import torch

from ..arrays import ArrayDataset
from . import Opened, Request, register_source

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SIZE = 360  # of 1,797: 1,437 train / 360 test, stratified by class


def open_digits(request: Request) -> Opened:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = torch.from_numpy(data.images.astype(np.float32) / 16.0).unsqueeze(1)  # [0, 1]
    index = np.arange(len(images))
    train_idx, test_idx = train_test_split(index, test_size=DIGITS_TEST_SIZE,
                                           random_state=DIGITS_SPLIT_SEED, stratify=data.target)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    mean, std = _digits_stats(images[train_idx], request.input_size[1:])
    idx = train_idx if request.split == "train" else test_idx
    dataset = ArrayDataset(images[idx], data.target[idx].tolist(), [str(k) for k in range(10)])
    return Opened(dataset, "digits", (mean,), (std,), selection=request.arg or None)


def _digits_stats(images: torch.Tensor, size: tuple[int, int]) -> tuple[float, float]:
    """Mean and std of the training images at the model's resolution (the statistics
    the network sees), accumulated in chunks to bound memory at large sizes."""
    total = total_sq = 0.0
    count = 0
    for chunk in images.split(128):
        x = torch.nn.functional.interpolate(chunk.double(), size=tuple(size), mode="bilinear",
                                            align_corners=False)
        total += x.sum().item()
        total_sq += x.square().sum().item()
        count += x.numel()
    mean = total / count
    return mean, (total_sq / count - mean * mean) ** 0.5


register_source("digits", open_digits, argument=None, default=True,
                usage="digits (built-in, default), digits:CLASSES (some of the digits, e.g. "
                      "digits:0-4 or digits:5,7,9)")
