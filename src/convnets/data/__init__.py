"""Datasets and the papers' transforms: ``open_dataset(spec, split, ...)`` and named presets."""
from .datasets import SPEC_HELP, BadImageError, load_rgb, open_dataset
from .transforms import ColorJitter, Jigsaw, Lighting, build_transform, list_presets

__all__ = ["SPEC_HELP", "BadImageError", "ColorJitter", "Jigsaw", "Lighting", "build_transform",
           "list_presets", "load_rgb", "open_dataset"]
