"""Occlusion sensitivity (Zeiler & Fergus 2014, Section 4.2 and Fig. 7).

A grey square slides over the image; at each position the occluded image goes through
the network and three things are recorded: (a) the probability of one class (the true
or the predicted one), (b) the most probable class, and (c) the total activation of
the feature map of a chosen layer that is strongest on the unoccluded image. Where the
probability drops, the network relied on what the square hides.

Positions form a grid with one cell per ``stride`` pixels: the square is centred on
cell (i, j)'s centre and clipped at the image border, so the maps cover the whole image
and cell (i, j) is the image region ``[i*stride, (i+1)*stride)``. The square is filled
with ``fill`` in normalised units: 0 is the training data's mean colour, the grey the
paper used.

captum's ``Occlusion`` is not used: it returns per-pixel averages of the change of one
output over all windows that cover a pixel, while Fig. 7 maps each quantity against the
square's position, including the most probable class, which is no attribution at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError
from .common import as_batch, capture, default_layer, resolve_class

__all__ = ["Occlusion", "occlusion", "occlusion_grid", "occlude"]


@dataclass
class Occlusion:
    target: int               # the class whose probability ``prob`` maps
    prob: np.ndarray          # (h, w): p(target) with the square at each position
    top_class: np.ndarray     # (h, w): the most probable class there
    top_prob: np.ndarray      # (h, w): its probability
    layer: str
    channel: int              # the layer's strongest feature map on the unoccluded image
    activation: np.ndarray    # (h, w): that map's total activation, square at each position
    patch: int
    stride: int
    probs: np.ndarray         # (num_classes,): class probabilities of the unoccluded image
    base_activation: float    # the map's total activation on the unoccluded image


def occlusion_grid(height: int, width: int, stride: int) -> tuple[int, int]:
    """Rows and columns of square positions for an image of ``height`` x ``width``."""
    return -(-height // stride), -(-width // stride)


def occlude(x: torch.Tensor, row: int, col: int, patch: int, stride: int,
            fill: float = 0.0) -> torch.Tensor:
    """A copy of the image ``x`` (C, H, W) with the square of grid cell (row, col) filled."""
    out = x.clone()
    cy, cx = row * stride + stride // 2, col * stride + stride // 2
    y0, x0 = max(cy - patch // 2, 0), max(cx - patch // 2, 0)
    out[..., y0:cy - patch // 2 + patch, x0:cx - patch // 2 + patch] = fill
    return out


def default_patch(h: int, w: int) -> int:
    """The occluder's side when none is given: 3/8 of the image's shorter side."""
    return max(1, 3 * min(h, w) // 8)


def default_stride(h: int, w: int) -> int:
    """The step between occluder positions when none is given: a sixteenth of the shorter
    side."""
    return max(1, min(h, w) // 16)


def _check(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError.of(name, f"must be between {low} and {high} for this image, got {value}")


@torch.no_grad()
def occlusion(model: nn.Module, x: torch.Tensor, *, target: int | str | None = None,
              classes: list[str] | None = None, layer: str | None = None,
              patch: int | None = None, stride: int | None = None, fill: float = 0.0,
              batch_size: int = 64) -> Occlusion:
    """Fig. 7's three maps for one normalised image ``x`` (C, H, W).

    ``target``: the class (index or name in ``classes``) whose probability is mapped,
    by default the one predicted for the whole image. ``patch`` (default 3/8 of the
    shorter side) and ``stride`` (default a sixteenth) in pixels; ``layer`` defaults
    to the deepest top-level feature map. Occluded images go through the network
    ``batch_size`` at a time.
    """
    x = as_batch(x)
    _, _, h, w = x.shape
    patch = patch if patch is not None else default_patch(h, w)
    stride = stride if stride is not None else default_stride(h, w)
    _check("patch", patch, 1, min(h, w))
    _check("stride", stride, 1, min(h, w))
    if batch_size < 1:
        raise ConfigError.of("batch_size", f"must be at least 1, got {batch_size}")
    layer = layer or default_layer(model, x)
    with capture(model, layer) as cap:
        probs = torch.softmax(model(x).float(), 1)[0]
        maps = cap.output[0]
    classes = classes or [str(k) for k in range(len(probs))]
    target = resolve_class(target, classes, default=int(probs.argmax()))
    channel = int(maps.flatten(1).sum(1).argmax())

    rows, cols = occlusion_grid(h, w, stride)
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    p_target, p_top, top, act = [], [], [], []
    with capture(model, layer) as cap:
        for start in range(0, len(cells), batch_size):
            batch = torch.cat([occlude(x, r, c, patch, stride, fill)
                               for r, c in cells[start:start + batch_size]])
            p = torch.softmax(model(batch).float(), 1)
            p_target.append(p[:, target])
            best = p.max(1)
            p_top.append(best.values)
            top.append(best.indices)
            act.append(cap.output[:, channel].flatten(1).sum(1).float())

    def grid(parts: list[torch.Tensor]) -> np.ndarray:
        return torch.cat(parts).reshape(rows, cols).cpu().numpy()

    return Occlusion(target=target, prob=grid(p_target), top_class=grid(top),
                     top_prob=grid(p_top), layer=layer, channel=channel, activation=grid(act),
                     patch=patch, stride=stride, probs=probs.cpu().numpy(),
                     base_activation=float(maps[channel].sum()))
