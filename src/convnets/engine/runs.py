"""Reading runs back for evaluation: which model, which weights, which data.

A target is a run directory (its config names the model and data; a snapshot-ensemble
run yields all its snapshots), a weights file (inside a run directory, or with an
explicit model name), or a bare model name. Several members are evaluated as one
ensemble that averages their softmax outputs, as the papers' ensemble results do
(Huang et al. 2017, snapshot ensembles, Section 4).
"""
from __future__ import annotations

import glob
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..core import atomic_write, first_line, local_device
from ..errors import ConfigError, NotFoundError, RunDirError
from . import checkpoint as ckpt
from . import logs
from .config import TrainConfig, load_config
from .inference_spec import (INFERENCE_FILE, InferenceSpec, load_inference_spec, spec_from_dataset,
                             spec_without_run)
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
                     scales: list[int] | None = None, batch_size: int | None = None,
                     workers: int = 0, device: str = "auto", out: str | None = None,
                     log=print) -> dict[str, Any]:
    """Evaluate one or several targets (several: a softmax-averaged ensemble) on the test
    split; writes eval.json and, for up to 100 classes, confusion.png into ``out`` (by
    default the first target's run directory). Returns evaluate()'s result, with
    ``member_models`` (the model name of each member), ``members``, ``out``, ``summary``
    and ``classes``."""
    _check_loader_options(batch_size, workers)
    resolved = [resolve_target(t, model=model, ema=ema) for t in targets]
    cfg = next((t.config for t in resolved if t.config is not None), None)
    input_size = _common_input_size(resolved)
    data = data if data is not None else (cfg.data if cfg else None)
    test_set = _open_test_set(data, preset or (cfg.preset if cfg else None), input_size)
    members = _load_members(resolved, test_set.num_classes, log)
    result = _evaluate_members(members, test_set, resolved[0].model, input_size, crops=crops,
                               scales=scales, batch_size=batch_size or (cfg.batch_size if cfg else 64),
                               workers=workers, device=device)
    out = out or next((t.run_dir for t in resolved if t.run_dir), None)
    bad = test_set.bad_file_report()
    described = dict(targets=targets, members=len(members), data=data, crops=crops, scales=scales)
    summary = _summary(result, described, test_set.classes, len(bad))
    _write_results(out, summary, result.get("confusion"), test_set.classes, bad, log)
    result.update(members=len(members), out=out, summary=summary, classes=list(test_set.classes),
                  member_models=[t.model for t in resolved for _ in (t.weights or [None])])
    return result


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


def _open_test_set(data: str | None, preset: str | None,
                   input_size: tuple[int, int, int]) -> LabelledDataset:
    from ..data import open_dataset

    return open_dataset(data, "test", input_size=input_size, train_transform=False, preset=preset)


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


_MODES = {"center": "center", "ten": "ten_crop", "dense": "dense", "ten+dense": "ten_crop+dense"}


def _evaluate_members(members: list[nn.Module], test_set: LabelledDataset, model: str,
                      input_size: tuple[int, int, int], *, crops: str, scales: list[int] | None,
                      batch_size: int, workers: int, device: str) -> dict[str, Any]:
    """evaluate()'s result for the members, as one ensemble that averages their softmax
    outputs where there are several."""
    from torch.utils.data import DataLoader

    from .evaluation import evaluate

    dev = local_device(device)
    loader = DataLoader(test_set, batch_size=batch_size, shuffle=False, num_workers=workers)
    mode = _MODES[crops]
    try:
        with unwrap_worker_errors():
            return evaluate(members if len(members) > 1 else members[0], loader, device=dev,
                            mode=mode, scales=scales, num_classes=test_set.num_classes)
    except RuntimeError as err:
        if mode == "center":
            raise
        # Multi-view modes feed crops or whole images of other sizes than the model's own
        # input; a network with a fixed-size head cannot take them.
        raise ConfigError(f"{model} cannot be evaluated with --crops {crops} on "
                          f"{input_size[1]}x{input_size[2]} test images: "
                          f"{first_line(err)}") from None


def _summary(result: dict[str, Any], described: dict[str, Any], classes: list[str],
             bad_files: int) -> dict[str, Any]:
    """What eval.json holds: the result as plain JSON values (no accuracy for a class with
    no test images), then what was evaluated, the class names and the count of
    unreadable test files."""
    summary = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in result.items()}
    summary["per_class_acc"] = [None if math.isnan(v) else v for v in summary["per_class_acc"]]
    summary.update(described, classes=list(classes), bad_files=bad_files)
    return summary


def _write_results(out: str | None, summary: dict[str, Any], confusion: Any, classes: list[str],
                   bad: list[tuple[str, str]], log) -> None:
    """Name the unreadable test files; write eval.json and, for up to 100 classes, the
    confusion matrix into ``out`` (nothing is written without one)."""
    from .evaluation import plot_confusion

    if out:
        os.makedirs(out, exist_ok=True)
    if bad:
        logs.report_bad_files(out, bad, "evaluation", log)
    if out:
        atomic_write(os.path.join(out, "eval.json"),
                     lambda f: f.write(json.dumps(summary, indent=2).encode()))
        if len(classes) <= 100 and confusion is not None:
            plot_confusion(confusion, list(classes), os.path.join(out, "confusion.png"))
