"""A training run: ``fit`` builds everything from a
:class:`~convnets.engine.config.TrainConfig` (data, model, optimizer, schedule, EMA,
snapshot ensembles, data parallelism), owns the run directory and resumes it exactly.

The pieces it is made of have modules of their own: one pass over a loader
(:mod:`.epoch`), the optimizers (:mod:`.optim`), the learning-rate schedules
(:mod:`.schedules`), checkpoints (:mod:`.checkpoint`) and logs (:mod:`.logs`).
"""
from __future__ import annotations

import functools
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .. import allocator
from ..core import local_device
from ..errors import ConfigError, ConvnetsError, RunDirError
from . import checkpoint as ckpt
from . import distributed as ddp
from . import logs
from .config import TrainConfig, load_config, resume_changes
from .epoch import NonFiniteError, train_one_epoch
from .inference_spec import stored_whitening
from .optim import build_optimizer
from .preemption import Preempted, StepBoundary, StopSignals
from .schedules import Schedule
from .validation import carve_validation, with_best_val
from .worker_errors import unwrap_worker_errors

__all__ = ["fit", "default_run_dir"]


# --- the run ---------------------------------------------------------------------------

def default_run_dir(model: str, root: str = "runs") -> str:
    return os.path.join(root, f"{model}-{time.strftime('%Y%m%d-%H%M%S')}")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _open_split(cfg: TrainConfig, input_size: tuple[int, int, int], split: str,
                train_transform: bool, whitening=None) -> Dataset:
    from ..data import open_dataset

    return open_dataset(cfg.data, split, train_transform=train_transform, input_size=input_size,
                        preset=cfg.preset, max_pixels=cfg.max_pixels, whitening=whitening)


def _open_data(cfg: TrainConfig, input_size: tuple[int, int, int],
               whitening=None) -> tuple[Dataset, Dataset]:
    """The training and test splits; ``whitening`` is a resumed run's own fit (nin-cifar),
    read back rather than fitted again."""
    return (_open_split(cfg, input_size, "train", True, whitening),
            _open_split(cfg, input_size, "test", False, whitening))


def _hold_out(cfg: TrainConfig, train_set: Dataset, input_size: tuple[int, int, int],
              opened: bool, whitening=None) -> tuple[Dataset, Dataset | None]:
    """(the images trained on, the validation split or None): ``--val-split`` images of
    the training split, evaluated without augmentation when this run opened the data."""
    if not cfg.val_split:
        return train_set, None
    plain = _open_split(cfg, input_size, "train", False, whitening) if opened else train_set
    return carve_validation(train_set, plain, cfg.val_split, cfg.seed)


def fit(cfg: TrainConfig, run_dir: str | None = None, *, resume: bool = False,
        until_epoch: int | None = None, datasets: tuple[Dataset, Dataset] | None = None,
        log: Callable[[str], None] = print, progress: bool | None = None,
        keep_freed_memory: bool = True) -> dict[str, Any]:
    """Train ``cfg.model`` as ``cfg`` says, writing the run directory; returns
    {"run_dir", "history", "last", "best"} (``last`` and ``best``: metrics rows).

    ``resume`` continues ``run_dir`` from its last checkpoint; ``cfg`` must then equal the
    run's saved configuration except in the fields that may change on resume (workers,
    device). ``until_epoch`` stops after that epoch as if interrupted (the schedule still
    spans ``cfg.epochs``); ``datasets`` = (train, test) replaces ``cfg.data``.

    ``keep_freed_memory`` changes the whole process's malloc settings, for as long as it
    runs, so that freed activations are reused by the next step without new page faults
    (10-20% faster steps; see :func:`convnets.allocator.keep_freed_memory`, which also
    says when it leaves the settings alone). The price is that the process keeps its peak
    memory until it exits; pass ``False`` to train under the C library's defaults."""
    if keep_freed_memory:
        allocator.keep_freed_memory()
    device = local_device(cfg.device, int(os.environ.get("LOCAL_RANK", 0)))
    if cfg.amp == "fp16" and device.type != "cuda":
        raise ConfigError.of("amp", "fp16 needs a CUDA GPU (its loss scaling is for GPUs); use bf16")
    env = ddp.setup(device)
    ok = False
    try:
        with unwrap_worker_errors():
            result = _fit(cfg, run_dir, resume, until_epoch, datasets, log, progress, env, device)
        ok = True
        return result
    except Exception as err:
        if env.distributed and ddp.is_collective_failure(err):
            raise ddp.PeerFailure("the job stopped: another of its processes failed (its message "
                                  "says why)") from err
        raise
    finally:
        ddp.cleanup(ok)


