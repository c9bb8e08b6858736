"""One visualization of a run, weights file or model, written as a PNG: what
``convnets visualize`` does, callable from a notebook.

:func:`visualize` loads the target as a :class:`~convnets.inference.predict.Predictor`
(its class names and normalisation come with it), computes one method of this package on
its network and draws it; the file is named after the method, the model and what was
chosen (image, layer, class).
"""
from __future__ import annotations

import os
import re
from typing import Callable

from ...errors import ConfigError

__all__ = ["METHODS", "visualize", "figure_name"]

METHODS = ("filters", "activations", "occlusion", "deconv", "dream")
_ON_AN_IMAGE = ("activations", "occlusion", "deconv")


def figure_name(method: str, model: str, *, image: str | None = None, layer: str | None = None,
                channel: int | None = None, cls: int | str | None = None) -> str:
    """The PNG's file name: method, model, and what was chosen (image, layer, class)."""
    parts = [method, model]
    if image:
        parts.append(os.path.splitext(os.path.basename(image))[0])
    if layer:
        parts.append(layer + (f"-map{channel}" if channel is not None else ""))
    if cls is not None:
        parts.append(f"class{cls}")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts)) + ".png"


def _check(method: str, image: str | None, layer: str | None, cls, channel: int | None) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method in _ON_AN_IMAGE and not image:
        raise ConfigError(f"{method} looks at an image: give IMAGE after the TARGET")
    if method == "filters" and (image or layer or cls is not None):
        raise ConfigError("filters shows the first layer's weights; it takes no IMAGE, --layer or "
                          "--class")
    if channel is not None and method != "dream":
        raise ConfigError("--channel chooses the feature map a dream ascends; only dream takes it")
    if method == "dream" and (cls is None) == (layer is None):
        raise ConfigError("dream of a class or of a layer: give --class C or --layer NAME")
    if image and os.path.isdir(image):
        raise ConfigError(f"{image} is a folder; {method} looks at one image: give an image file")


def _dream_mean_image(predictor, target: str, model: str | None, log: Callable[[str], None]):
    """The mean image of the run's training data (the dream's prior), or None when there
    is no run or its data is not on this machine."""
    from ...data import open_dataset
    from ...engine.runs import resolve_target
    from .dream import mean_image

    run = resolve_target(target, model=model)
    flat = "the dream starts from noise around the data's mean colour, not its mean image"
    if run.config is None:
        log(f"note: no run, so no training data: {flat}")
        return None
    try:
        train = open_dataset(run.config.data, "train", input_size=predictor.input_size,
                             train_transform=False, preset=predictor.preset)
    except ValueError as err:  # open_dataset's one-line "missing or malformed" errors
        log(f"note: the run's training data cannot be opened here ({err}): {flat}")
        return None
    return mean_image(train)


def visualize(method: str, target: str, image: str | None = None, *, model: str | None = None,
              layer: str | None = None, cls: int | str | None = None, out: str | None = None,
              device: str = "auto", max_maps: int = 64, patch: int | None = None,
              stride: int | None = None, batch_size: int = 64, top: int = 1,
              channel: int | None = None, steps: int | None = None, octaves: int | None = None,
              seed: int = 0, use_mean_image: bool = True,
              log: Callable[[str], None] = print) -> str:
    """Draw ``method`` (one of :data:`METHODS`) for ``target`` (a run directory, weights
    file with ``model``, or model name) and write it as a PNG; returns its path.

    ``image`` is the image file that activations, occlusion and deconv look at (dream:
    where it starts); ``layer`` a module name (default: the deepest top-level feature
    map), ``cls`` a class index or name (occlusion, deconv: default the predicted one).
    ``out`` is the folder (default: RUN/visualize for a run directory, else the current
    folder). ``max_maps`` is for activations; ``patch``, ``stride``, ``batch_size`` for
    occlusion; ``top`` for deconv with a layer; ``channel``, ``steps``, ``octaves``,
    ``seed`` and ``use_mean_image`` (start from, and regularise towards, the run's
    training mean image when its data is on this machine) for dream. ``log`` gets notes.
    """
    from ...inference.predict import Predictor
    from .dream import DreamPriors, dream
    from .features import first_layer_filters, layer_activations
    from .figures import (plot_activations, plot_dream, plot_filters, plot_occlusion,
                          plot_projection, save_figure)
    from .occlusion import occlusion
    from .projection import project_back

    _check(method, image, layer, cls, channel)
    predictor = Predictor.from_target(target, model=model, device=device)
    if not predictor.weights:
        log(f"note: {predictor.model_name} has no weights given; showing its untrained "
            "initialisation")
    net, classes = predictor.model, predictor.classes
    norm = dict(mean=predictor.mean, std=predictor.std, classes=classes)
    x = predictor.preprocess(image).to(predictor.device) if image else None
    title = predictor.model_name + (f" on {os.path.basename(image)}" if image else "")
    if method == "filters":
        fig = plot_filters(first_layer_filters(net), title=title)
    elif method == "activations":
        fig = plot_activations(layer_activations(net, x, layer), x, title=title,
                               max_maps=max_maps, **norm)
    elif method == "occlusion":
        result = occlusion(net, x, target=cls, classes=classes, layer=layer,
                           patch=patch, stride=stride, batch_size=batch_size)
        fig = plot_occlusion(result, x, title=title, **norm)
    elif method == "deconv":
        result = project_back(net, x, layer=layer, target=cls, classes=classes, top=top)
        fig = plot_projection(result, x, title=title, **norm)
    else:
        priors = DreamPriors(**{k: v for k, v in (("steps", steps), ("octaves", octaves))
                                if v is not None})
        # Grey training data reaches the network as equal channels with equal statistics.
        grey = len(set(predictor.mean)) == 1 and len(set(predictor.std)) == 1
        prior_image = (_dream_mean_image(predictor, target, model, log)
                       if use_mean_image and not image else None)
        result = dream(net, predictor.input_size, mean=predictor.mean, std=predictor.std,
                       target=cls, classes=classes, layer=layer, channel=channel, image=x,
                       priors=priors, grey=grey, seed=seed, mean_image=prior_image)
        fig = plot_dream(result, title=title, **norm)
    folder = out or (os.path.join(target, "visualize") if os.path.isdir(target) else ".")
    name = figure_name(method, predictor.model_name, image=image, layer=layer, channel=channel,
                       cls=cls)
    return save_figure(fig, os.path.join(folder, name))
