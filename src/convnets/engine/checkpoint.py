"""Checkpoints that survive a crash and resume a run exactly.

Layout of a run directory::

    checkpoint.json                  the commit record: which epoch directory is current
    checkpoints/epoch-0007/          after 7 epochs (epoch-0007-step-00000420: within the 8th)
        model.safetensors            weights (safetensors: loading runs no code)
        ema.safetensors              EMA weights, when the run keeps an EMA
        state.pt                     optimizer, scheduler, scaler, epoch, step, RNG states,
                                     position in the epoch's sample order, world size
    snapshots/snapshot-1.safetensors one per cycle of a snapshot ensemble

A save writes a new epoch directory file by file (each file atomically: a temporary
file in the same directory, fsync, ``os.replace``), then replaces checkpoint.json,
which is the single commit point. A kill at any moment therefore leaves
checkpoint.json naming a complete earlier checkpoint; older epoch directories are
removed only after the commit. ``state.pt`` holds only tensors, numbers, strings,
lists and dicts, and is read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from typing import Any, Callable, IO

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ..core import atomic_write, first_line, read_json
from ..errors import CheckpointError, WeightsError
from ..models.weights import check_fits, read_state_dict

__all__ = [
    "atomic_write", "save_weights", "load_weights_file", "save_checkpoint", "load_checkpoint",
    "latest_checkpoint", "clean_stale", "rng_state", "set_rng_state", "CheckpointError",
]

COMMIT = "checkpoint.json"


# --- files ---------------------------------------------------------------------------

def _write_bytes(data: bytes) -> Callable[[IO[bytes]], None]:
    return lambda f: f.write(data)


def save_weights(path: str | os.PathLike, state_dict: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    """Atomically save a state dict of tensors as safetensors."""
    tensors = {k.removeprefix("module."): v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write(path, _write_bytes(safetensors_bytes(tensors, metadata=metadata)))


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's weights file, read and checked as every weights file
    is (:func:`convnets.models.weights.read_state_dict`)."""
    try:
        return read_state_dict(path)
    except WeightsError as err:
        raise CheckpointError(str(err)) from None


# --- RNG states as plain tensors -------------------------------------------------------

def rng_state() -> dict[str, Any]:
    """Every random generator a run draws from, as tensors and numbers (weights_only-safe)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "mt": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["mt"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state((nps["kind"], nps["keys"].numpy().astype(np.uint32), nps["pos"],
                         nps["has_gauss"], nps["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# --- checkpoints -----------------------------------------------------------------------

def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def save_checkpoint(run_dir: str | os.PathLike, *, model: nn.Module, epoch: int, step: int,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                    scaler: Any = None, ema: nn.Module | None = None,
                    extra: dict[str, Any] | None = None, rng: list[dict] | None = None,
                    keep_last: int = 1, position: int = 0, world_size: int = 1,
                    global_batch: int = 0) -> str:
    """Save the training state after ``epoch`` epochs; returns the checkpoint directory.

    ``rng`` lists the RNG states of every process (rank order) in data-parallel runs;
    by default it is this process's. ``position`` is the number of samples of the next
    epoch's global order already trained on (0 at an epoch's end), ``world_size`` the
    number of processes that trained them, ``global_batch`` the images per optimizer step of
    all of them together (0: not said), which a resume on another number of processes
    keeps; a checkpoint within an epoch is named after
    its step as well, so that it never overwrites the committed one of the epoch's start
    (and sorts after it)."""
    run_dir = os.fspath(run_dir)
    name = f"epoch-{epoch:04d}" + (f"-step-{step:08d}" if position else "")
    ckpt_dir = os.path.join(run_dir, "checkpoints", name)
    os.makedirs(ckpt_dir, exist_ok=True)
    meta = {"epoch": str(epoch), "step": str(step)}
    save_weights(os.path.join(ckpt_dir, "model.safetensors"), _unwrap(model).state_dict(), meta)
    state: dict[str, Any] = {"epoch": epoch, "step": step, "rng": rng or [rng_state()], "extra": extra or {},
                             "position": position, "world_size": world_size,
                             "global_batch": global_batch}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    if ema is not None:
        save_weights(os.path.join(ckpt_dir, "ema.safetensors"), _unwrap(ema.module).state_dict(), meta)
        state["ema_n_averaged"] = ema.n_averaged.detach().cpu().clone()

    atomic_write(os.path.join(ckpt_dir, "state.pt"), lambda f: torch.save(state, f))
    record = {"epoch": epoch, "step": step, "position": position, "world_size": world_size,
              "global_batch": global_batch, "dir": os.path.join("checkpoints", name)}
    atomic_write(os.path.join(run_dir, COMMIT), _write_bytes(json.dumps(record, indent=2).encode()))
    _prune(run_dir, keep=keep_last, current=name)
    return ckpt_dir


def _prune(run_dir: str, keep: int, current: str) -> None:
    root = os.path.join(run_dir, "checkpoints")
    old = sorted(d for d in os.listdir(root) if d.startswith("epoch-") and d != current)
    if current.startswith("epoch-"):
        # Only directories older than the committed one; a newer one is a leftover of an
        # interrupted save from before a resume and is simply overwritten later.
        old = [d for d in old if d < current]
    for d in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)


def latest_checkpoint(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The commit record of ``run_dir``: {"epoch", "step", "dir", "position",
    "world_size", "global_batch"} with ``dir`` absolute (in records written before
    checkpoints within an epoch, position 0, world size 1 and global batch 0: not said)."""
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"run directory not found: {run_dir}")
    path = os.path.join(run_dir, COMMIT)
    record = read_json(path, missing=f"{run_dir} holds no checkpoint (no {COMMIT})",
                       error=CheckpointError)
    if not (isinstance(record, dict) and isinstance(record.get("dir"), str)
            and isinstance(record.get("epoch"), int)):
        raise CheckpointError(f"{path} is not a checkpoint record (it must name the epoch "
                              "and the checkpoint folder)")
    record["dir"] = os.path.join(run_dir, record["dir"])
    for key, old in (("position", 0), ("world_size", 1), ("global_batch", 0)):
        record.setdefault(key, old)
    return record


