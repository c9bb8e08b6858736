"""The data a model is registered for, and how its images are evaluated.

A model's published figures are measured on one dataset, at one input size, after one
evaluation preprocessing with one normalisation: facts about the entry, as timm's
pretrained configurations and torchvision's ``Weights.meta`` record them. The weights-only
inference spec (``engine.inference_spec.spec_without_run``) reads them from
:class:`~convnets.models.registry.ModelInfo`, which takes them from the
:class:`DataConventions` the entry is registered with.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["DataConventions", "IMAGENET", "CIFAR10", "MNIST", "IMAGENET_MEAN", "IMAGENET_STD",
           "CIFAR10_MEAN", "CIFAR10_STD"]

# The statistics torchvision and timm normalise ImageNet images with.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# CIFAR-10's training-set per-channel statistics.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class DataConventions:
    """``dataset`` with ``num_classes`` classes, images of ``input_size`` (C, H, W),
    evaluated with the ``eval_preset`` transform (a preset of ``convnets.data``) and
    normalised by ``mean``/``std`` (per channel)."""

    dataset: str
    num_classes: int
    input_size: tuple[int, int, int]
    eval_preset: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def at(self, size: int) -> "DataConventions":
        """The same conventions at ``size`` x ``size`` inputs (Inception's 299)."""
        return replace(self, input_size=(self.input_size[0], size, size))


# Resize to 256/224 of the input, centre crop (torchvision's and timm's evaluation).
IMAGENET = DataConventions("imagenet", 1000, (3, 224, 224), "imagenet", IMAGENET_MEAN, IMAGENET_STD)
CIFAR10 = DataConventions("cifar10", 10, (3, 32, 32), "cifar", CIFAR10_MEAN, CIFAR10_STD)
# MNIST digits padded to 32 x 32 (LeCun et al. 1998, Section III.A). No statistics of its
# own: a model without a run is normalised with ImageNet's, as the zoo's other models are.
MNIST = DataConventions("mnist", 10, (1, 32, 32), "imagenet", IMAGENET_MEAN, IMAGENET_STD)
