"""Figures of the visualisations, for a person to read: a title that says what is shown,
class names with probabilities, colour bars with units. Each function returns a
matplotlib ``Figure`` (made without pyplot, so nothing global changes); ``save_figure``
writes one as a PNG atomically.

Images are given as the network takes them (normalised (C, H, W)) with the mean and std
that undo the normalisation.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from ...core import replacing
from ...errors import ConfigError
from .common import to_display
from .dream import Dream
from .features import Activations, Filters
from .occlusion import Occlusion
from .projection import Projection

__all__ = ["plot_filters", "plot_activations", "plot_occlusion", "plot_projection", "plot_dream",
           "save_figure"]

_DPI = 100
_TITLE = 13
_LABEL = 10


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> str:
    """Write ``fig`` as a PNG at ``path`` (readers see the old file or the new one)."""
    path = os.fspath(path)
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return path


def _picture(x: torch.Tensor | np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    return to_display(torch.as_tensor(np.asarray(x)), mean, std)


def _top(probs: np.ndarray, classes: Sequence[str], k: int = 3) -> str:
    order = np.argsort(probs)[::-1][:k]
    return ", ".join(f"{classes[i]!r} {100 * probs[i]:.1f}%" for i in order)


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(n: int, aspect: float = 1.6) -> tuple[int, int]:
    cols = max(1, math.ceil(math.sqrt(n * aspect)))
    return math.ceil(n / cols), cols


# --- filters ---------------------------------------------------------------------------

def plot_filters(f: Filters, *, title: str = "", max_filters: int = 256) -> Figure:
    """The first layer's filters as a grid. Three input channels are drawn as colour
    (each filter scaled to its own largest weight, mid-grey = 0, as in AlexNet's Fig. 3);
    other counts as their channel mean on one shared blue-red scale with a colour bar."""
    w = f.weights[:max_filters]
    n, cin, kh, kw = w.shape
    rows, cols = _grid(n)
    fig = _figure(min(16.0, max(8.0, 1.0 + 0.75 * cols)), min(14.0, 1.6 + 0.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    rgb = cin == 3
    scale = float(np.abs(w).max()) or 1.0
    image = None
    for i, ax in enumerate(axes.flat):
        _bare(ax)
        if i >= n:
            ax.axis("off")
            continue
        if rgb:
            tile = w[i].transpose(1, 2, 0)
            tile = 0.5 + 0.5 * tile / (np.abs(tile).max() or 1.0)
            ax.imshow(tile, interpolation="nearest")
        else:
            image = ax.imshow(w[i].mean(0), cmap="RdBu_r", vmin=-scale, vmax=scale,
                              interpolation="nearest")
        ax.set_title(str(i), fontsize=8, pad=2)
    how = ("RGB, each filter scaled to its own largest weight, mid-grey = 0" if rgb
           else f"mean over {cin} input channel{'s' if cin > 1 else ''}, shared scale")
    shown = f"{n} of {f.weights.shape[0]}" if f.weights.shape[0] > n else f"{n}"
    fig.suptitle(f"{title + ': ' if title else ''}first-layer filters '{f.layer}' "
                 f"({shown}, {kh}x{kw})\n{how}", fontsize=_TITLE)
    if image is not None:
        fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02).set_label("weight", fontsize=_LABEL)
    return fig


# --- activations -----------------------------------------------------------------------

def plot_activations(a: Activations, x, *, mean: Sequence[float], std: Sequence[float],
                     classes: Sequence[str], title: str = "", max_maps: int = 64) -> Figure:
    """The input, and the layer's feature maps strongest first (by mean activation), on
    one shared colour scale."""
    if max_maps < 1:
        raise ConfigError.of("max_maps", f"must be at least 1, got {max_maps}")
    order = np.argsort(a.maps.reshape(len(a.maps), -1).mean(1))[::-1][:max_maps]
    n = len(order)
    rows, cols = _grid(n)
    fig = _figure(max(10.0, 4.5 + 1.3 * cols), max(4.5, 1.0 + 1.3 * rows))
    outer = fig.add_gridspec(1, 2, width_ratios=[3.2, 1.3 * cols], wspace=0.08)
    ax = fig.add_subplot(outer[0])
    ax.imshow(_picture(x, mean, std))
    _bare(ax)
    ax.set_title(f"input\npredicted {_top(a.probs, classes, 2)}", fontsize=_LABEL)
    inner = outer[1].subgridspec(rows, cols, wspace=0.05, hspace=0.3)
    low, high = float(a.maps[order].min()), float(a.maps[order].max())
    image = None
    for k, ch in enumerate(order):
        sub = fig.add_subplot(inner[k // cols, k % cols])
        image = sub.imshow(a.maps[ch], cmap="viridis", vmin=low, vmax=high, interpolation="nearest")
        _bare(sub)
        sub.set_title(f"#{ch}", fontsize=8, pad=2)
    c, h, w = a.maps.shape
    shown = f"the {n} strongest of {c}" if c > n else f"all {c}"
    fig.suptitle(f"{title + ': ' if title else ''}feature maps of '{a.layer}' "
                 f"({shown}, {h}x{w}, strongest mean activation first)", fontsize=_TITLE)
    fig.colorbar(image, ax=fig.axes[1:], fraction=0.025, pad=0.02).set_label(
        "activation", fontsize=_LABEL)
    return fig


# --- occlusion -------------------------------------------------------------------------

def _position_map(ax, shape: tuple[int, ...], values: np.ndarray, stride: int, cmap, **kw):
    """``values`` per square position, drawn in image coordinates: cell (i, j) covers the
    pixels the square is centred in, so the map lines up with the input beside it."""
    rows, cols = values.shape
    image = ax.imshow(values, cmap=cmap, interpolation="nearest",
                      extent=(-0.5, cols * stride - 0.5, rows * stride - 0.5, -0.5), **kw)
    ax.set_xlim(-0.5, shape[1] - 0.5)
    ax.set_ylim(shape[0] - 0.5, -0.5)
    _bare(ax)
    return image


def plot_occlusion(o: Occlusion, x, *, mean: Sequence[float], std: Sequence[float],
                   classes: Sequence[str], title: str = "", max_legend: int = 10) -> Figure:
    """Zeiler & Fergus's Fig. 7: the input with the grey square, then, against the
    square's position, (a) p(class), (b) the most probable class, (c) the total activation
    of the layer's strongest feature map."""
    picture = _picture(x, mean, std)
    fig = _figure(18, 5.6)
    axes = fig.subplots(1, 4)
    ax = axes[0]
    ax.imshow(picture)
    _bare(ax)
    h, w = picture.shape[:2]
    ax.add_patch(Rectangle((w / 2 - o.patch / 2 - 0.5, h / 2 - o.patch / 2 - 0.5), o.patch,
                           o.patch, facecolor="0.5", edgecolor="white", linewidth=1))
    ax.set_title(f"input: {_top(o.probs, classes, 2)}\n"
                 f"grey square {o.patch}x{o.patch} px, moved in steps of {o.stride} px",
                 fontsize=_LABEL)

    name = classes[o.target]
    image = _position_map(axes[1], picture.shape, o.prob, o.stride, "inferno", vmin=0.0, vmax=1.0)
    axes[1].set_title(f"(a) p({name!r}) with the square centred here", fontsize=_LABEL)
    fig.colorbar(image, ax=axes[1], fraction=0.046, pad=0.03).set_label(
        f"probability of {name!r}", fontsize=_LABEL)

    present, counts = np.unique(o.top_class, return_counts=True)
    order = present[np.argsort(counts)[::-1]]
    shown = list(order[:max_legend])
    palette = colormaps["tab10"].colors
    index = np.full(o.top_class.shape, len(shown), dtype=float)
    for k, cls in enumerate(shown):
        index[o.top_class == cls] = k
    cmap = ListedColormap([palette[k % len(palette)] for k in range(len(shown))] + [(0.6, 0.6, 0.6)])
    _position_map(axes[2], picture.shape, index, o.stride, cmap, vmin=-0.5, vmax=len(shown) + 0.5)
    total = o.top_class.size
    def share(c: int) -> str:
        pct = 100 * counts[present == c][0] / total
        return f"{pct:.0f}%" if pct >= 1 else "<1%"

    handles = [Patch(color=cmap(k), label=f"{classes[c]} ({share(c)})") for k, c in enumerate(shown)]
    if len(order) > len(shown):
        handles.append(Patch(color=cmap(len(shown)), label=f"{len(order) - len(shown)} other classes"))
    axes[2].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02),
                   ncol=min(5, len(handles)), fontsize=9, title="class (share of positions)",
                   title_fontsize=9, frameon=False)
    axes[2].set_title("(b) most probable class with the square here", fontsize=_LABEL)

    image = _position_map(axes[3], picture.shape, o.activation, o.stride, "viridis")
    axes[3].set_title(f"(c) '{o.layer}' feature map {o.channel}:\ntotal activation "
                      f"(unoccluded {o.base_activation:.3g})", fontsize=_LABEL)
    fig.colorbar(image, ax=axes[3], fraction=0.046, pad=0.03).set_label(
        "sum of the map", fontsize=_LABEL)
    fig.suptitle(f"{title + ': ' if title else ''}occlusion sensitivity "
                 "(Zeiler & Fergus 2014, Fig. 7)", fontsize=_TITLE)
    return fig