def clean_stale(run_dir: str | os.PathLike) -> list[str]:
    """Remove what a killed save left behind: temporary files (``.tmp-*``, up to the size
    of a checkpoint) and epoch directories newer than the committed one. Called when a run
    resumes; returns the removed paths."""
    run_dir = os.fspath(run_dir)
    committed = None
    if os.path.exists(os.path.join(run_dir, COMMIT)):
        committed = os.path.basename(latest_checkpoint(run_dir)["dir"])
    removed = []
    root = os.path.join(run_dir, "checkpoints")
    for d in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if d.startswith("epoch-") and (committed is None or d > committed):
            shutil.rmtree(os.path.join(root, d), ignore_errors=True)
            removed.append(os.path.join(root, d))
    for folder in (run_dir, root, os.path.join(run_dir, "snapshots"),
                   *(os.path.join(root, d) for d in (os.listdir(root) if os.path.isdir(root) else []))):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.startswith(".tmp-") and os.path.isfile(os.path.join(folder, name)):
                os.unlink(os.path.join(folder, name))
                removed.append(os.path.join(folder, name))
    return removed


def _check_fits(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    try:
        check_fits(module, state, where)
    except WeightsError as err:
        raise CheckpointError(str(err)) from None


def _read_state(path: str) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {os.path.dirname(path)} lacks state.pt") from None
    except Exception as err:
        raise CheckpointError(f"cannot read {path}: {first_line(err)}") from None
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int) \
            or not isinstance(state.get("step"), int) or not isinstance(state.get("rng"), list):
        raise CheckpointError(f"{path} is not a training state of convnets")
    return state


def load_checkpoint(run_dir: str | os.PathLike, *, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                    scaler: Any = None, ema: nn.Module | None = None,
                    restore_rng: bool = True, rank: int = 0) -> dict[str, Any]:
    """Restore everything ``save_checkpoint`` wrote; returns the state (epoch, step, extra,
    position, world_size; the last two 0 and 1 in checkpoints from before they were kept).

    Every file is read and checked against what it will restore before anything is
    restored, so a corrupt or foreign file leaves model, optimizer and RNGs untouched."""
    record = latest_checkpoint(run_dir)
    ckpt_dir = record["dir"]
    weights = load_weights_file(os.path.join(ckpt_dir, "model.safetensors"))
    _check_fits(_unwrap(model), weights, f"{ckpt_dir}/model.safetensors")
    state = _read_state(os.path.join(ckpt_dir, "state.pt"))
    for key, needed in (("optimizer", optimizer), ("scheduler", scheduler)):
        if needed is not None and not isinstance(state.get(key), dict):
            raise CheckpointError(f"{ckpt_dir}/state.pt holds no {key} state")
    if optimizer is not None:
        groups = state["optimizer"].get("param_groups")
        if not isinstance(groups, list) or [len(g.get("params", ())) for g in groups] != \
                [len(g["params"]) for g in optimizer.param_groups]:
            raise CheckpointError(f"{ckpt_dir}/state.pt: its optimizer state does not fit this "
                                  "model's parameters")
    ema_weights = None
    if ema is not None:
        ema_path = os.path.join(ckpt_dir, "ema.safetensors")
        if not os.path.exists(ema_path):
            raise CheckpointError(f"checkpoint {ckpt_dir} holds no EMA weights")
        ema_weights = load_weights_file(ema_path)
        _check_fits(_unwrap(ema.module), ema_weights, ema_path)
        if not isinstance(state.get("ema_n_averaged"), torch.Tensor):
            raise CheckpointError(f"{ckpt_dir}/state.pt lacks the EMA's step count")
    states = state["rng"]
    if restore_rng and not states:
        raise CheckpointError(f"{ckpt_dir}/state.pt holds no random-generator states")

    _unwrap(model).load_state_dict(weights)
    try:
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
    except (ValueError, KeyError, TypeError) as err:  # PyTorch's own checks of the contents
        raise CheckpointError(f"{ckpt_dir}/state.pt does not fit this run's optimizer: "
                              f"{first_line(err)}") from None
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    if ema is not None:
        _unwrap(ema.module).load_state_dict(ema_weights)
        ema.n_averaged.copy_(state["ema_n_averaged"])
    if restore_rng:
        set_rng_state(states[rank] if rank < len(states) else states[0])
    state.setdefault("position", 0)
    state.setdefault("world_size", 1)
    return state