@dataclass
class _Run:
    """What the set-up phase builds for the epoch loop."""

    run_dir: str
    model: nn.Module
    net: nn.Module                      # the model, wrapped for data parallelism after set-up
    ema: nn.Module | None
    train_set: Dataset
    train_loader: DataLoader
    test_loader: DataLoader
    num_classes: int
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    start_epoch: int
    step: int
    val_loader: DataLoader | None = None  # the validation split's (--val-split)
    position: int = 0                   # samples of start_epoch's order already trained on


def _check_run_dir(cfg: TrainConfig, run_dir: str, resume: bool) -> None:
    """The run directory can be written (a new run) or continued (``resume``) with ``cfg``."""
    if resume:
        ckpt.latest_checkpoint(run_dir)  # fails with one line when there is none
        saved = load_config(os.path.join(run_dir, "config.json"))
        changed = resume_changes(saved, cfg)
        if changed:
            name = changed[0]
            raise ConfigError.of(name, f"cannot change on resume ({run_dir} was trained with "
                                 f"{getattr(saved, name)!r}, not {getattr(cfg, name)!r}); only "
                                 "workers and device may change")
        return
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunDirError(f"{run_dir} is a file, not a run directory; choose another --out")
    if os.path.exists(os.path.join(run_dir, ckpt.COMMIT)) or \
            os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
        raise RunDirError(f"{run_dir} already holds a run; resume it with --resume {run_dir} "
                          "or choose another --out")