# --- projections -----------------------------------------------------------------------

def _signed_rgb(g: np.ndarray, grey: bool) -> np.ndarray:
    """(C, H, W) signed values as a picture: mid-grey = 0, scaled to the largest value;
    the channel mean for grey inputs, whose colours would mean nothing."""
    g = g.mean(0, keepdims=True).repeat(3, 0) if grey or g.shape[0] != 3 else g
    peak = float(np.abs(g).max()) or 1.0
    return np.clip(0.5 + 0.5 * g / peak, 0, 1).transpose(1, 2, 0)


def plot_projection(p: Projection, x, *, mean: Sequence[float], std: Sequence[float],
                    classes: Sequence[str], title: str = "") -> Figure:
    """The input, then the same unit projected back by the deconvnet, by guided
    backpropagation and by the plain gradient (saliency: max over channels of |grad|)."""
    picture = _picture(x, mean, std)
    fig = _figure(17, 5.0)
    axes = fig.subplots(1, 4)
    axes[0].imshow(picture)
    axes[0].set_title(f"input: {_top(p.probs, classes, 2)}", fontsize=_LABEL)
    if p.positions:
        h, w = picture.shape[:2]
        # The unit's position in input pixels: the layer's grid spread over the image.
        scale_y, scale_x = h / p.map_size[0], w / p.map_size[1]
        ys = [(r + 0.5) * scale_y - 0.5 for r, _ in p.positions]
        xs = [(c + 0.5) * scale_x - 0.5 for _, c in p.positions]
        axes[0].scatter(xs, ys, marker="+", s=160, c="red", linewidths=2,
                        label="the kept activation" + ("s" if len(xs) > 1 else ""))
        axes[0].legend(loc="lower left", fontsize=9, framealpha=0.8)
    grey = bool(np.allclose(picture, picture[..., :1]))
    axes[1].imshow(_signed_rgb(p.deconv, grey))
    axes[1].set_title("deconvnet (Zeiler & Fergus)", fontsize=_LABEL)
    axes[2].imshow(_signed_rgb(p.guided, grey))
    axes[2].set_title("guided backpropagation", fontsize=_LABEL)
    sal = np.abs(p.saliency).max(0)
    image = axes[3].imshow(sal, cmap="hot", vmin=0)
    axes[3].set_title("saliency: |gradient|, max over channels", fontsize=_LABEL)
    fig.colorbar(image, ax=axes[3], fraction=0.046, pad=0.03).set_label(
        "|d objective / d pixel|", fontsize=_LABEL)
    for ax in axes:
        _bare(ax)
    fig.supxlabel("deconvnet and guided backpropagation: mid-grey = 0, each scaled to its "
                  "largest value", fontsize=9)
    fig.suptitle(f"{title + ': ' if title else ''}projected back to pixels: {p.what}",
                 fontsize=_TITLE)
    return fig


