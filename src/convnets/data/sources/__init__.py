"""The data sources a spec names, one module each, found by their spec prefix.

Each module in this package registers its source with :func:`register_source` when it is
imported, and every module here is imported: a new source is one new file. A source's
opener reads its data for a split and returns an :class:`Opened` record: the dataset
(without a transform: ``open_dataset`` adds the preset's) and the defaults a network
trained on it needs, its preset and its normalisation statistics.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass
from typing import Callable

from ...errors import DataError
from ..protocol import LabelledDataset

__all__ = ["Request", "Opened", "Source", "register_source", "find_source", "spec_help"]


@dataclass(frozen=True)
class Request:
    """What ``open_dataset`` asks of a source: the text after ``PREFIX:`` (empty where
    there is none; for a bare folder path, the path), the split ("train" or "val"), the
    model's ``(C, H, W)``, and how to treat unreadable image files."""

    arg: str
    split: str
    input_size: tuple[int, int, int]
    fail_fast: bool = False
    max_pixels: int | None = None


@dataclass(frozen=True)
class Opened:
    """A source's answer. ``preset`` is the default transform preset, with ``mean`` and
    ``std`` the data's per-channel statistics of values in [0, 1]; ``preset`` None means
    the samples are already what the network takes and get no transform. ``selection``
    names classes to keep (:func:`~convnets.data.subsets.parse_class_selection`)."""

    dataset: LabelledDataset
    preset: str | None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    selection: str | None = None


@dataclass(frozen=True)
class Source:
    """A registered source: ``PREFIX[:ARG]``; ``usage`` is its form in the spec help."""

    prefix: str
    open: Callable[[Request], Opened]
    usage: str
    argument: str | None  # the name of the required ARG, e.g. DIR; None: optional
    default: bool         # opened for no spec, and its prefix is never read as a path
    paths: bool           # an existing folder given bare is opened by this source


_SOURCES: dict[str, Source] = {}


def register_source(prefix: str, opener: Callable[[Request], Opened], *, usage: str | None = None,
                    argument: str | None = "DIR", default: bool = False,
                    paths: bool = False) -> Source:
    """Make ``PREFIX:ARG`` name the data ``opener`` reads. At most one source is the
    default and at most one takes bare paths."""
    if prefix in _SOURCES:
        raise ValueError(f"a data source {prefix!r} is registered already")
    if default and any(s.default for s in _SOURCES.values()):
        raise ValueError("two default data sources")
    if paths and any(s.paths for s in _SOURCES.values()):
        raise ValueError("two data sources that take bare paths")
    source = Source(prefix, opener, usage or f"{prefix}:{argument}", argument, default, paths)
    _SOURCES[prefix] = source
    return source


def _default() -> Source:
    return next(s for s in _SOURCES.values() if s.default)


def _path_source() -> Source:
    return next(s for s in _SOURCES.values() if s.paths)


def spec_help() -> str:
    """Every spec form: the default source first, the one that takes bare paths last."""
    first, last = _default(), _path_source()
    middle = [s for s in _SOURCES.values() if s not in (first, last)]
    return ", ".join(s.usage for s in [first, *middle, last])


def find_source(spec: str | None) -> tuple[Source, str]:
    """The source ``spec`` names and its argument (see :class:`Request`)."""
    default = _default()
    if spec is None:
        return default, ""
    spec = str(spec)
    prefix, _, arg = spec.partition(":")
    if prefix == default.prefix:
        return default, arg
    if os.path.isdir(os.path.expanduser(spec)):
        return _path_source(), spec
    source = _SOURCES.get(prefix)
    if source is None:
        raise DataError(f"unknown dataset {spec!r}: expected {spec_help()} "
                        "(an image-folder path must exist)")
    if source.argument and not arg:
        raise DataError(f"{spec}: expected {prefix}:{source.argument}")
    return source, arg


for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