def _set_up(cfg: TrainConfig, run_dir: str, resume: bool, datasets: tuple[Dataset, Dataset] | None,
            log: Callable[[str], None], env: ddp.DistEnv, device: torch.device) -> _Run:
    from ..models import create_model, model_info
    from ..models.meta import check_input_size
    from .init import apply_init

    if env.is_main:
        _check_run_dir(cfg, run_dir, resume)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not cfg.deterministic

    # Data and model. The model is built from the same seed on every rank; DDP also
    # broadcasts rank 0's weights, so the ranks start identical either way.
    _seed_everything(cfg.seed)
    info, input_size = model_info(cfg.model), cfg.model_input_size()
    whitening = stored_whitening(run_dir) if resume else None  # nin-cifar: the run's own fit
    train_set, test_set = datasets or _open_data(cfg, input_size, whitening)
    num_classes = _num_classes(train_set, info.num_classes)
    check_input_size(cfg.model, input_size, num_classes=num_classes)
    model = create_model(cfg.model, num_classes=num_classes, **cfg.model_kwargs())
    pin = device.type == "cuda"
    fit_set, val_set = _hold_out(cfg, train_set, input_size, opened=datasets is None,
                                 whitening=whitening)
    batch_size = _per_process_batch(cfg, run_dir, resume, env, log)
    train_loader = ddp.make_loader(fit_set, batch_size=batch_size, env=env, train=True,
                                   workers=cfg.workers, seed=cfg.seed, pin_memory=pin)
    val_loader = None if val_set is None else ddp.make_eval_loader(
        val_set, batch_size=cfg.batch_size, env=env, workers=cfg.workers, seed=cfg.seed,
        pin_memory=pin)
    if len(train_loader) == 0:
        raise ConfigError.of("batch_size", f"{cfg.batch_size} is more than the {len(fit_set)} "
                             f"training images hold for each of {env.world_size} process(es)")
    test_loader = ddp.make_eval_loader(test_set, batch_size=cfg.batch_size, env=env,
                                       workers=cfg.workers, seed=cfg.seed, pin_memory=pin)
    if cfg.init != "default" and not resume:
        ddp.set_epoch(train_loader, -1, cfg.seed)
        apply_init(model, cfg.init, next(iter(train_loader))[0][: 256])
    if cfg.init_from and not resume:
        _init_from(model, cfg.init_from, log if env.is_main else None)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    ema = None
    if cfg.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)

    steps_per_epoch = math.ceil(len(train_loader) / cfg.accum_steps)
    optimizer = build_optimizer(model, cfg, env.world_size, batch_size)
    if cfg.lr_batch and env.is_main and not resume:
        log(f"lr {optimizer.param_groups[0]['lr']:.4g}: {cfg.lr:g} for a global batch of "
            f"{cfg.lr_batch}, scaled linearly to this run's "
            f"{batch_size * env.world_size * cfg.accum_steps}")
    scheduler = Schedule(optimizer, cfg, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    start_epoch = step = position = 0
    if resume:
        if env.is_main:
            ckpt.clean_stale(run_dir)
        state = ckpt.load_checkpoint(run_dir, model=model, optimizer=optimizer, scheduler=scheduler,
                                     scaler=scaler, ema=ema, rank=env.rank)
        start_epoch, step, position = state["epoch"], state["step"], state["position"]
        if env.is_main:
            log(f"resuming {run_dir} after epoch {start_epoch}" + (
                f", at sample {position} of epoch {start_epoch + 1}'s order (step {step})"
                if position else ""))
    else:
        # Different dropout draws on each rank (augmentations are seeded per sample).
        _seed_everything(cfg.seed + env.rank)
        if env.is_main:
            os.makedirs(run_dir, exist_ok=True)
            cfg.save(os.path.join(run_dir, "config.json"))
    if env.is_main:
        _record_inference_spec(cfg, run_dir, test_set, input_size)
    return _Run(run_dir, model, model, ema, train_set, train_loader, test_loader, num_classes,
                optimizer, scheduler, scaler, start_epoch, step, val_loader, position)


def _init_from(model: nn.Module, source: str, log: Callable[[str], None] | None) -> None:
    from .init_from import init_from

    report = init_from(model, source)
    for line in report.lines() if log else ():
        log(line)


def _per_process_batch(cfg: TrainConfig, run_dir: str, resume: bool, env: ddp.DistEnv,
                       log: Callable[[str], None]) -> int:
    """``cfg.batch_size``, except for a run resumed on another number of processes than
    its checkpoint's: then the global batch is kept (and with it the schedule and each
    step's samples), split evenly over the processes there are now."""
    if not resume:
        return cfg.batch_size
    record = ckpt.latest_checkpoint(run_dir)
    global_batch = record["global_batch"] or cfg.batch_size * record["world_size"]
    if global_batch == cfg.batch_size * env.world_size:
        return cfg.batch_size
    if global_batch % env.world_size:
        raise ConfigError.of("batch_size", f"{run_dir} trains with a global batch of "
                             f"{global_batch}, which {env.world_size} processes cannot share "
                             "evenly; resume on a number of processes that divides it")
    batch = global_batch // env.world_size
    if env.is_main:
        log(f"resuming on {env.world_size} process(es) instead of {record['world_size']}: "
            f"{batch} images per process keep the global batch of {global_batch}")
    return batch


def _num_classes(train_set: Dataset, model_default: int) -> int:
    """The classifier's size: the training data's classes where it says them (every
    dataset of open_dataset does; one made in Python may), else the model's default."""
    from ..data.protocol import HasNumClasses

    declared = train_set.num_classes if isinstance(train_set, HasNumClasses) else None
    return declared or model_default


def _record_inference_spec(cfg: TrainConfig, run_dir: str, test_set: Dataset,
                           input_size: tuple[int, int, int]) -> None:
    """Write what predict needs (class names, normalisation, preset) before training, so
    that every checkpoint of the run can be used without its data; a run from before
    this file gets it when resumed."""
    from .inference_spec import INFERENCE_FILE, save_inference_spec, spec_from_dataset

    if os.path.exists(os.path.join(run_dir, INFERENCE_FILE)):
        return
    spec = spec_from_dataset(cfg.model, test_set, input_size, cfg.data)
    if spec is not None:
        save_inference_spec(run_dir, spec)


def _fit(cfg: TrainConfig, run_dir: str | None, resume: bool, until_epoch: int | None,
         datasets: tuple[Dataset, Dataset] | None, log: Callable[[str], None],
         progress: bool | None, env: ddp.DistEnv, device: torch.device) -> dict[str, Any]:
    run_dir = _agreed_run_dir(cfg, run_dir, env)
    run = _set_up_everywhere(cfg, run_dir, resume, datasets, log, env, device)
    epochs = _Epochs(cfg, run, env, device, log, progress)
    try:
        with StopSignals() as signals:
            epochs.boundary = StepBoundary(signals, cfg.save_every, env, device, epochs.commit_within)
            for epoch in range(run.start_epoch, _stop_epoch(cfg, until_epoch)):
                epochs.run_epoch(epoch)
    finally:
        epochs.close()
    return epochs.result()


def _agreed_run_dir(cfg: TrainConfig, run_dir: str | None, env: ddp.DistEnv) -> str:
    """``run_dir``, or a new one named after the model and the time: rank 0's on every rank."""
    if run_dir is not None:
        return run_dir
    run_dir = default_run_dir(cfg.model)
    if env.distributed:  # every rank must use rank 0's timestamp
        box = [run_dir]
        dist.broadcast_object_list(box, src=0)
        run_dir = box[0]
    return run_dir


def _set_up_everywhere(cfg: TrainConfig, run_dir: str, resume: bool,
                       datasets: tuple[Dataset, Dataset] | None, log: Callable[[str], None],
                       env: ddp.DistEnv, device: torch.device) -> _Run:
    # Every process builds its part without communicating; if any fails, all stop here
    # with that one message, rather than the others waiting forever in a collective.
    run, error = None, None
    try:
        run = _set_up(cfg, run_dir, resume, datasets, log, env, device)
    except Exception as err:  # re-raised by agree(), on this rank as it is
        error = err
    ddp.agree(env, error)
    run.net = ddp.wrap_model(run.model, env, device, cfg.sync_bn)  # broadcasts rank 0's weights
    return run


def _stop_epoch(cfg: TrainConfig, until_epoch: int | None) -> int:
    """The number of epochs done when the loop ends: the schedule's, or ``until_epoch``
    when that comes first (an interruption on purpose; the schedule is unchanged)."""
    return min(cfg.epochs, until_epoch or cfg.epochs)


class _Epochs:
    """The epoch loop. Each epoch trains, evaluates, stops the run if anything is no
    longer finite, then commits its metrics row and checkpoint; the record of the run
    (metrics.jsonl, TensorBoard, the curves) is kept by the main process."""

    def __init__(self, cfg: TrainConfig, run: _Run, env: ddp.DistEnv, device: torch.device,
                 log: Callable[[str], None], progress: bool | None) -> None:
        self.cfg, self.run, self.env, self.device, self.log = cfg, run, env, device, log
        main = env.is_main
        self.metrics_path = os.path.join(run.run_dir, "metrics.jsonl")
        self.history = logs.read_history(self.metrics_path, run.start_epoch) if main else []
        self.writer = logs.tensorboard(run.run_dir, run.start_epoch, log) if main else None
        self.show = (sys.stderr.isatty() if progress is None else progress) and main
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.eval_amp = "bf16" if cfg.amp == "bf16" else None  # fp16 evaluates in full precision
        self.step = run.step
        self.last_good = run.start_epoch  # the last epoch with a committed checkpoint (0: none)

    boundary: StepBoundary | None = None  # set by _fit: checkpoints within the epoch, signals

    def run_epoch(self, epoch: int) -> None:
        if self.boundary is not None and (received := self.boundary.signal_received()):
            # Received while the last epoch was evaluated and committed: stop before this one.
            raise self._preempted(received, f"after epoch {epoch} (step {self.step})")
        start = self.run.position if epoch == self.run.start_epoch else 0
        ddp.set_epoch(self.run.train_loader, epoch, self.cfg.seed, self.env.rank, start=start)
        lr = self.run.optimizer.param_groups[0]["lr"]
        trained = self._train(epoch)
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, **self._measure(trained)}
        bad_files = self._bad_files(epoch)
        if bad_files:
            row["bad_files"] = len(bad_files)
        self._stop_unless_finite(epoch, row["test_loss"])
        if self.run.scheduler.end_epoch(row.get("val_top1_err")) and self.env.is_main:
            self.log(f"epoch {epoch + 1}: validation error stopped improving; lr x {self.cfg.gamma:g}")
        self._commit(epoch, row)
        self.last_good = epoch + 1
        ddp.barrier(self.env)

    def _train(self, epoch: int) -> dict[str, float]:
        run, cfg = self.run, self.cfg
        self.epoch = epoch
        if self.boundary is not None:
            self.boundary.begin(self.step, run.train_loader.sampler.start, self._samples_per_step())
        try:
            trained = train_one_epoch(run.net, run.train_loader, run.optimizer, device=self.device,
                                      criterion=self.criterion, scheduler=run.scheduler,
                                      scaler=run.scaler, amp=cfg.amp, accum_steps=cfg.accum_steps,
                                      ema=run.ema, channels_last=cfg.channels_last, env=self.env,
                                      epoch=epoch, progress=self.show,
                                      clip_grad_norm=cfg.clip_grad_norm, after_step=self.boundary)
        except NonFiniteError as err:
            raise self._stopped(str(err)) from None
        self.step += trained["steps"]
        if self.boundary is not None and self.boundary.stopped_by:
            position, step = self.stopped_at
            raise self._preempted(self.boundary.stopped_by,
                                  f"at step {step}, sample {position} of "
                                  f"{run.train_loader.sampler.usable()} in epoch {epoch + 1}")
        return trained

    def _samples_per_step(self) -> int:
        loader = self.run.train_loader
        return loader.batch_size * self.env.world_size * self.cfg.accum_steps

    def commit_within(self, position: int, step: int) -> None:
        """A checkpoint within the epoch being trained, ``position`` samples into its
        order, after ``step`` optimizer steps of the run; every process calls it."""
        run, env = self.run, self.env
        rngs = _gather_rng(env)
        if env.is_main:
            ckpt.save_checkpoint(run.run_dir, model=run.model, epoch=self.epoch, step=step,
                                 optimizer=run.optimizer, scheduler=run.scheduler,
                                 scaler=run.scaler, ema=run.ema, rng=rngs, position=position,
                                 world_size=env.world_size,
                                 global_batch=run.train_loader.batch_size * env.world_size)
        self.stopped_at = (position, step)
        ddp.barrier(env)  # no process leaves (and has torchrun stop the others) mid-save

    def _preempted(self, signal_name: str, where: str) -> ConvnetsError:
        if not self.env.is_main:  # process 0 says it, once
            return ddp.PeerFailure(f"stopped by {signal_name} with process 0")
        return Preempted(f"stopped by {signal_name} {where}; the checkpoint is committed: "
                         f"continue with `convnets train --resume {self.run.run_dir}`")

    def _measure(self, trained: dict[str, float]) -> dict[str, Any]:
        """The epoch's figures: training loss and error, the test set's (and the EMA
        weights' errors), and the training speed."""
        run = self.run
        res = self._test(run.model)
        figures: dict[str, Any] = {"train_loss": trained["loss"], "train_top1_err": trained["top1_err"],
                                   "test_loss": res["loss"], "test_top1_err": res["top1_err"],
                                   "test_top5_err": res["top5_err"]}
        if run.val_loader is not None:  # the split the schedule and the best epoch read
            res_val = self._test(run.model, run.val_loader)
            figures.update(val_loss=res_val["loss"], val_top1_err=res_val["top1_err"],
                           val_top5_err=res_val["top5_err"])
        if run.ema is not None:
            res_ema = self._test(run.ema.module)
            figures.update(ema_test_top1_err=res_ema["top1_err"], ema_test_top5_err=res_ema["top5_err"])
        figures.update(images_per_s=trained["images"] / trained["seconds"], time=trained["seconds"])
        return figures

    def _test(self, model: nn.Module, loader: DataLoader | None = None) -> dict[str, float]:
        from .evaluation import evaluate

        # Every process evaluates its shard of the test set; the sums are reduced.
        return evaluate(model, loader or self.run.test_loader, device=self.device, amp=self.eval_amp,
                        num_classes=self.run.num_classes,
                        reduce=functools.partial(ddp.all_reduce_tensor, env=self.env))

    def _bad_files(self, epoch: int) -> list[tuple[str, str]]:
        """The unreadable files the epoch met, reported to the console and the run."""
        run, env = self.run, self.env
        # Each process met the bad files of its own share of the data: gather them all.
        bad_files = sorted(set(_gather_bad_files(run.train_set, env)
                               + _gather_bad_files(run.test_loader.dataset, env)))
        if bad_files and env.is_main:
            logs.report_bad_files(run.run_dir, bad_files, f"epoch {epoch + 1}", self.log)
        return bad_files

    def _stop_unless_finite(self, epoch: int, test_loss: float) -> None:
        # Nothing non-finite is committed as a good checkpoint: the loss can stay finite
        # while batch-norm statistics overflow, which the test loss then shows.
        env = self.env
        bad = _non_finite(self.run.model, self.run.ema)
        if env.distributed:  # BN statistics may differ between processes
            bad = [f"{len(bad)} tensors"] if ddp.all_reduce_sum([len(bad)], self.device, env)[0] else []
        if bad or not math.isfinite(test_loss):
            what = (f"after epoch {epoch + 1} {len(bad)} weight or buffer tensor(s) are not "
                    f"finite ({', '.join(bad[:3])})" if bad else
                    f"the test loss after epoch {epoch + 1} is not finite")
            raise self._stopped(what)

    def _stopped(self, reason: str) -> NonFiniteError:
        kept = (f"the last good checkpoint (epoch {self.last_good}) is kept in {self.run.run_dir}"
                if self.last_good else "no checkpoint was written")
        return NonFiniteError(f"training stopped: {reason}; {kept}; try a lower --lr or --warmup")

    def _commit(self, epoch: int, row: dict[str, Any]) -> None:
        """Record the epoch: its metrics row, its snapshot, its checkpoint, its line."""
        run, cfg = self.run, self.cfg
        # Taken after evaluation, so that the saved RNG states are exactly those the
        # next epoch starts from.
        rngs = _gather_rng(self.env)
        if not self.env.is_main:
            return
        self.history.append(row)
        logs.with_best(self.history)
        if self.run.val_loader is not None:
            with_best_val(self.history)
        # The metrics row first: a kill between the two writes leaves a row for an
        # uncommitted epoch, which a resume drops; never a committed epoch without one.
        logs.write_history(self.metrics_path, self.history)
        self._save_snapshot(epoch)
        ckpt.save_checkpoint(run.run_dir, model=run.model, epoch=epoch + 1, step=self.step,
                             optimizer=run.optimizer, scheduler=run.scheduler,
                             scaler=run.scaler, ema=run.ema, rng=rngs,
                             world_size=self.env.world_size,
                             global_batch=run.train_loader.batch_size * self.env.world_size)
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):  # not best_by's name
                    self.writer.add_scalar(key, value, epoch + 1)
            self.writer.flush()
        val = f"  val top-1 err {row['val_top1_err']:.2f}%" if "val_top1_err" in row else ""
        self.log(logs.epoch_line(row, cfg.epochs) + val)

    def _save_snapshot(self, epoch: int) -> None:
        """The weights at the end of each cosine cycle, the members of a snapshot ensemble
        (Huang et al. 2017)."""
        cfg = self.cfg
        cycle_epochs = cfg.epochs // cfg.snapshot_ensemble if cfg.snapshot_ensemble else 0
        if not cycle_epochs or (epoch + 1) % cycle_epochs:
            return
        folder = os.path.join(self.run.run_dir, "snapshots")
        os.makedirs(folder, exist_ok=True)
        ckpt.save_weights(os.path.join(folder, f"snapshot-{(epoch + 1) // cycle_epochs}.safetensors"),
                          self.run.model.state_dict(), {"epoch": str(epoch + 1)})

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.env.is_main and self.history:
            logs.plot_curves(self.history, os.path.join(self.run.run_dir, "curves.png"))

    def result(self) -> dict[str, Any]:
        history = self.history
        key = "val_top1_err" if self.run.val_loader is not None else "test_top1_err"
        return {"run_dir": self.run.run_dir, "history": history,
                "last": history[-1] if history else None, "best": logs.best_row(history, key),
                "best_by": "validation" if self.run.val_loader is not None else "test"}


