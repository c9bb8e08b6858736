"""Looking inside a network: what its filters and feature maps respond to, which parts of
an image its decision rests on, and the image it makes of a class.

Each method is a function on a model in eval mode and one normalised image tensor
(C, H, W) that returns arrays in a small dataclass, so a notebook can draw them its own
way; ``figures`` draws each as a titled, labelled figure.

=============  ==========================================  ===================================
method         function                                    after
=============  ==========================================  ===================================
filters        ``first_layer_filters(model)``               Krizhevsky et al. 2012, Fig. 3
activations    ``layer_activations(model, x, layer)``       Zeiler & Fergus 2014
occlusion      ``occlusion(model, x, ...)``                 Zeiler & Fergus 2014, Fig. 7
deconv         ``project_back(model, x, ...)``              Zeiler & Fergus 2014; Springenberg
                                                            et al. 2015; Simonyan et al. 2014
dream          ``dream(model, input_size, ...)``            Simonyan et al. 2014; Inceptionism
=============  ==========================================  ===================================

``visualize(method, target, image, ...)`` (:mod:`.run`) does one of them for a run, weights
file or model and writes the figure as a PNG, as ``convnets visualize`` does.
"""
from .common import default_layer, run_layers, to_display
from .dream import Dream, DreamPriors, dream, mean_image
from .features import Activations, Filters, first_layer_filters, layer_activations
from .figures import (plot_activations, plot_dream, plot_filters, plot_occlusion,
                      plot_projection, save_figure)
from .occlusion import Occlusion, occlusion
from .projection import Projection, project_back
from .run import visualize

__all__ = [
    "Activations", "Dream", "DreamPriors", "Filters", "Occlusion", "Projection",
    "default_layer", "dream", "first_layer_filters", "layer_activations", "mean_image",
    "occlusion", "project_back", "run_layers", "to_display",
    "plot_activations", "plot_dream", "plot_filters", "plot_occlusion", "plot_projection",
    "save_figure", "visualize",
]
