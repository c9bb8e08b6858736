"""Reading runs back for evaluation: which model, which weights, which data.

A target is a run directory (its config names the model and data; a snapshot-ensemble
run yields all its snapshots), a weights file (inside a run directory, or with an
explicit model name), or a bare model name. Several members are evaluated as one
ensemble that averages their softmax outputs, as the papers' ensemble results do
(Huang et al. 2017, snapshot ensembles, Section 4).
"""
from __future__ import annotations

import glob
import math
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..core import first_line, local_device
from ..errors import ConfigError, NotFoundError, RunDirError
from . import checkpoint as ckpt
from .config import TrainConfig, load_config
from .eval_files import default_out, write_results
from .inference_spec import (INFERENCE_FILE, InferenceSpec, load_inference_spec, spec_from_dataset,
                             spec_without_run, stored_whitening)
from .worker_errors import unwrap_worker_errors

if TYPE_CHECKING:
    from ..data.protocol import LabelledDataset

__all__ = ["RunTarget", "resolve_target", "load_models", "snapshot_files", "evaluate_targets"]


@dataclass
class RunTarget:
    """What a target names: a model, its weights files (one ensemble member each; none for
    a bare model name), and the run it came from when there is one."""

    model: str
    weights: list[str] = field(default_factory=list)
    config: TrainConfig | None = None
    run_dir: str | None = None

    @property
    def input_size(self) -> tuple[int, int, int]:
        """What the model was trained at: the run's input size, else the model's own."""
        from ..models import model_info

        return self.config.model_input_size() if self.config else model_info(self.model).input_size

    def inference_spec(self, num_classes: int) -> InferenceSpec:
        """Class names, normalisation and evaluation preset for a model with
        ``num_classes`` outputs: the run's inference.json; for a run from before that file,
        the same read from its dataset, reopened; without a run, the conventions of the
        model's own dataset (:func:`spec_without_run`)."""
        if self.run_dir is None:
            return spec_without_run(self.model, num_classes, self.input_size)
        path = os.path.join(self.run_dir, INFERENCE_FILE)
        if os.path.exists(path):
            spec, where = load_inference_spec(path), path
            if spec.model != self.model or spec.input_size != self.input_size:
                raise RunDirError(f"{path} describes a {spec.model} at {_size(spec.input_size)}, "
                                  f"but the run trains a {self.model} at {_size(self.input_size)}")
        else:
            spec, where = self._spec_from_data(), f"the data of {self.run_dir}"
        if spec.num_classes != num_classes:
            raise RunDirError(f"{where} names {spec.num_classes} classes, but the weights have "
                              f"{num_classes}")
        return spec

    def _spec_from_data(self) -> InferenceSpec:
        from ..data import open_dataset

        cfg = self.config
        try:
            data = open_dataset(cfg.data, "test", input_size=self.input_size,
                                train_transform=False, preset=cfg.preset)
        except ValueError as err:  # open_dataset's one-line "missing or malformed" errors
            raise RunDirError(f"{self.run_dir} has no {INFERENCE_FILE} (a run from an older "
                              "convnets), so its class names and normalisation come from its "
                              f"data, which cannot be opened here: {err}") from None
        return spec_from_dataset(self.model, data, self.input_size, cfg.data)


def _size(input_size: tuple[int, int, int]) -> str:
    return "x".join(map(str, input_size))


def load_models(target: RunTarget, *, num_classes: int | None = None) -> list[nn.Module]:
    """The target's models in eval mode, one per weights file: the one way every command
    (eval, analyze, predict, ...) reads a saved model back. Each classifier takes the
    size of the weights' own (a run's classes, or ImageNet's 1,000 for torchvision's
    files); a bare model name gives its initialisation with ``num_classes`` outputs."""
    from ..models import create_model, load_weights

    if not target.weights:
        return [create_model(target.model, num_classes=num_classes).eval()]
    return [load_weights(create_model(target.model), path, fit_head=True).eval()
            for path in target.weights]


def snapshot_files(run_dir: str) -> list[str]:
    files = glob.glob(os.path.join(run_dir, "snapshots", "snapshot-*.safetensors"))
    return sorted(files, key=lambda f: int(re.findall(r"\d+", os.path.basename(f))[0]))


def _find_run_dir(path: str, levels: int = 3) -> str | None:
    d = os.path.dirname(os.path.abspath(path))
    for _ in range(levels):
        if os.path.isfile(os.path.join(d, "config.json")):
            return d
        d = os.path.dirname(d)
    return None