def _non_finite(model: nn.Module, ema: nn.Module | None) -> list[str]:
    """Names of floating-point parameters and buffers that hold NaN or infinity."""
    named = list(model.state_dict().items())
    if ema is not None:
        named += [(f"ema.{k}", v) for k, v in ema.module.state_dict().items()]
    return [k for k, v in named if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _gather_rng(env: ddp.DistEnv) -> list[dict]:
    mine = ckpt.rng_state()
    if not env.distributed:
        return [mine]
    every: list[Any] = [None] * env.world_size
    dist.all_gather_object(every, mine)
    return every


def _gather_bad_files(dataset: Dataset, env: ddp.DistEnv) -> list[tuple[str, str]]:
    """(path, reason) of every unreadable file any process met since the last call, which
    starts the count afresh. Each process sees only its share of the data, so in a
    data-parallel run this is a collective: every rank calls it."""
    from ..data.protocol import ReportsBadFiles

    mine = []
    if isinstance(dataset, ReportsBadFiles):  # a dataset made in Python need not read files
        mine = dataset.bad_file_report()
        dataset.reset_bad_files()
    if env.distributed:
        every: list[Any] = [None] * env.world_size
        dist.all_gather_object(every, mine)
        mine = [item for part in every for item in part]
    return sorted(set(mine))
