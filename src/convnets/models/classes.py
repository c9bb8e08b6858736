"""Human-readable class names of the datasets the zoo's published heads were trained on."""
from __future__ import annotations

from functools import lru_cache

__all__ = ["imagenet_classes"]


@lru_cache(maxsize=1)
def _imagenet() -> tuple[str, ...]:
    # torchvision ships the 1000 ILSVRC-2012 names, in the order of sorted WordNet ids (the
    # order every ImageNet head uses), as metadata of its weight enums: no download needed.
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, index i being logit i of a 1000-way head."""
    return list(_imagenet())
