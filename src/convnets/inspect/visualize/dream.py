"""The image a network makes of a class or a layer: class-model visualisation (Simonyan,
Vedaldi & Zisserman 2014, Section 2) and Inceptionism (Mordvintsev, Olah & Tyka 2015).

Gradient ascent on the input, from noise or from an image, of a class score S_c (the
logit, not the softmax, which could also rise by lowering the other classes: Simonyan
Section 2) or of a layer's activation (the mean square of its output, or the mean of
one feature map). Left alone, the ascent finds high-frequency patterns no person would
call an image; the priors that make it one:

- **the mean image** (Simonyan): the ascent starts from the training data's mean image
  plus faint noise, and the L2 regulariser ||I||^2 of the mean-subtracted image pulls
  back towards it (``decay`` per step). Without a mean image, the per-channel mean
  (0 in normalised units) stands for it;
- **octaves** (Inceptionism): the image is shaped coarse to fine. In octave k of n, each
  step's gradient is low-passed to ``detail``/scale^(n-1-k) of the input's resolution
  (area downsampling, bilinear upsampling), so the first octaves set the layout and
  the last the detail;
- **jitter** (Inceptionism), widened to small rotations and scalings (Mordvintsev et al.
  2018, "transformation robustness"): each step averages the objective over ``copies``
  randomly shifted (up to ``jitter`` of the side), rotated and scaled copies, the
  uncovered border filled from the mean image, so that a pattern must work wherever it
  lands, as the objects of the training images did;
- **blur** (Yosinski et al. 2015; the Inceptionism prior that neighbouring pixels be
  correlated): a Gaussian blur of ``blur`` pixels every ``blur_every`` steps;
- **total variation** (``tv``): a penalty on differences between neighbouring pixels;
- the image stays within the pixels a camera can give, [0, 1] before normalisation.

Steps are normalised gradient ascent (the step divided by the gradient's mean absolute
value, as the Inceptionism code does), so ``lr`` is in normalised pixel units.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from .common import as_batch, forward_to, resolve_class

__all__ = ["Dream", "DreamPriors", "dream", "mean_image"]


@dataclass
class DreamPriors:
    steps: int = 64             # per octave
    octaves: int = 3
    octave_scale: float = 2.0
    detail: float = 1.0         # the finest octave's resolution, a fraction of the input's
    lr: float = 0.025
    decay: float = 0.05
    jitter: float = 0.15        # largest shift, a fraction of the image side
    rotate: float = 10.0        # largest rotation, degrees
    scale: float = 0.1          # largest change of scale, a fraction
    copies: int = 4             # transformed copies per step
    blur: float = 0.5           # Gaussian sigma in pixels; 0: none
    blur_every: int = 4
    tv: float = 0.0

    def check(self) -> None:
        for name in ("steps", "octaves", "blur_every", "copies"):
            if getattr(self, name) < 1:
                raise ConfigError.of(name, f"must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "blur", "tv", "rotate"):
            if getattr(self, name) < 0:
                raise ConfigError.of(name, f"must be at least 0, got {getattr(self, name)}")
        for name in ("decay", "jitter", "scale"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError.of(name, f"must be in [0, 1), got {getattr(self, name)}")
        if self.octave_scale < 1:
            raise ConfigError.of("octave_scale", f"must be at least 1, got {self.octave_scale}")
        if not 0 < self.detail <= 1:
            raise ConfigError.of("detail", f"must be in (0, 1], got {self.detail}")


@dataclass
class Dream:
    image: np.ndarray          # (C, H, W) the dreamt input, normalised as the network takes it
    start: np.ndarray          # (C, H, W) where the ascent began
    what: str                  # the objective, in words
    target: int | None
    layer: str | None
    channel: int | None
    scores: list[float] = field(default_factory=list)  # the objective at every step
    probs: np.ndarray | None = None        # class probabilities of the dreamt image
    start_probs: np.ndarray | None = None  # ... and of the start


def mean_image(dataset: Sequence, max_images: int = 2000) -> torch.Tensor:
    """The mean of up to ``max_images`` of ``dataset``'s (image, label) pairs, spread
    evenly over it (class folders are sorted by class, so a prefix would favour the
    first classes); the images as the network takes them."""
    n = len(dataset)
    if n == 0:
        raise ConfigError("the data set is empty: no mean image to start the dream from")
    step = max(1, -(-n // max_images))
    total, count = None, 0
    for i in range(0, n, step):
        img = torch.as_tensor(dataset[i][0], dtype=torch.float64)
        total = img if total is None else total + img
        count += 1
    return (total / count).float()


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    return ((x[..., 1:, :] - x[..., :-1, :]).abs().mean()
            + (x[..., :, 1:] - x[..., :, :-1]).abs().mean())


def _low_pass(g: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if size == tuple(g.shape[-2:]):
        return g
    small = F.adaptive_avg_pool2d(g, size)
    return F.interpolate(small, size=g.shape[-2:], mode="bilinear", align_corners=False)


def _transformed(x: torch.Tensor, background: torch.Tensor, priors: DreamPriors,
                 gen: torch.Generator) -> torch.Tensor:
    """``priors.copies`` randomly shifted, rotated and scaled copies of ``x`` (1, C, H, W);
    where a copy uncovers the border, ``background`` shows."""
    n = priors.copies
    if not (priors.jitter or priors.rotate or priors.scale):
        return x.expand(n, -1, -1, -1)

    def uniform(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=gen) * 2 - 1).to(x.device, x.dtype)

    angle = uniform(n) * math.radians(priors.rotate)
    zoom = 1 + uniform(n) * priors.scale
    shift = uniform(n, 2) * 2 * priors.jitter  # affine_grid spans [-1, 1]: a side is 2
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [n, *x.shape[1:]], align_corners=False)
    moved = F.grid_sample((x - background).expand(n, -1, -1, -1), grid, mode="bilinear",
                          padding_mode="zeros", align_corners=False)
    return moved + background


def _pixel_bounds(mean: Sequence[float], std: Sequence[float], c: int,
                  like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.tensor(list(mean) * (c if len(mean) == 1 else 1), dtype=like.dtype, device=like.device)
    s = torch.tensor(list(std) * (c if len(std) == 1 else 1), dtype=like.dtype, device=like.device)
    return ((0 - m) / s)[:c].view(1, c, 1, 1), ((1 - m) / s)[:c].view(1, c, 1, 1)


def dream(model: nn.Module, input_size: Sequence[int], *, mean: Sequence[float],
          std: Sequence[float], target: int | str | None = None,
          classes: list[str] | None = None, layer: str | None = None,
          channel: int | None = None, image: torch.Tensor | None = None,
          mean_image: torch.Tensor | None = None, priors: DreamPriors | None = None,
          grey: bool = False, seed: int = 0) -> Dream:
    """Ascend class ``target``'s score (index or name in ``classes``), or, with ``layer``,
    that layer's activation (one feature map with ``channel``).

    The ascent starts from ``image`` (a normalised (C, H, W) input), or from
    ``mean_image`` (the training data's mean, normalised) plus faint noise, or from the
    noise alone. ``mean``/``std`` are the normalisation of the network's inputs (they
    bound the pixels); ``grey`` keeps the image grey, for networks trained on grey images
    given as equal channels (the built-in digits)."""
    priors = priors or DreamPriors()
    priors.check()
    if (target is None) == (layer is None):
        raise ConfigError("dream of a class or of a layer: give exactly one of them")
    if channel is not None and layer is None:
        raise ConfigError("a feature map (channel) is chosen within a layer; give the layer too")
    c, h, w = (int(v) for v in input_size)
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    prior = torch.zeros(1, c, h, w, device=device)
    if mean_image is not None:
        if tuple(mean_image.shape[-3:]) != (c, h, w):
            raise ConfigError(f"the mean image is {tuple(mean_image.shape[-3:])}, "
                              f"the network takes {(c, h, w)}")
        prior = as_batch(mean_image).detach().to(device, torch.float32)
    if image is None:
        noise = torch.randn((1, 1 if grey else c, h, w), generator=gen) * 0.1
        x = prior + noise.to(device)
    else:
        x = as_batch(image).detach().clone().to(device, torch.float32)
        if tuple(x.shape[1:]) != (c, h, w):
            raise ConfigError(f"the start image is {tuple(x.shape[1:])}, the network takes {(c, h, w)}")
    low, high = _pixel_bounds(mean, std, c, x)
    x = torch.max(torch.min(x, high), low)
    start = x.clone()

    with torch.no_grad():
        start_probs = torch.softmax(model(x).float(), 1)[0]
    names = classes or [str(k) for k in range(len(start_probs))]
    cls = None
    if layer is None:
        cls = resolve_class(target, names, 0)
        what = f"class {names[cls]!r}"
    else:
        with torch.no_grad():
            maps = forward_to(model, layer, x)
        if channel is not None and not 0 <= channel < maps.shape[1]:
            raise ConfigError(f"layer {layer!r} has {maps.shape[1]} feature maps; "
                              f"channel {channel} does not exist")
        what = (f"'{layer}', feature map {channel}" if channel is not None
                else f"'{layer}' (all its feature maps)")

    def objective(batch: torch.Tensor) -> torch.Tensor:
        if layer is None:
            return model(batch)[:, cls].mean()
        out = forward_to(model, layer, batch)
        return out[:, channel].mean() if channel is not None else out.square().mean()

    scores: list[float] = []
    for octave in range(priors.octaves):
        factor = priors.octave_scale ** (priors.octaves - 1 - octave) / priors.detail
        size = (max(1, round(h / factor)), max(1, round(w / factor)))
        for step in range(priors.steps):
            inp = x.detach().requires_grad_()
            score = objective(_transformed(inp, prior, priors, gen))
            loss = score - priors.tv * _total_variation(inp) if priors.tv else score
            (grad,) = torch.autograd.grad(loss, inp)
            scores.append(float(score.detach()))
            with torch.no_grad():
                if grey:
                    grad = grad.mean(1, keepdim=True).expand_as(grad)
                grad = _low_pass(grad, size)
                x = x + priors.lr * grad / (grad.abs().mean() + 1e-12)
                x = prior + (x - prior) * (1 - priors.decay)
                if priors.blur and (step + 1) % priors.blur_every == 0:
                    x = _gaussian_blur(x, priors.blur)
                x = torch.max(torch.min(x, high), low)

    with torch.no_grad():
        probs = torch.softmax(model(x).float(), 1)[0]

    def arr(t: torch.Tensor) -> np.ndarray:
        return t[0].detach().float().cpu().numpy()

    return Dream(image=arr(x), start=arr(start), what=what, target=cls, layer=layer,
                 channel=channel, scores=scores, probs=probs.cpu().numpy(),
                 start_probs=start_probs.cpu().numpy())
