"""Batch-norm statistics re-estimated on training images after training.

The running averages a network keeps during training lag behind its last weights and
describe its training inputs; the DPN authors (Chen et al. 2017) and the Caffe ResNet
models recompute them over training images with the final weights, and a network
evaluated at another resolution than it was trained at needs them recomputed at that
resolution. :func:`reestimate_bn` replaces every BatchNorm's running mean and variance
by their plain average over the batches seen (momentum ``None``), with every other
layer in eval mode, so dropout and the like change nothing; the weights are untouched.
:func:`reestimate_target` does it for a run and writes the result as a new weights file
beside the checkpoint's, never over it: ``convnets eval`` and ``predict`` take that
file as a target like any other.
"""
from __future__ import annotations

import itertools
import os
from typing import Iterable

import torch
from torch import nn

from ..core import local_device
from ..errors import ConfigError, DataError

__all__ = ["reestimate_bn", "reestimate_target", "BN_SUFFIX"]

BN_SUFFIX = "-bn"  # model.safetensors -> model-bn.safetensors

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def reestimate_bn(model: nn.Module, loader: Iterable, *, batches: int | None = None,
                  device: str | torch.device = "cpu") -> int:
    """Recompute the running statistics of every batch-norm layer of ``model`` over
    ``loader``'s ``(images, labels)`` batches (the first ``batches`` of them, or all),
    in place. Returns how many images were seen; the model is left in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, _NORMS) and m.track_running_stats]
    if not norms:
        raise ConfigError(f"{type(model).__name__} has no batch-norm layers to re-estimate")
    device = torch.device(device)
    model.to(device).eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative (plain) average over the batches
        m.train()
    seen = 0
    try:
        with torch.no_grad():
            for x, _ in itertools.islice(loader, batches):
                model(x.to(device))
                seen += len(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            m.eval()
    if seen == 0:
        raise DataError("re-estimating batch-norm statistics: the training data holds no images")
    return seen


def reestimate_target(target: str, *, data: str | None = None, model: str | None = None,
                      ema: bool = False, batches: int | None = 100, batch_size: int | None = None,
                      augment: bool = False, workers: int = 0, device: str = "auto",
                      out: str | None = None) -> dict:
    """Re-estimate the statistics of a run's (or weights file's) network on its training
    split and write the weights to ``out`` (default: beside the weights read, with
    ``-bn`` before the extension). Images are the evaluation preset's (``augment``: the
    training augmentation's). Returns ``weights`` (the file written), ``images`` and
    ``source`` (the weights read)."""
    from torch.utils.data import DataLoader

    from ..data import open_dataset
    from .checkpoint import save_weights
    from .runs import load_models, resolve_target

    resolved = resolve_target(target, model=model, ema=ema)
    if len(resolved.weights) != 1:
        raise ConfigError(f"{target}: re-estimating batch-norm statistics needs one weights "
                          f"file, {target} names {len(resolved.weights)}")
    source = resolved.weights[0]
    cfg = resolved.config
    data = data if data is not None else (cfg.data if cfg else None)
    train_set = open_dataset(data, "train", input_size=resolved.input_size,
                             train_transform=augment, preset=cfg.preset if cfg else None)
    net = load_models(resolved)[0]
    if net.num_classes != train_set.num_classes:
        raise ConfigError(f"{source} has {net.num_classes} classes, the training data "
                          f"{train_set.num_classes}; give --data with the data it was trained on")
    loader = DataLoader(train_set, batch_size=batch_size or (cfg.batch_size if cfg else 64),
                        shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    seen = reestimate_bn(net, loader, batches=batches, device=local_device(device))
    stem, ext = os.path.splitext(source)
    out = out or f"{stem}{BN_SUFFIX}.safetensors"
    if os.path.abspath(out) == os.path.abspath(source):
        raise ConfigError(f"--out {out} is the weights file read; the new weights go beside it")
    save_weights(out, net.state_dict(), metadata={"bn_statistics": f"re-estimated on {seen} "
                                                  f"training images of {data or 'the default data'}",
                                                  "source": os.path.basename(source)})
    return {"weights": out, "images": seen, "source": source}