def resolve_target(target: str, *, model: str | None = None, ema: bool = False) -> RunTarget:
    """A run directory, a weights file (in a run directory, or with ``model``) or a model name."""
    from ..models import model_info

    if os.path.isdir(target):
        if not os.path.isfile(os.path.join(target, "config.json")):
            raise RunDirError(f"{target} is not a run directory (no config.json)")
        cfg = load_config(os.path.join(target, "config.json"))
        snaps = snapshot_files(target)
        if cfg.snapshot_ensemble and snaps and not ema:
            return RunTarget(cfg.model, snaps, cfg, target)
        record = ckpt.latest_checkpoint(target)
        weights = os.path.join(record["dir"], "ema.safetensors" if ema else "model.safetensors")
        if not os.path.isfile(weights):
            raise RunDirError(f"{target}: the last checkpoint holds no "
                              f"{'EMA ' if ema else ''}weights ({weights})")
        return RunTarget(cfg.model, [weights], cfg, target)
    if os.path.isfile(target):
        run_dir = _find_run_dir(target)
        cfg = load_config(os.path.join(run_dir, "config.json")) if run_dir else None
        name = model or (cfg.model if cfg else None)
        if name is None:
            raise ConfigError(f"cannot tell which model {target} holds weights for; give --model NAME")
        model_info(name)
        return RunTarget(name, [target], cfg, run_dir)
    if os.sep in target or target.endswith((".safetensors", ".pt", ".pth")):
        raise NotFoundError(f"no run directory or weights file {target}")
    return RunTarget(model_info(target).name)


def evaluate_targets(targets: list[str], *, data: str | None = None, preset: str | None = None,
                     model: str | None = None, ema: bool = False, crops: str = "center",
                     protocol: str | None = None, scales: list[int] | None = None,
                     batch_size: int | None = None, workers: int = 0, device: str = "auto",
                     out: str | None = None, progress: bool = False, log=print) -> dict[str, Any]:
    """Evaluate one or several targets (several: a softmax-averaged ensemble) on the test
    split with ``protocol`` (:mod:`convnets.engine.protocols`; default: the one ``crops``,
    an older name, stands for). "center" is the evaluation preset's image; every other
    protocol reads the original images and resizes them itself. Writes the eval JSON and,
    for up to 100 classes, the confusion PNG into ``out`` (default: the target's run
    directory; an ensemble's beside it), never over another evaluation's files
    (:mod:`convnets.engine.eval_files`). Returns evaluate()'s result, with
    ``member_models`` (the model name of each member), ``members``, ``out``, ``files``,
    ``summary``, ``classes`` and the protocol's ``views`` (its name, views per image,
    scales, crop and mirrors)."""
    from .protocols import CROPS_PROTOCOLS, get_protocol

    _check_loader_options(batch_size, workers)
    chosen = get_protocol(protocol or CROPS_PROTOCOLS[crops])
    resolved = [resolve_target(t, model=model, ema=ema) for t in targets]
    cfg = next((t.config for t in resolved if t.config is not None), None)
    input_size = _common_input_size(resolved)
    data = data if data is not None else (cfg.data if cfg else None)
    preset = preset or (cfg.preset if cfg else None)
    whitening = next((w for t in resolved if (w := stored_whitening(t.run_dir)) is not None), None)
    test_set = _open_test_set(data, preset, input_size, whitening)
    members = _load_members(resolved, test_set.num_classes, log)
    batch_size = batch_size or (cfg.batch_size if cfg else 64)
    if chosen.views == ("preset",):
        views = dict(protocol=chosen.name, views_per_image=1, scales=None, crop=None,
                     mirrors=False, preset=test_set.preset)
        result = _evaluate_members(members, test_set, batch_size=batch_size, workers=workers,
                                   device=device)
    else:
        views = _protocol_views(chosen, test_set.preset, input_size, scales)
        originals = _open_test_set(data, "original", input_size)
        result = _evaluate_protocol(members, originals, chosen, views, resolved[0].model, input_size,
                                    batch_size=batch_size, workers=workers, device=device,
                                    progress=progress)
        test_set = originals
    weights = [os.path.abspath(w) for t in resolved for w in t.weights] or [t.model for t in resolved]
    out = out or default_out([t.run_dir for t in resolved], weights, len(targets) > 1)
    bad = test_set.bad_file_report()
    # "crops": the older name of the protocol, where it has one
    crops = next((k for k, v in CROPS_PROTOCOLS.items() if v == chosen.name), None)
    described = dict(targets=targets, members=len(members), data=data, crops=crops, **views,
                     evaluated=dict(members=weights, data=data, **views))
    summary = _summary(result, described, test_set.classes, len(bad))
    files = write_results(out, summary, result.get("confusion"), test_set.classes, bad, log)
    result.update(members=len(members), out=out, summary=summary, classes=list(test_set.classes),
                  member_models=[t.model for t in resolved for _ in (t.weights or [None])],
                  views=views, files=[f for f in files if f])
    return result


