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
import os
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from . import checkpoint as ckpt
from . import logs
from .config import TrainConfig, load_config
from .worker_errors import unwrap_worker_errors

__all__ = ["EvalTarget", "resolve_target", "snapshot_files", "evaluate_targets"]


@dataclass
class EvalTarget:
    model: str
    weights: list[str] = field(default_factory=list)  # one ensemble member per file
    config: TrainConfig | None = None
    run_dir: str | None = None


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


def resolve_target(target: str, *, model: str | None = None, ema: bool = False) -> EvalTarget:
    from ..models import model_info

    if os.path.isdir(target):
        if not os.path.isfile(os.path.join(target, "config.json")):
            raise ckpt.CheckpointError(f"{target} is not a run directory (no config.json)")
        cfg = load_config(os.path.join(target, "config.json"))
        snaps = snapshot_files(target)
        if cfg.snapshot_ensemble and snaps and not ema:
            return EvalTarget(cfg.model, snaps, cfg, target)
        record = ckpt.latest_checkpoint(target)
        weights = os.path.join(record["dir"], "ema.safetensors" if ema else "model.safetensors")
        if not os.path.isfile(weights):
            raise ckpt.CheckpointError(f"{target}: the last checkpoint holds no "
                                       f"{'EMA ' if ema else ''}weights ({weights})")
        return EvalTarget(cfg.model, [weights], cfg, target)
    if os.path.isfile(target):
        run_dir = _find_run_dir(target)
        cfg = load_config(os.path.join(run_dir, "config.json")) if run_dir else None
        name = model or (cfg.model if cfg else None)
        if name is None:
            raise ValueError(f"cannot tell which model {target} holds weights for; give --model NAME")
        model_info(name)
        return EvalTarget(name, [target], cfg, run_dir)
    if os.sep in target or target.endswith((".safetensors", ".pt", ".pth")):
        raise FileNotFoundError(f"no run directory or weights file {target}")
    return EvalTarget(model_info(target).name)


def evaluate_targets(targets: list[str], *, data: str | None = None, preset: str | None = None,
                     model: str | None = None, ema: bool = False, crops: str = "center",
                     scales: list[int] | None = None, batch_size: int | None = None,
                     workers: int = 0, device: str = "auto", out: str | None = None,
                     log=print) -> dict[str, Any]:
    """Evaluate one or several targets (several: a softmax-averaged ensemble) on the test
    split; writes eval.json and, for up to 100 classes, confusion.png into ``out`` (by
    default the first target's run directory). Returns evaluate()'s result."""
    from torch.utils.data import DataLoader

    from ..data import open_dataset
    from ..models import create_model, load_weights, model_info
    from .distributed import DistEnv, local_device
    from .evaluate import evaluate, plot_confusion

    resolved = [resolve_target(t, model=model, ema=ema) for t in targets]
    cfg = next((t.config for t in resolved if t.config is not None), None)
    sizes = {t.config.model_input_size() if t.config else model_info(t.model).input_size
             for t in resolved}
    if len(sizes) > 1:
        raise ValueError(f"ensemble members take different input sizes: {sorted(sizes)}")
    input_size = sizes.pop()
    data = data if data is not None else (cfg.data if cfg else None)
    preset = preset or (cfg.preset if cfg else None)
    test_set = open_dataset(data, "test", input_size=input_size, train_transform=False, preset=preset)
    num_classes = getattr(test_set, "num_classes", None)
    members = []
    for t in resolved:
        if not t.weights:
            log(f"note: {t.model} has no weights given; evaluating its untrained initialisation")
            members.append(create_model(t.model, num_classes=num_classes))
        for path in t.weights:
            members.append(load_weights(create_model(t.model, num_classes=num_classes), path))
    dev = local_device(device, DistEnv())
    loader = DataLoader(test_set, batch_size=batch_size or (cfg.batch_size if cfg else 64),
                        shuffle=False, num_workers=workers)
    mode = {"center": "center", "ten": "ten_crop", "dense": "dense", "ten+dense": "ten_crop+dense"}[crops]
    # A list of members is evaluated as one ensemble that averages their softmax outputs.
    try:
        with unwrap_worker_errors():
            result = evaluate(members if len(members) > 1 else members[0], loader, device=dev,
                              mode=mode, scales=scales, num_classes=num_classes)
    except RuntimeError as err:
        if mode == "center":
            raise
        # Multi-view modes feed crops or whole images of other sizes than the model's own
        # input; a network with a fixed-size head cannot take them.
        raise ValueError(f"{resolved[0].model} cannot be evaluated with --crops {crops} on "
                         f"{input_size[1]}x{input_size[2]} test images: "
                         f"{str(err).splitlines()[0]}") from None

    out = out or next((t.run_dir for t in resolved if t.run_dir), None)
    if out:
        os.makedirs(out, exist_ok=True)
    report = getattr(test_set, "bad_file_report", None)
    bad = report() if callable(report) else []
    if bad:
        logs.report_bad_files(out, bad, "evaluation", log)
    if out:
        summary = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in result.items()}
        summary.update(targets=targets, members=len(members), data=data, crops=crops, scales=scales,
                       bad_files=len(bad))
        ckpt.atomic_write(os.path.join(out, "eval.json"),
                          lambda f: f.write(json.dumps(summary, indent=2, default=str).encode()))
        classes = list(getattr(test_set, "classes", [str(i) for i in range(num_classes or 0)]))
        if len(classes) <= 100 and result.get("confusion") is not None:
            plot_confusion(result["confusion"], classes, os.path.join(out, "confusion.png"))
    result["members"] = len(members)
    result["out"] = out
    result["classes"] = list(getattr(test_set, "classes", []))
    return result
