"""Evaluation as the papers report it: top-k error, 10-crop, dense multi-scale, ensembles.

- ``topk_errors``: an example counts as correct at k when its true class is among the k
  highest scores (ILSVRC's definition, used by every paper of the zoo).
- ``evaluate``: one pass over a loader in one of four modes. ``"center"`` feeds the
  loader's images as they are (normally the centre crop of the eval transform).
  ``"ten_crop"`` takes the 4 corner and the centre crops of each image and their mirrors,
  and averages the 10 softmax outputs (AlexNet, Krizhevsky et al. 2012, Sec. 4.1).
  ``"multi_crop"`` takes a regular grid x grid of crops and their mirrors at each scale
  (VGG, Simonyan & Zisserman 2015, Sec. 4.3: 5 x 5 x 2 = 50 crops per scale).
  ``"dense"`` applies the convolutionized network to the whole image at each scale,
  averages the class-score map over positions, and averages the softmax outputs over
  scales and horizontal flips (OverFeat, Sermanet et al. 2014; VGG Sec. 3.2).
  ``"multi_crop+dense"`` (VGG's Table 5, their best single-model result) and
  ``"ten_crop+dense"`` average the softmax outputs of both kinds of view.
- ``evaluate_protocol``: one of the papers' named protocols (:mod:`.protocols`) on the
  ORIGINAL images, which it resizes and crops itself; what ``convnets eval --protocol``
  runs. ``evaluate``'s multi-view modes take whatever the loader gives: with an
  evaluation preset that crops (``imagenet``, ``alexnet``, ...) they crop the centre
  crop, not the image the papers cropped.
- ``convolutionize``: fully connected layers as convolutions (VGG Sec. 3.2; in
  :mod:`.convolutionize`, re-exported here).
- ``ensemble_predict``: the mean softmax of several models.
- ``plot_confusion``: a confusion-matrix PNG.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core import autocast, replacing
from ..errors import ConfigError, DataError
from .convolutionize import convolutionize, dense_net
from .protocols import Protocol

__all__ = ["EVAL_MODES", "topk_errors", "check_scales", "evaluate", "evaluate_protocol",
           "convolutionize",
           "ensemble_predict", "plot_confusion"]

EVAL_MODES = ("center", "ten_crop", "multi_crop", "dense", "ten_crop+dense", "multi_crop+dense")


# --- metrics -----------------------------------------------------------------------------

def topk_errors(logits: torch.Tensor, targets: torch.Tensor,
                ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k error in percent for each k, keyed ``"top{k}_err"``.

    ``logits`` are any scores ``(N, classes)`` (logits, probabilities or log-probabilities
    rank the same); k larger than the number of classes is clipped to it, so top-5 error
    on a 3-class problem is 0. Ties are broken by ``torch.topk``.
    """
    if logits.ndim != 2 or targets.shape != logits.shape[:1] or len(targets) == 0:
        raise ValueError(f"expected scores (N, classes) and N targets, N > 0; got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    hits = _topk_hits(logits, targets, ks)
    return {f"top{k}_err": 100.0 * (1.0 - hits[k] / len(targets)) for k in ks}


def _topk_hits(scores: torch.Tensor, targets: torch.Tensor, ks: Sequence[int]) -> dict[int, int]:
    """How many examples have their true class among the k highest scores, per k."""
    classes = scores.shape[1]
    top = scores.topk(min(max(ks), classes), dim=1).indices
    hit = top == targets.view(-1, 1).to(top.device)
    return {k: int(hit[:, :min(k, classes)].any(1).sum().item()) for k in ks}


def _confusion(targets: torch.Tensor, preds: torch.Tensor, classes: int) -> torch.Tensor:
    """Counts ``[true, predicted]``."""
    return torch.bincount(targets * classes + preds, minlength=classes * classes).view(classes, classes)


# --- prediction --------------------------------------------------------------------------

class _EvalMode:
    """Put models in eval mode for a block and restore their training flags after."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        self.models = models

    def __enter__(self) -> None:
        self.flags = [m.training for m in self.models]
        for m in self.models:
            m.eval()

    def __exit__(self, *exc) -> None:
        for m, flag in zip(self.models, self.flags):
            m.train(flag)


def ensemble_predict(models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """The average of the models' softmax outputs for ``x`` ``(B, classes)``, computed in
    eval mode without gradients (the training flags are restored)."""
    models = list(models)
    if not models:
        raise ValueError("ensemble_predict needs at least one model")
    with _EvalMode(models), torch.no_grad():
        return torch.stack([F.softmax(m(x).float(), dim=1) for m in models]).mean(0)


def _rescale(x: torch.Tensor, shorter: int | None) -> torch.Tensor:
    h, w = x.shape[-2:]
    if shorter is None or shorter == min(h, w):
        return x
    size = (round(h * shorter / min(h, w)), round(w * shorter / min(h, w)))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _grid_offsets(size: int, crop: int, n: int) -> list[int]:
    return [round(i * (size - crop) / (n - 1)) for i in range(n)] if n > 1 else [(size - crop) // 2]


def _views(nets: Sequence[nn.Module], dense_nets: Sequence[nn.Module] | None, x: torch.Tensor,
           mode: str, scales: Sequence[int | None], crop: tuple[int, int] | None,
           flip: bool, grid: int) -> list[torch.Tensor]:
    """Log-softmax outputs ``(B, classes)`` of every model for every view of ``x``."""
    from torchvision.transforms.v2.functional import ten_crop

    if mode == "center":
        return [F.log_softmax(net(x).float(), dim=1) for net in nets]
    out: list[torch.Tensor] = []
    crop = crop or (round(min(x.shape[-2:]) * 224 / 256),) * 2
    for q in scales:
        xs = _rescale(x, q)
        h, w = xs.shape[-2:]
        if "crop" in mode and (crop[0] > h or crop[1] > w):
            raise ConfigError(f"crop {crop[0]}x{crop[1]} is larger than the image {h}x{w}")
        if "ten_crop" in mode:
            crops = torch.cat(ten_crop(xs, list(crop)))  # 10 * B images, one forward per model
            for net in nets:
                out += list(F.log_softmax(net(crops).float(), dim=1).chunk(10))
        if "multi_crop" in mode:  # VGG Sec. 4.3: a regular grid of crops and their mirrors
            for top in _grid_offsets(h, crop[0], grid):
                row = [xs[..., top:top + crop[0], left:left + crop[1]]
                       for left in _grid_offsets(w, crop[1], grid)]
                row = torch.cat(row + [r.flip(-1) for r in row])  # one forward per grid row
                for net in nets:
                    out += list(F.log_softmax(net(row).float(), dim=1).chunk(2 * grid))
        if "dense" in mode:
            for img in ([xs, xs.flip(-1)] if flip else [xs]):
                for net in dense_nets:
                    score_map = net(img).float()
                    out.append(F.log_softmax(score_map.mean((2, 3)), dim=1))
    return out


def check_scales(scales: Sequence[int] | None) -> None:
    """Each scale a shorter side in pixels: a positive whole number (a ConfigError if not)."""
    if scales is not None and any(isinstance(q, bool) or not isinstance(q, int) or q < 1
                                  for q in scales):
        raise ConfigError.of("scales", f"must be positive whole numbers (shorter sides in "
                             f"pixels), got {', '.join(map(str, scales))}")


def evaluate(model: nn.Module | Sequence[nn.Module], loader: Iterable, *,
             device: str | torch.device = "cpu", mode: str = "center",
             scales: Sequence[int] | None = None, crop_size: int | tuple[int, int] | None = None,
             flip: bool = True, grid: int = 5, amp: str | None = None,
             num_classes: int | None = None,
             reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict:
    """Evaluate ``model`` (or an ensemble: a list of models, softmax outputs averaged) on
    ``loader``'s ``(images, labels)`` batches.

    ``mode`` is one of ``EVAL_MODES`` (see the module docstring). For the multi-view
    modes the loader gives whole images (for ImageNet, e.g. resized to 256 without
    cropping; for variable sizes use batch size 1); ``scales`` lists the shorter sides
    (pixels) at which each image is evaluated (default: as given); ``crop_size`` is the
    size of the crops, normally the model's input (default: 224/256 of the loader
    images' shorter side); ``grid`` is the side of the multi-crop grid; ``flip`` adds
    mirrored images to dense evaluation. Views are combined by averaging softmax outputs
    (AlexNet, VGG), and the loss is the negative log of that average. Models are moved to
    ``device``, put in eval mode and restored to their training flags afterwards;
    ``amp`` (``"bf16"``, ``"fp16"``) enables autocast.

    In data-parallel runs each process passes its own shard of the test set (every image
    in exactly one shard) and ``reduce``, which sums a tensor over the processes (an
    all-reduce); the counts are summed before any rate is computed, so the result is
    that of one process over the whole set. ``num_classes`` is then required, since a
    process may hold no images at all.

    Returns ``top1_err``, ``top5_err`` (error, %), ``loss`` (mean cross-entropy, nats),
    ``n``, ``confusion`` (int64 tensor [true, predicted]) and ``per_class_acc`` (float
    tensor: accuracy per true class, %, NaN for classes absent from the data).
    """
    if mode not in EVAL_MODES:
        raise ConfigError(f"unknown evaluation mode {mode!r}; choose from {', '.join(EVAL_MODES)}")
    check_scales(scales)
    nets = list(model) if isinstance(model, (list, tuple)) else [model]
    device = torch.device(device)
    for net in nets:
        net.to(device)
    dense_nets = [dense_net(net) for net in nets] if "dense" in mode else None
    crop = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
    scale_list: list[int | None] = list(scales) if scales else [None]

    tally = _Tally(num_classes, reduce)
    with _EvalMode(nets), torch.inference_mode():
        for batch in loader:
            x, y = batch[0].to(device, non_blocking=True), batch[1].to(device)
            with autocast(device, amp):
                logp = _views(nets, dense_nets, x, mode, scale_list, crop, flip, grid)
            tally.add(logp, y)
    return tally.result(device)


class _Tally:
    """The counts of an evaluation, summed over batches (and processes, with ``reduce``)."""

    def __init__(self, num_classes: int | None,
                 reduce: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        if reduce is not None and num_classes is None:
            raise ValueError("evaluate: num_classes is needed to reduce over processes")
        self.reduce = reduce
        self.confusion = (torch.zeros(num_classes, num_classes, dtype=torch.int64)
                          if num_classes else None)
        self.loss_sum, self.n, self.top_hits = 0.0, 0, {1: 0, 5: 0}

    def add(self, logp: list[torch.Tensor], y: torch.Tensor) -> None:
        """Count a batch from the log-softmax outputs of all its views (and members)."""
        # log of the mean of the views' probabilities, computed stably
        logp = torch.logsumexp(torch.stack(logp), 0) - math.log(len(logp))
        if self.confusion is None:
            self.confusion = torch.zeros(logp.shape[1], logp.shape[1], dtype=torch.int64)
        self.loss_sum += F.nll_loss(logp, y, reduction="sum").item()
        for k, hits in _topk_hits(logp, y, (1, 5)).items():
            self.top_hits[k] += hits
        self.confusion += _confusion(y.cpu(), logp.argmax(1).cpu(), len(self.confusion))
        self.n += len(y)

    def result(self, device: torch.device) -> dict:
        loss_sum, top_hits, n, confusion = self.loss_sum, self.top_hits, self.n, self.confusion
        if self.reduce is not None:
            sums = self.reduce(torch.tensor([loss_sum, top_hits[1], top_hits[5], n],
                                            dtype=torch.float64, device=device)).tolist()
            loss_sum, top_hits, n = sums[0], {1: round(sums[1]), 5: round(sums[2])}, round(sums[3])
            confusion = self.reduce(confusion.to(device)).cpu()
        if n == 0:
            raise DataError("evaluate: the test data holds no images")
        support = confusion.sum(1)
        per_class = torch.where(support > 0, 100.0 * confusion.diag() / support.clamp_min(1),
                                torch.tensor(float("nan"), dtype=torch.float64))
        return {"top1_err": 100.0 * (1 - top_hits[1] / n),
                "top5_err": 100.0 * (1 - top_hits[5] / n), "loss": loss_sum / n, "n": n,
                "confusion": confusion, "per_class_acc": per_class.float()}


def evaluate_protocol(model: nn.Module | Sequence[nn.Module], loader: Iterable,
                      protocol: Protocol, input_hw: tuple[int, int], *, mirrors: bool,
                      scales: Sequence[int] | None = None, batch_size: int = 64,
                      device: str | torch.device = "cpu", amp: str | None = None,
                      num_classes: int | None = None, progress: bool = False) -> dict:
    """Evaluate ``model`` (or an ensemble) with one of the papers' protocols
    (:mod:`convnets.engine.protocols`) on ``loader``'s batches of ORIGINAL images: lists of
    ``(image (C, H, W), label)``, each image normalised but neither resized nor cropped
    (any sizes). ``input_hw`` is what the model was trained at (the protocol's sizes scale
    with it); ``mirrors`` whether mirrored views are added (the data's rule); ``scales``,
    where given, replace the protocol's shorter sides (pixels). Views go through the
    networks ``batch_size`` at a time; ``progress`` shows a bar (images). Returns what
    :func:`evaluate` returns."""
    from tqdm import tqdm

    from .protocols import protocol_views, scaled_sizes

    check_scales(scales)
    nets = list(model) if isinstance(model, (list, tuple)) else [model]
    device = torch.device(device)
    for net in nets:
        net.to(device)
    sides, crop = scaled_sizes(protocol, input_hw, scales)
    dense = protocol.pool != "mean" or "dense" in protocol.views
    dense_nets = [dense_net(net) for net in nets] if dense else None
    pool = _POOLS[protocol.pool]
    tally = _Tally(num_classes, None)
    bar = tqdm(total=len(getattr(loader, "dataset", ())) or None, unit="img", leave=False,
               disable=not progress, desc=protocol.name)
    with _EvalMode(nets), torch.inference_mode(), bar:
        for batch in loader:
            for images, y in _same_sizes(batch):
                x, y = images.to(device, non_blocking=True), y.to(device)
                views = protocol_views(x, protocol, sides, crop, mirrors)
                with autocast(device, amp):
                    logp = _forward_views(nets, dense_nets, list(views), pool, batch_size,
                                          protocol.pool != "mean")
                tally.add(logp, y)
                bar.update(len(y))
    return tally.result(device)


_POOLS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mean": lambda score_map: score_map.mean((2, 3)),
    # DPN (Chen et al. 2017, Sec. 4.1): the mean of global average and global max pooling
    "mean-max": lambda score_map: (score_map.mean((2, 3)) + score_map.amax((2, 3))) / 2,
}


def _same_sizes(batch: Sequence[tuple[torch.Tensor, int]]):
    """The images of a batch stacked by size, with their labels."""
    groups: dict[tuple[int, ...], list[tuple[torch.Tensor, int]]] = {}
    for image, label in batch:
        groups.setdefault(tuple(image.shape), []).append((image, int(label)))
    for pairs in groups.values():
        yield torch.stack([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])


def _forward_views(nets: Sequence[nn.Module], dense_nets: Sequence[nn.Module] | None,
                   views: list, pool: Callable, batch_size: int,
                   all_dense: bool) -> list[torch.Tensor]:
    """Log-softmax outputs ``(B, classes)`` of every net for every view; views of one
    shape go through a net together, at most ``batch_size`` images at a time."""
    groups: dict[tuple, list[torch.Tensor]] = {}
    for view in views:
        groups.setdefault((view.dense or all_dense, tuple(view.image.shape)), []).append(view.image)
    out: list[torch.Tensor] = []
    for (dense, shape), images in groups.items():
        per_chunk = max(1, batch_size // shape[0])
        for start in range(0, len(images), per_chunk):
            chunk = images[start:start + per_chunk]
            x = torch.cat(chunk)
            for i, net in enumerate(nets):
                scores = pool(dense_nets[i](x).float()) if dense else net(x).float()
                out += list(F.log_softmax(scores, dim=1).chunk(len(chunk)))
    return out


# --- figures -----------------------------------------------------------------------------

def plot_confusion(matrix: torch.Tensor, class_names: Sequence[str], path: str | Path, *,
                   title: str = "Confusion matrix") -> Path:
    """Write the confusion matrix ``[true, predicted]`` as a PNG and return its path.

    Colours show each row normalised to 1 (the fraction of a true class given each
    prediction), so rare and common classes read alike; counts are printed in the cells
    up to 20 classes, class names on the axes up to 100 (beyond that, indices only).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = torch.as_tensor(matrix).detach().cpu().to(torch.float64)
    k = m.shape[0]
    if m.ndim != 2 or m.shape[1] != k or len(class_names) != k:
        raise ValueError(f"plot_confusion: a {k}x{k} matrix needs {k} class names, "
                         f"got shape {tuple(m.shape)} and {len(class_names)} names")
    rows = m / m.sum(1, keepdim=True).clamp_min(1)
    total = int(m.sum().item())
    accuracy = 100.0 * m.diag().sum().item() / max(total, 1)

    side = min(24.0, max(6.0, 2.5 + 0.2 * k))
    fig = Figure(figsize=(side + 1.5, side), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(rows.numpy(), cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, shrink=0.6 if k > 20 else 1.0,
                 label="fraction of the true class")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}: n = {total}, accuracy {accuracy:.2f}%")
    if k <= 100:
        fontsize = 10 if k <= 20 else 8 if k <= 50 else 7
        ax.set_xticks(range(k), [str(c) for c in class_names], rotation=90, fontsize=fontsize)
        ax.set_yticks(range(k), [str(c) for c in class_names], fontsize=fontsize)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                count = int(m[i, j].item())
                if count:
                    ax.text(j, i, str(count), ha="center", va="center", fontsize=9,
                            color="white" if rows[i, j] > 0.5 else "black")
    fig.tight_layout()
    path = Path(path)
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
