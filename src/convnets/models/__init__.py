"""The model zoo. Each family module registers its builders when imported here."""
from . import gunn  # noqa: F401
from . import lenet, alexnet, nin, vgg, googlenet, inception  # noqa: F401
from . import densenet, dpn, resnet  # noqa: F401
from .registry import (ModelInfo, UnknownModelError, WeightsError, create_model, list_models,
                       load_weights, model_info, register_model)

__all__ = ["ModelInfo", "UnknownModelError", "WeightsError", "create_model", "list_models",
           "load_weights", "model_info", "register_model"]
