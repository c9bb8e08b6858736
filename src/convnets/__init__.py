"""convnets: deep convolutional networks of the ImageNet era, verified and trainable."""
from .models import ModelInfo, create_model, list_models, model_info
from .inference.predict import Prediction, Predictor, predict
from .models.classes import imagenet_classes
from .perf.optimize import optimize

__version__ = "0.1.0"
__all__ = ["ModelInfo", "Prediction", "Predictor", "create_model", "imagenet_classes", "list_models",
           "model_info", "optimize", "predict", "__version__"]
