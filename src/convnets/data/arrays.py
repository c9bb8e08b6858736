"""A labelled dataset held in memory: the digits and the CIFAR batches."""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..errors import DataError
from .protocol import Labelled

__all__ = ["ArrayDataset"]


class ArrayDataset(Labelled):
    """In-memory images ``(N, C, H, W)`` (uint8 or float in [0, 1]) with integer labels."""

    def __init__(self, images: torch.Tensor, labels: Sequence[int], classes: list[str],
                 transform: Callable | None = None) -> None:
        if len(images) != len(labels):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.targets, self.classes = images, [int(t) for t in labels], classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.images[i]
        return (self.transform(img) if self.transform else img), self.targets[i]

    def raw_image(self, i: int) -> torch.Tensor:
        return self.images[i]
