"""What a labelled dataset offers, declared once, and the defaults most datasets share.

``open_dataset`` returns a :class:`LabelledDataset`; training, evaluation, transfer and
the inference spec read what is declared here and nothing else. A dataset handed to
``fit`` from Python need only be a torch Dataset of ``(image, label)`` pairs: where it
also has one of the smaller abilities (:class:`HasNumClasses`,
:class:`ReportsBadFiles`), that ability is used.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

from torch.utils.data import Dataset

__all__ = ["HasNumClasses", "ReportsBadFiles", "LabelledDataset", "Labelled"]


@runtime_checkable
class HasNumClasses(Protocol):
    """Its labels run over 0..num_classes-1: the size of a classifier trained on it."""

    @property
    def num_classes(self) -> int: ...


@runtime_checkable
class ReportsBadFiles(Protocol):
    """It skips unreadable files and says which it met."""

    def bad_file_report(self) -> list[tuple[str, str]]:
        """Printable ``(path, reason)`` of each bad file met since the last reset."""

    def reset_bad_files(self) -> None:
        """Start counting bad files afresh (e.g. at each epoch)."""


@runtime_checkable
class LabelledDataset(HasNumClasses, ReportsBadFiles, Protocol):
    """Everything ``open_dataset`` returns: ``(image, label)`` pairs with their class
    names and labels, the raw image before any transform, the bad-file counters (always
    0 except for image files), a restriction to some classes, and what a trained network
    needs to see new images as it saw these: the transform ``preset`` and the
    normalisation ``mean``/``std`` (one value per channel of the data; None where the
    data comes with a transform of its own)."""

    classes: list[str]
    targets: list[int]
    preset: str | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> tuple[Any, int]: ...

    def raw_image(self, i: int) -> Any:
        """Sample ``i`` before any transform."""

    def bad_files(self) -> int:
        """How many unreadable files were skipped since the last reset."""

    def restricted_to(self, keep: Sequence[int]) -> "LabelledDataset":
        """The samples of the classes ``keep`` (indices) only, labelled 0..k-1 in that order."""


class Labelled(Dataset):
    """The defaults of a :class:`LabelledDataset` whose item ``i`` is always sample ``i``
    and which reads no files that could be bad. Subclasses set ``classes`` and
    ``targets`` and define ``__len__``, ``__getitem__`` and ``raw_image``."""

    classes: list[str]
    targets: list[int]
    preset: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def bad_files(self) -> int:
        return 0

    def bad_file_report(self) -> list[tuple[str, str]]:
        return []

    def reset_bad_files(self) -> None:
        pass

    def restricted_to(self, keep: Sequence[int]) -> LabelledDataset:
        from .subsets import ClassSubset

        return ClassSubset(self, keep)