def _protocol_views(protocol, train_preset: str | None, input_size: tuple[int, int, int],
                    scales: list[int] | None) -> dict[str, Any]:
    """What a protocol takes of each image for a model trained at ``input_size`` on data
    whose preset is ``train_preset``: mirrored views only where its training flips."""
    from .protocols import flips_in_training, scaled_sizes, views_per_image

    sides, crop = scaled_sizes(protocol, input_size[1:], scales)
    mirrors = protocol.mirrors and flips_in_training(train_preset)
    return dict(protocol=protocol.name, views_per_image=views_per_image(protocol, len(sides), mirrors),
                scales=sides, crop=list(crop), mirrors=mirrors, preset=train_preset)


def _evaluate_protocol(members: list[nn.Module], originals: LabelledDataset, protocol,
                       views: dict[str, Any], model: str, input_size: tuple[int, int, int], *,
                       batch_size: int, workers: int, device: str, progress: bool) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    from .evaluation import evaluate_protocol

    # Images of any size: a batch is a list; a few images at a time, so that one batch's
    # views are about ``batch_size`` network inputs.
    loader = DataLoader(originals, batch_size=max(1, batch_size // views["views_per_image"]),
                        shuffle=False, num_workers=workers, collate_fn=list)
    try:
        with unwrap_worker_errors():
            return evaluate_protocol(members, loader, protocol, input_size[1:],
                                     mirrors=views["mirrors"], scales=views["scales"],
                                     batch_size=batch_size, device=local_device(device),
                                     num_classes=originals.num_classes, progress=progress)
    except RuntimeError as err:
        # The views are crops or whole images of other sizes than the model's input; a
        # network with a fixed-size head cannot take them.
        raise ConfigError(f"{model} cannot be evaluated with the "
                          f"{protocol.name} protocol: {first_line(err)}") from None


def _check_loader_options(batch_size: int | None, workers: int) -> None:
    if batch_size is not None and batch_size < 1:
        raise ConfigError.of("batch_size", f"must be at least 1, got {batch_size}")
    if workers < 0:
        raise ConfigError.of("workers", f"must be at least 0, got {workers}")


def _common_input_size(resolved: list[RunTarget]) -> tuple[int, int, int]:
    """The input size every member takes (an ensemble's members must agree)."""
    sizes = {t.input_size for t in resolved}
    if len(sizes) > 1:
        raise ConfigError(f"ensemble members take different input sizes: {sorted(sizes)}")
    return sizes.pop()


def _open_test_set(data: str | None, preset: str | None, input_size: tuple[int, int, int],
                   whitening=None) -> LabelledDataset:
    """The test split, whitened (a ``nin-cifar`` run) with the run's own fit."""
    from ..data import open_dataset

    return open_dataset(data, "test", input_size=input_size, train_transform=False, preset=preset,
                        whitening=whitening)


def _load_members(resolved: list[RunTarget], num_classes: int, log) -> list[nn.Module]:
    """Every target's models, each with as many outputs as the test data has classes."""
    members = []
    for t in resolved:
        if not t.weights:
            log(f"note: {t.model} has no weights given; evaluating its untrained initialisation")
        for name, m in zip(t.weights or [t.model], load_models(t, num_classes=num_classes)):
            if m.num_classes != num_classes:
                raise ConfigError(f"{name} has {m.num_classes} classes, the test data "
                                  f"{num_classes}; give --data with the data it was trained on")
            members.append(m)
    return members


def _evaluate_members(members: list[nn.Module], test_set: LabelledDataset, *, batch_size: int,
                      workers: int, device: str) -> dict[str, Any]:
    """evaluate()'s result for the members on the evaluation preset's images, as one
    ensemble that averages their softmax outputs where there are several."""
    from torch.utils.data import DataLoader

    from .evaluation import evaluate

    loader = DataLoader(test_set, batch_size=batch_size, shuffle=False, num_workers=workers)
    with unwrap_worker_errors():
        return evaluate(members if len(members) > 1 else members[0], loader,
                        device=local_device(device), num_classes=test_set.num_classes)


def _summary(result: dict[str, Any], described: dict[str, Any], classes: list[str],
             bad_files: int) -> dict[str, Any]:
    """What eval.json holds: the result as plain JSON values (no accuracy for a class with
    no test images), then what was evaluated, the class names and the count of
    unreadable test files."""
    summary = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in result.items()}
    summary["per_class_acc"] = [None if math.isnan(v) else v for v in summary["per_class_acc"]]
    summary.update(described, classes=list(classes), bad_files=bad_files)
    return summary
