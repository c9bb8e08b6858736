"""Image files with labels, decoded on access, unreadable ones skipped and named."""
from __future__ import annotations

import ctypes
import multiprocessing
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .images import REASONS, BadImageError, display_path, get_max_pixels, load_rgb, load_rgb_tensor
from .protocol import Labelled

__all__ = ["ImageFolderDataset"]


class ImageFolderDataset(Labelled):
    """Image files with labels, decoded on access by :func:`~convnets.data.images.load_rgb`.

    A file that cannot be used (not an image, truncated, too large, ...) is skipped: the
    next readable file in the list (wrapping around) is returned in its place, so batch
    sizes stay constant, which matters for DistributedDataParallel. Each bad file is
    flagged, with the index of its reason in ``images.REASONS``, in a byte array in
    shared memory, so flags set in DataLoader worker processes (fork or spawn) are seen
    by the main process: ``bad_files()`` counts the distinct bad files met since the
    last ``reset_bad_files()``, ``bad_file_names()`` lists them, ``bad_file_report()``
    gives printable ``(path, reason)`` pairs. With ``fail_fast=True`` the first bad file
    raises ``BadImageError``. ``max_pixels`` is the decoding limit (default: the one in
    force when the dataset is made). (The shared array can be pickled only to start a
    process, as DataLoader does; the dataset cannot be deep-copied.)
    """

    def __init__(self, samples: list[tuple[str, int]], classes: list[str],
                 transform: Callable | None = None, *, fail_fast: bool = False, root: str = "",
                 max_pixels: int | None = None) -> None:
        self.samples, self.classes, self.transform = samples, classes, transform
        self.targets = [label for _, label in samples]
        self.fail_fast, self.root = fail_fast, root
        self.max_pixels = get_max_pixels() if max_pixels is None else max_pixels
        self._bad = multiprocessing.Array(ctypes.c_uint8, max(1, len(samples)), lock=False)

    def __len__(self) -> int:
        return len(self.samples)

    def _flags(self) -> np.ndarray:
        return np.frombuffer(self._bad, dtype=np.uint8)[: len(self.samples)]

    def bad_files(self) -> int:
        return int(np.count_nonzero(self._flags()))

    def bad_file_names(self) -> list[str]:
        return [self.samples[i][0] for i in np.flatnonzero(self._flags())]

    def bad_file_report(self) -> list[tuple[str, str]]:
        flags = self._flags()
        return [(display_path(self.samples[i][0]), REASONS[flags[i] - 1])
                for i in np.flatnonzero(flags)]

    def reset_bad_files(self) -> None:
        self._flags()[:] = 0

    def raw_image(self, i: int) -> Image.Image:
        return load_rgb(self.samples[i][0])

    def restricted_to(self, keep: Sequence[int]) -> "ImageFolderDataset":
        """The files of the classes ``keep`` (indices) only, labelled 0..k-1, so that an
        unreadable file is replaced by another file of these classes."""
        relabel = {old: new for new, old in enumerate(keep)}
        subset = ImageFolderDataset([(path, relabel[label]) for path, label in self.samples
                                     if label in relabel], [self.classes[k] for k in keep],
                                    self.transform, fail_fast=self.fail_fast, root=self.root,
                                    max_pixels=self.max_pixels)
        subset.preset, subset.mean, subset.std = self.preset, self.mean, self.std
        return subset

    def _decode(self, j: int):
        """Sample ``j``'s image, or BadImageError. Our transforms start from a uint8 tensor,
        which plain JPEGs decode straight into; any other transform gets the PIL image."""
        load = load_rgb_tensor if getattr(self.transform, "takes_uint8_tensors", False) else load_rgb
        return load(self.samples[j][0], max_pixels=self.max_pixels)

    def _where(self) -> str:
        """The data named in the error when no image at all is readable."""
        return display_path(self.root)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        n = len(self.samples)
        first: BadImageError | None = None
        for k in range(n):  # a bad image is replaced by the next good one, and flagged
            j = (i + k) % n
            if self._bad[j]:
                continue
            try:
                img = self._decode(j)
            except BadImageError as err:
                if self.fail_fast:
                    raise
                self._bad[j] = 1 + (REASONS.index(err.reason) if err.reason in REASONS else 0)
                first = first or err
                continue
            return (self.transform(img) if self.transform else img), self.samples[j][1]
        example = f" (e.g. {first})" if first else ""
        raise BadImageError(f"{self._where()}: none of the {n} image files is readable{example}")
