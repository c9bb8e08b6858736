"""Reuse a trained network's features for a new task from a handful of examples.

The lecture's experiment (features of an ImageNet network, the last layer chopped off and
a new classification layer trained on Caltech-256: state-of-the-art accuracy from 6
images per class), for any network and data: the frozen network maps each image to its
penultimate features (``forward_head(..., pre_logits=True)``), and a linear classifier
is fitted on ``shots`` training images per class of the new data. Its test error is
reported next to the same architecture trained from scratch on the same images (unless
``scratch=False``: comparing the features of several networks needs the scratch baseline
once, not per network) and, on request, the network fine-tuned end to end from the
trained weights, for several
draws of the training images (seeds ``seed``, ``seed + 1``, ...), as mean and standard
deviation over the draws.

Every method sees the new images through the trained network's own preprocessing
(preset, input size and normalisation from its run). The linear classifier is
scikit-learn's multinomial logistic regression (L2, ``C = 1``) on standardised features,
the images unaugmented. Scratch and fine-tuning train with the preset's augmentation,
SGD with Nesterov momentum 0.9, learning rate 0.05 and weight decay 5e-4 (the ``digits``
recipe's), batch 32 (or all the shots, if fewer), a 10% linear warm-up and a cosine decay
over ``steps`` optimizer steps (the :func:`convnets.engine.train.train_one_epoch` loop).
The two differ only in where they start: random weights, or the trained ones with a new
classifier (``reset_classifier``).
"""
from __future__ import annotations

import copy
import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..errors import ConfigError, DataError
from .predict import Predictor

__all__ = ["METHODS", "TransferResult", "draw_shots", "extract_features", "fit_linear",
           "transfer"]

METHODS = {"linear": "linear classifier on frozen features", "scratch": "trained from scratch",
           "finetune": "fine-tuned end to end"}


@dataclass
class TransferResult:
    """Test top-1 errors (%) per method and draw; ``seeds[d]`` drew the shots of draw d."""

    target: str
    model: str
    data: str | None
    classes: list[str]
    shots: int
    seeds: list[int]
    test_images: int
    steps: int
    errors: dict[str, list[float]] = field(default_factory=dict)

    def mean_std(self, method: str) -> tuple[float, float]:
        """Mean and sample standard deviation over the draws (0 for a single draw)."""
        errs = self.errors[method]
        return statistics.fmean(errs), (statistics.stdev(errs) if len(errs) > 1 else 0.0)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["summary"] = {m: dict(zip(("mean_top1_err", "std_top1_err"), self.mean_std(m)))
                        for m in self.errors}
        return d


# --- the pieces ------------------------------------------------------------------------

def draw_shots(targets: Sequence[int], shots: int, num_classes: int,
               rng: np.random.Generator) -> list[int]:
    """``shots`` indices of each class (drawn without replacement), ascending."""
    targets = np.asarray(targets)
    chosen = []
    for c in range(num_classes):
        pool = np.flatnonzero(targets == c)
        if len(pool) < shots:
            raise ConfigError.of("shots", f"{shots} is more than the {len(pool)} training "
                                 f"images of class {c} hold")
        chosen += rng.choice(pool, size=shots, replace=False).tolist()
    return sorted(chosen)


@torch.no_grad()
def extract_features(model: nn.Module, loader: DataLoader,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features ``(N, D)`` and labels of every image in ``loader``, the model in
    eval mode (batch norm uses its running statistics, which stay as they are)."""
    model.eval().to(device)
    feats, labels = [], []
    for x, y in loader:
        f = model.forward_head(model.forward_features(x.to(device)), pre_logits=True)
        feats.append(f.flatten(1).float().cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(feats), torch.cat(labels)


def fit_linear(features: torch.Tensor, labels: torch.Tensor) -> Callable[[torch.Tensor], np.ndarray]:
    """A multinomial logistic regression on standardised ``features``; returns its
    predict function (features in, class indices out)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    clf.fit(features.double().numpy(), labels.numpy())
    return lambda f: clf.predict(f.double().numpy())


def _train(model: nn.Module, name: str, data: Dataset, *, steps: int, seed: int,
           device: torch.device) -> nn.Module:
    """Train ``model`` on ``data`` for ``steps`` SGD steps (see the module docstring)."""
    from ..engine.config import TrainConfig
    from ..engine.epoch import train_one_epoch
    from ..engine.optim import build_optimizer
    from ..engine.schedules import lr_factor

    batch = min(32, len(data))
    per_epoch = math.ceil(len(data) / batch)
    epochs = math.ceil(steps / per_epoch)
    cfg = TrainConfig(model=name, epochs=epochs, batch_size=batch, lr=0.05, weight_decay=5e-4,
                      warmup_epochs=0.1 * epochs, schedule="cosine", workers=0)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(data, batch_size=batch, shuffle=True, generator=generator)
    model.to(device)
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, per_epoch))
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        train_one_epoch(model, loader, optimizer, device=device, criterion=criterion,
                        scheduler=scheduler, epoch=epoch)
    return model.eval()


