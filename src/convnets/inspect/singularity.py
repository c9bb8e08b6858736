"""Overlap singularities: collapsed channels and the effective dimensionality of activations.

Orhan & Pitkow (2018) call two units of a layer collapsed when they compute the same
function: their activations stay collinear on every input, the loss landscape is
degenerate along their difference, and the layer's effective dimensionality drops. The
GUNN paper (Section 4) argues that residual learning and the gradual update break this
symmetry. This module measures both effects on a batch of inputs:

- **collapsed pairs**: channel pairs whose activations, taken over the batch and all
  spatial positions and centred per channel, have ``|cosine| > threshold`` (the Pearson
  correlation of the two channels; 0.99 by default). Constant channels ("dead", zero
  variance) have no direction and are counted apart, never in pairs.
- **participation ratio** ``(sum l)^2 / sum l^2`` of the eigenvalues ``l`` of the channel
  covariance (1 when one direction carries everything, C when all C are equal), and
  **dims99**, the number of leading eigenvalues that hold 99% of the variance.

Rows are the GUNN/SUNN layers (their outputs) and the convolution blocks outside them
(the output of a conv + BN + ReLU block, or of a bare convolution).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..models.gunn import GunnLayer
from ..models.hooks import capture_outputs
from ..models.layers import ConvBNAct

__all__ = ["LayerStats", "ActivationStats", "channel_stats", "analyze_singularities",
           "TargetAnalysis", "check_threshold", "analyze_target"]


@dataclass
class LayerStats:
    name: str
    kind: str
    channels: int
    dead: int
    collapsed_pairs: int
    pairs: int                 # pairs of live channels
    participation_ratio: float
    dims99: int


class ActivationStats:
    """Running first and second moments of a layer's channels (float64)."""

    def __init__(self, channels: int) -> None:
        self.n = 0
        self.sum = torch.zeros(channels, dtype=torch.float64)
        self.outer = torch.zeros(channels, channels, dtype=torch.float64)

    def update(self, acts: torch.Tensor) -> None:
        """``acts``: (B, C, ...) activations; every sample and position is one observation."""
        m = acts.detach().transpose(0, 1).reshape(acts.shape[1], -1).t().to("cpu", torch.float64)
        self.n += m.shape[0]
        self.sum += m.sum(0)
        self.outer += m.t() @ m

    def covariance(self) -> torch.Tensor:
        if self.n < 2:
            raise ValueError("need at least two observations per channel")
        mean = self.sum / self.n
        return self.outer / self.n - torch.outer(mean, mean)


def channel_stats(cov: torch.Tensor, threshold: float = 0.99,
                  dead_tol: float = 1e-10) -> tuple[int, int, int, float, int]:
    """(dead, collapsed pairs, live pairs, participation ratio, dims99) of a covariance."""
    var = cov.diagonal().clamp_min(0)
    scale = float(var.max()) if var.numel() else 0.0
    live = var > dead_tol * max(scale, 1e-300)
    dead = int((~live).sum())
    c = cov[live][:, live]
    sd = c.diagonal().sqrt()
    corr = c / torch.outer(sd, sd)
    k = corr.shape[0]
    upper = torch.triu(torch.ones(k, k, dtype=torch.bool), diagonal=1)
    collapsed = int((corr.abs()[upper] > threshold).sum())
    eig = torch.linalg.eigvalsh(cov).clamp_min(0).flip(0)
    total = float(eig.sum())
    if total <= 0:
        return dead, collapsed, k * (k - 1) // 2, 0.0, 0
    pr = total ** 2 / float((eig ** 2).sum())
    dims99 = int((torch.cumsum(eig, 0) < 0.99 * total).sum()) + 1
    return dead, collapsed, k * (k - 1) // 2, pr, min(dims99, eig.numel())


