"""Datasets and the papers' transforms: ``open_dataset(spec, split, ...)`` and named presets.

Each data source is a module of :mod:`convnets.data.sources`; what every dataset offers
is declared in :mod:`convnets.data.protocol`."""
from .datasets import SPEC_HELP, BadImageError, load_rgb, open_dataset
from .protocol import LabelledDataset
from .sources import register_source
from .transforms import ColorJitter, Jigsaw, Lighting, build_transform, list_presets

__all__ = ["SPEC_HELP", "BadImageError", "ColorJitter", "Jigsaw", "Lighting", "LabelledDataset",
           "build_transform", "list_presets", "load_rgb", "open_dataset", "register_source"]