def _test_err(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    from ..engine.evaluation import evaluate

    return evaluate(model, loader, device=device)["top1_err"]


# --- the experiment ----------------------------------------------------------------------

def transfer(target: str | Predictor, data: str, shots: int, *, classes: str | None = None,
             model: str | None = None, finetune: bool = False, scratch: bool = True,
             draws: int = 5, seed: int = 0,
             steps: int = 300, batch_size: int = 64, device: str = "auto",
             log: Callable[[str], None] | None = None) -> TransferResult:
    """Transfer the network ``target`` (a run directory, weights file or model name, or a
    loaded Predictor, which is left as it is) to ``data`` (a dataset spec; ``classes`` a
    selection of its classes, as in ``digits:5-9``) with ``shots`` training images per
    class; see the module docstring.
    ``log`` receives a line per finished draw."""
    from ..data import open_dataset
    from ..data.subsets import select_classes
    from ..engine.config import check_whole
    from ..models import create_model

    check_whole(shots=(shots, 1), draws=(draws, 1), steps=(steps, 1), batch_size=(batch_size, 1))
    source = (target if isinstance(target, Predictor)
              else Predictor.from_target(target, model=model, device=device))

    def split(name: str, augment: bool) -> Dataset:
        ds = open_dataset(data, name, input_size=source.input_size, train_transform=augment,
                          preset=source.preset, normalisation=(source.mean, source.std))
        return select_classes(ds, classes)

    train, train_aug, test = split("train", False), split("train", True), split("test", False)
    k = len(train.classes)
    if k < 2:
        raise DataError(f"transfer needs at least 2 classes, {data} has {k}")
    test_loader = DataLoader(test, batch_size=batch_size)
    test_feats, test_labels = extract_features(source.model, test_loader, source.device)
    result = TransferResult(target if isinstance(target, str) else source.model_name,
                            source.model_name, data, list(train.classes), shots,
                            [seed + d for d in range(draws)], len(test), steps)
    for m in ["linear"] + (["scratch"] if scratch else []) + (["finetune"] if finetune else []):
        result.errors[m] = []
    for s in result.seeds:
        shot_idx = draw_shots(train.targets, shots, k, np.random.default_rng(s))
        feats, labels = extract_features(source.model, DataLoader(Subset(train, shot_idx),
                                                                  batch_size=batch_size),
                                         source.device)
        predicted = fit_linear(feats, labels)(test_feats)
        result.errors["linear"].append(100.0 * float((predicted != test_labels.numpy()).mean()))

        shots_aug = Subset(train_aug, shot_idx)
        if scratch:
            torch.manual_seed(s)
            fresh = create_model(source.model_name, num_classes=k)
            _train(fresh, source.model_name, shots_aug, steps=steps, seed=s, device=source.device)
            result.errors["scratch"].append(_test_err(fresh, test_loader, source.device))
        if finetune:
            tuned = copy.deepcopy(source.model)
            tuned.reset_classifier(k)
            _train(tuned, source.model_name, shots_aug, steps=steps, seed=s, device=source.device)
            result.errors["finetune"].append(_test_err(tuned, test_loader, source.device))
        if log is not None:
            log(f"seed {s}: " + "  ".join(f"{m} {errs[-1]:.2f}%" for m, errs in result.errors.items()))
    return result