def _probe_points(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """GUNN layers, and conv blocks / bare convs that are not part of a GUNN layer."""
    points: list[tuple[str, nn.Module, str]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(child, GunnLayer):
                points.append((full, child, "gunn" if child.gradual else "sunn"))
            elif isinstance(child, ConvBNAct):
                points.append((full, child, "conv-bn" + ("-relu" if len(child) > 2 else "")))
            elif isinstance(child, nn.Conv2d):
                points.append((full, child, "conv"))
            else:
                visit(full, child)

    visit("", model)
    return points


@torch.no_grad()
def analyze_singularities(model: nn.Module, batches: Iterable[torch.Tensor], *,
                          threshold: float = 0.99) -> list[LayerStats]:
    """Per-layer collapsed channel pairs and effective dimensionality over ``batches``
    (the model is run as it is: call ``model.eval()`` first for inference statistics)."""
    if not 0.0 < threshold < 1.0:
        raise ConfigError.of("threshold", f"must be in (0, 1), got {threshold}")
    points = _probe_points(model)
    stats: dict[str, ActivationStats] = {}

    def record(name: str, out: torch.Tensor) -> None:
        if name not in stats:
            stats[name] = ActivationStats(out.shape[1])
        stats[name].update(out)

    with capture_outputs(model, [name for name, _m, _kind in points], record):
        seen = 0
        for x in batches:
            model(x)
            seen += 1
    if not seen:
        raise DataError("no input batches to analyse")
    rows = []
    for name, _m, kind in points:
        if name not in stats:  # a module the forward pass never reached
            continue
        s = stats[name]
        dead, collapsed, pairs, pr, d99 = channel_stats(s.covariance(), threshold)
        rows.append(LayerStats(name, kind, s.sum.numel(), dead, collapsed, pairs, pr, d99))
    return rows


# --- a model, run or weights file on a dataset ------------------------------------------

@dataclass
class TargetAnalysis:
    """What :func:`analyze_target` measured: one row per layer, and on what."""

    model: str
    weights: str | None        # the weights file; None: the model's initialisation
    data: str | None           # the dataset spec; None: the built-in digits
    batches: int               # test batches analysed
    threshold: float
    rows: list[LayerStats]


def check_threshold(threshold: float) -> None:
    if not 0.0 < threshold < 1.0:
        raise ConfigError.of("threshold", f"must be in (0, 1), got {threshold}")


def analyze_target(model: str, *, weights: str | None = None, run: str | None = None,
                   data: str | None = None, batches: int = 4, batch_size: int = 64,
                   threshold: float = 0.99,
                   input_size: str | None = None) -> TargetAnalysis:
    """:func:`analyze_singularities` of ``model`` on the first ``batches`` test batches of
    ``data``: with ``weights`` (a file) or ``run`` (a run directory: its last checkpoint and,
    unless ``data`` is given, its dataset), else at its initialisation. ``input_size`` is
    S, HxW or CxHxW (default: the run's, else the model's own)."""
    import itertools

    from torch.utils.data import DataLoader

    from ..core import parse_input_size
    from ..data import open_dataset
    from ..engine.config import check_whole
    from ..engine.runs import RunTarget, load_models, resolve_target
    from ..models import model_info

    check_whole(batches=(batches, 1), batch_size=(batch_size, 1))
    check_threshold(threshold)
    if run and weights:
        raise ConfigError("analyze a run or a weights file, not both")
    info = model_info(model)
    if run:
        target = resolve_target(run)
        if target.model != info.name:
            raise ConfigError(f"{run} holds a {target.model}, not a {info.name}")
        target.weights = target.weights[:1]
    else:
        target = RunTarget(info.name, [weights] if weights else [])
    data = data if data is not None else (target.config.data if target.config else None)
    size = parse_input_size(input_size, info.input_size[0]) if input_size else target.input_size
    dataset = open_dataset(data, "test", input_size=size, train_transform=False)
    net = load_models(target, num_classes=getattr(dataset, "num_classes", None))[0]
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    rows = analyze_singularities(net, (x for x, _ in itertools.islice(loader, batches)),
                                 threshold=threshold)
    return TargetAnalysis(info.name, target.weights[0] if target.weights else None, data,
                          min(batches, len(loader)), threshold, rows)