# --- dream -----------------------------------------------------------------------------

def plot_dream(d: Dream, *, mean: Sequence[float], std: Sequence[float],
               classes: Sequence[str], title: str = "", k: int = 5) -> Figure:
    """Where the ascent started, the image the network made, what it predicts for that
    image, and the objective over the steps."""
    fig = _figure(17, 4.8)
    axes = fig.subplots(1, 4, gridspec_kw=dict(width_ratios=[1, 1, 1.1, 1.1]))
    axes[0].imshow(_picture(d.start, mean, std), interpolation="nearest")
    axes[0].set_title(f"start: {_top(d.start_probs, classes, 1)}", fontsize=_LABEL)
    axes[1].imshow(_picture(d.image, mean, std), interpolation="nearest")
    axes[1].set_title("dream", fontsize=_LABEL)
    _bare(axes[0])
    _bare(axes[1])
    order = list(np.argsort(d.probs)[::-1][:k])
    if d.target is not None and d.target not in order:  # the class dreamt of is always shown
        order[-1] = d.target
    order = np.array(order[::-1])
    colours = ["tab:red" if i == d.target else "tab:blue" for i in order]
    bars = axes[2].barh(range(len(order)), 100 * d.probs[order], color=colours)
    axes[2].bar_label(bars, [f"{100 * d.probs[i]:.1f}%" for i in order], padding=3, fontsize=9)
    axes[2].set_yticks(range(len(order)), [str(classes[i]) for i in order], fontsize=_LABEL)
    axes[2].set_xlim(0, 118)  # room for the labels
    axes[2].set_xticks(range(0, 101, 20))
    axes[2].set_xlabel("probability of the dream, %", fontsize=_LABEL)
    axes[2].set_title(f"top {len(order)} classes", fontsize=_LABEL)
    axes[3].plot(np.arange(1, len(d.scores) + 1), d.scores, color="tab:green")
    axes[3].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[3].set_xlabel("step", fontsize=_LABEL)
    ylabel = ("class score (logit)" if d.layer is None else
              "mean activation of the map" if d.channel is not None else "mean square activation")
    axes[3].set_ylabel(ylabel, fontsize=_LABEL)
    axes[3].set_title("objective during the ascent", fontsize=_LABEL)
    axes[3].grid(alpha=0.3)
    what = d.what
    if d.target is not None:
        what += f": p = {100 * d.probs[d.target]:.1f}%"
    fig.suptitle(f"{title + ': ' if title else ''}the network's image of {what}", fontsize=_TITLE)
    return fig
