"""A subset of a dataset's classes, as a dataset of its own.

``digits:0-4`` trains on five of the ten digits and ``convnets transfer --classes 5-9``
transfers to the other five: the lecture's feature-transfer experiment (a network
trained on some classes, reused on classes it never saw) in small. A selection is a
comma-separated list of items, each a class name, an index or an index range ``A-B``
(both ends included); a name is matched first, so for the digits ``5`` is the class
named 5, which is also class 5. The kept classes keep their names and their order in
the full dataset, and are re-indexed 0..k-1.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import DataError
from .protocol import Labelled, LabelledDataset

__all__ = ["parse_class_selection", "ClassSubset", "select_classes"]


def parse_class_selection(text: str, classes: Sequence[str]) -> list[int]:
    """The indices (ascending) into ``classes`` that ``text`` names; a DataError names the
    first item that is not a class, an index or a range of indices, or that repeats."""
    names = {name: k for k, name in enumerate(classes)}
    chosen: list[int] = []
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            raise DataError(f"empty class in the selection {text!r}; expected names, indices or "
                            "ranges A-B separated by commas")
        if item in names:
            picked = [names[item]]
        else:
            first, dash, last = item.partition("-")
            try:
                low, high = int(first), int(last if dash else first)
            except ValueError:
                raise DataError(f"{item!r} is neither a class name nor an index or range A-B "
                                f"of indices (the classes: {_some(classes)})") from None
            if not 0 <= low <= high < len(classes):
                raise DataError(f"class {'range ' if dash else 'index '}{item} is not within "
                                f"0-{len(classes) - 1}")
            picked = list(range(low, high + 1))
        repeated = sorted(set(picked) & set(chosen))
        if repeated:
            raise DataError(f"class {classes[repeated[0]]!r} is selected twice in {text!r}")
        chosen += picked
    return sorted(chosen)


def _some(classes: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(classes[:n])
    return f"{shown}, ... ({len(classes)} in all)" if len(classes) > n else shown


class ClassSubset(Labelled):
    """The samples of ``dataset`` whose class is among ``keep`` (indices), labelled 0..k-1
    in the order of ``keep``. The normalisation, preset, raw images and bad-file counters
    are the base dataset's. For datasets whose item ``i`` is always sample ``i``; an image
    folder, which returns another file in place of an unreadable one, restricts itself
    (``restricted_to``)."""

    def __init__(self, dataset: LabelledDataset, keep: Sequence[int]) -> None:
        self.dataset = dataset
        self.kept = list(keep)
        relabel = {old: new for new, old in enumerate(self.kept)}
        base_classes = list(dataset.classes)
        self.classes = [base_classes[k] for k in self.kept]
        self.indices = [i for i, t in enumerate(dataset.targets) if t in relabel]
        self.targets = [relabel[dataset.targets[i]] for i in self.indices]
        self._relabel = relabel

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        x, y = self.dataset[self.indices[i]]
        return x, self._relabel[int(y)]

    def raw_image(self, i: int):
        return self.dataset.raw_image(self.indices[i])

    @property
    def preset(self) -> str | None:
        return self.dataset.preset

    @property
    def mean(self) -> tuple[float, ...] | None:
        return self.dataset.mean

    @property
    def std(self) -> tuple[float, ...] | None:
        return self.dataset.std

    def bad_files(self) -> int:
        return self.dataset.bad_files()

    def bad_file_report(self) -> list[tuple[str, str]]:
        return self.dataset.bad_file_report()

    def reset_bad_files(self) -> None:
        self.dataset.reset_bad_files()


def select_classes(dataset: LabelledDataset, selection: str | None) -> LabelledDataset:
    """``dataset`` restricted to the classes ``selection`` names (None: all of them)."""
    if selection is None:
        return dataset
    return dataset.restricted_to(parse_class_selection(selection, dataset.classes))
