"""Datasets and the papers' transforms: ``open_dataset(spec, split, ...)`` and named presets.

Each data source is a module of :mod:`convnets.data.sources`; what every dataset offers
is declared in :mod:`convnets.data.protocol`. Names are imported on first use, so that the
spec forms (``convnets.data.sources.spec_help``) can be read without loading torchvision's
transforms."""
from __future__ import annotations

import importlib

__all__ = ["SPEC_HELP", "BadImageError", "ColorJitter", "Jigsaw", "Lighting", "LabelledDataset",
           "build_transform", "list_presets", "load_rgb", "open_dataset", "register_source"]

_WHERE = {"SPEC_HELP": "datasets", "BadImageError": "datasets", "load_rgb": "datasets",
          "open_dataset": "datasets", "LabelledDataset": "protocol",
          "register_source": "sources", "ColorJitter": "transforms", "Jigsaw": "transforms",
          "Lighting": "transforms", "build_transform": "transforms", "list_presets": "transforms"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
