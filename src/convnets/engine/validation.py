"""The validation split: N images held out of the training split, drawn by the seed, on
which the plateau schedule decides and the best epoch is chosen, so that the test split
is never used to train or select (Krizhevsky et al. 2012 and He et al. 2016 report
validation errors their schedules did not read).

Its images take the evaluation pipeline (no augmentation), from a second opening of the
training split; a training set handed in from Python is split as it is."""
from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset, Subset

from ..errors import ConfigError
from . import logs

__all__ = ["carve_validation", "validation_indices", "with_best_val", "BEST_BY"]

# The metrics key that says which split chose ``best_epoch``.
BEST_BY = "best_by"


def validation_indices(n_train: int, n_val: int, seed: int) -> tuple[list[int], list[int]]:
    """(training, validation) indices: ``n_val`` of ``range(n_train)`` drawn by ``seed``
    (the same on every machine and process), both sorted."""
    if n_val >= n_train:
        raise ConfigError.of("val_split", f"{n_val} images leave none of the {n_train} training "
                             "images to train on")
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[n_val:]), sorted(order[:n_val])


def carve_validation(train_aug: Dataset, train_plain: Dataset, n_val: int,
                     seed: int) -> tuple[Subset, Subset]:
    """(training, validation) subsets: the rest of ``train_aug`` (augmented) and the
    held-out images of ``train_plain``, the same images without augmentation."""
    train_idx, val_idx = validation_indices(len(train_aug), n_val, seed)
    return Subset(train_aug, train_idx), Subset(train_plain, val_idx)


def with_best_val(rows: list[dict]) -> list[dict]:
    """Choose ``best_epoch`` by the validation error in every row (the best so far; the
    test split's own best stays in ``best_test_top1_err``) and say so in ``best_by``."""
    for i, row in enumerate(rows):
        best = logs.best_row(rows[: i + 1], key="val_top1_err")
        row["best_val_top1_err"] = best["val_top1_err"] if best else math.nan
        row["best_epoch"] = best["epoch"] if best else None
        row[BEST_BY] = "validation"
    return rows
