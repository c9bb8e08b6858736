"""``synthetic[:N[:C]]``: N (default 1024) random N(0, 1) images of the model's input
size, C (default 10) classes; sample i is the same on every call (seeded by i and the
split). No transform is applied: for measuring throughput."""
from __future__ import annotations

import torch

from ...errors import DataError
from ..protocol import Labelled
from . import Opened, Request, register_source


class SyntheticDataset(Labelled):
    """Deterministic random images for benchmarking: sample i is drawn from a generator
    seeded by (split seed, i), so it costs no memory and is the same in every worker."""

    def __init__(self, n: int, num_classes: int, input_size: tuple[int, int, int], seed: int) -> None:
        self.n, self.input_size, self.seed = n, tuple(input_size), seed
        self.classes = [str(k) for k in range(num_classes)]
        self.targets = [self._label(i) for i in range(n)]

    def _label(self, i: int) -> int:
        return (i * 7919 + self.seed * 104729) % len(self.classes)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        return torch.randn(self.input_size, generator=g), self.targets[i]

    def raw_image(self, i: int) -> torch.Tensor:
        return self[i][0]


def open_synthetic(request: Request) -> Opened:
    arg = request.arg
    parts = arg.split(":") if arg else []
    try:
        n = int(parts[0]) if parts else 1024
        c = int(parts[1]) if len(parts) > 1 else 10
        if len(parts) > 2 or n < 1 or c < 1:
            raise ValueError
    except ValueError:
        raise DataError(f"synthetic:{arg}: expected synthetic[:N[:C]] with N samples and "
                         "C classes, positive integers") from None
    seed = 0 if request.split == "train" else 1
    return Opened(SyntheticDataset(n, c, request.input_size, seed=seed), preset=None)


register_source("synthetic", open_synthetic, argument=None, usage="synthetic[:N[:C]]")
