"""One pass over a training loader with explicit arguments: forward (auxiliary heads
included), backward with gradient accumulation and mixed precision, the optimizer and
scheduler steps, the EMA update, and the sums every process agrees on."""
from __future__ import annotations

import contextlib
import time
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from ..core import autocast
from ..errors import ConvnetsError
from . import distributed as ddp

__all__ = ["NonFiniteError", "train_one_epoch"]


class NonFiniteError(ConvnetsError):
    """The loss, a weight or a batch-norm statistic became NaN or infinite; the run stops
    with its last good checkpoint."""


def _logits_and_loss(out: Any, y: torch.Tensor, criterion: nn.Module,
                     aux_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Models with auxiliary classifiers (GoogLeNet, Inception-v3) return (logits, aux...) in
    training; their losses join the main one weighted by ``aux_weight`` (GoogLeNet Sec. 5)."""
    if isinstance(out, tuple):
        logits, *aux = out
        loss = criterion(logits, y)
        for extra in aux:
            if extra is not None:
                loss = loss + aux_weight * criterion(extra, y)
        return logits, loss
    return out, criterion(out, y)


def _clip(model: nn.Module, optimizer: torch.optim.Optimizer,
          scaler: torch.amp.GradScaler | None, max_norm: float) -> None:
    """Gradient clipping by the global norm (Szegedy et al. 2016, Sec. 8: threshold 2.0),
    on the true gradient: a loss-scaled one is unscaled first."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, *,
                    device: torch.device, criterion: nn.Module, scheduler: Any = None,
                    scaler: torch.amp.GradScaler | None = None, amp: str | None = None,
                    accum_steps: int = 1, ema: nn.Module | None = None,
                    channels_last: bool = False, env: ddp.DistEnv = ddp.DistEnv(),
                    epoch: int = 0, progress: bool = False,
                    clip_grad_norm: float = 0.0,
                    after_step: Callable[[int], bool] | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss, top-1 error (``top1_err``, %), images,
    seconds and optimizer steps, summed over all processes. Raises :class:`NonFiniteError`.
    ``clip_grad_norm`` (when positive) bounds the global L2 norm of each step's gradient.
    ``after_step(steps)`` is called after each optimizer step (every process calls it at
    the same step); the pass ends there when it returns True."""
    from tqdm import tqdm

    model.train()
    aux_weight = getattr(getattr(model, "module", model), "aux_loss_weight", 0.0)
    n_batches = len(loader)
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss*n, errors, n
    bad = torch.zeros((), device=device)
    steps = 0
    bar = tqdm(total=n_batches * (loader.batch_size or 1), unit="img", unit_scale=True,
               desc=f"epoch {epoch + 1}", disable=not progress, leave=False, dynamic_ncols=True)
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    for i, (x, y) in enumerate(loader):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        group_start = i - i % accum_steps
        group = min(accum_steps, n_batches - group_start)  # the last group may be short
        last = i == group_start + group - 1
        sync = contextlib.nullcontext() if last or not env.distributed else model.no_sync()
        with sync:
            with autocast(device, amp):
                logits, loss = _logits_and_loss(model(x), y, criterion, aux_weight)
            # The mean over the accumulated group equals the mean over one batch of that size.
            scaled = loss / group
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        loss = loss.detach().float()
        bad += (~torch.isfinite(loss)).float()
        sums += torch.stack([loss * len(y), (logits.detach().argmax(1) != y).sum(),
                             torch.tensor(len(y), device=device)]).double()
        if last:
            if clip_grad_norm:
                _clip(model, optimizer, scaler, clip_grad_norm)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None:
                scheduler.step()
            if ema is not None:
                ema.update_parameters(getattr(model, "module", model))
            steps += 1
            if after_step is not None and after_step(steps):
                break
        # A host sync every few steps, not every step, keeps GPUs busy; a NaN found a few
        # steps late costs little: a checkpoint within the epoch (--save-every) may hold it,
        # and a run resumed from it stops with the same message.
        if (i + 1) % 20 == 0 or i + 1 == n_batches:
            flag = bad.clone()
            if env.distributed:
                dist.all_reduce(flag)
            if flag.item() > 0:
                bar.close()
                raise NonFiniteError(f"the loss became NaN or infinite in epoch {epoch + 1} "
                                         f"(by batch {i + 1})")
            bar.set_postfix(loss=f"{sums[0].item() / max(1.0, sums[2].item()):.3f}",
                            lr=f"{optimizer.param_groups[0]['lr']:.3g}", refresh=False)
        bar.update(len(y))
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    loss_sum, errors, n = ddp.all_reduce_sum(sums.tolist(), device, env)
    return {"loss": loss_sum / max(1.0, n), "top1_err": 100.0 * errors / max(1.0, n), "images": n,
            "seconds": seconds, "steps": steps}
