"""Data-parallel training with PyTorch's own machinery: ``torchrun`` sets the environment,
DistributedDataParallel averages gradients, :class:`EpochOrder` splits the data (the
epoch's global order, the same for any number of processes).

One process per device. ``torchrun`` exports RANK, WORLD_SIZE, LOCAL_RANK (and
MASTER_ADDR/MASTER_PORT); without them the run is a single process and nothing here
touches ``torch.distributed``. Only rank 0 logs and writes checkpoints.

One machine, 4 processes (GPUs, or CPU processes with gloo)::

    torchrun --standalone --nproc-per-node 4 -m convnets train resnet50 --recipe resnet-imagenet --data imagenet:DIR

Two machines with 8 GPUs each (run on both, NODE_RANK 0 and 1; HOST is machine 0)::

    torchrun --nnodes 2 --node-rank NODE_RANK --nproc-per-node 8 --rdzv-backend c10d \
        --rdzv-endpoint HOST:29500 -m convnets train resnet50 --recipe resnet-imagenet --data imagenet:DIR

``--batch-size`` is per process: the recipes' batch of 256 on 8 GPUs is ``--batch-size 32``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..core import first_line
from ..errors import ConvnetsError
from ..models.batchnorm import SyncBatchNorm2d

__all__ = ["DistEnv", "PeerFailure", "setup", "cleanup", "wrap_model", "convert_sync_batchnorm",
           "make_loader", "make_eval_loader", "set_epoch", "EpochOrder", "SampleSeeded", "sample_seed",
           "ShardSampler", "all_reduce_sum", "barrier",
           "agree", "is_collective_failure"]


class PeerFailure(ConvnetsError):
    """Another process of a data-parallel job failed; its own message says why."""


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> DistEnv:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistEnv()
    env = DistEnv(rank=int(os.environ["RANK"]), local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                  world_size=int(os.environ["WORLD_SIZE"]))
    if env.world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size)
    return env


def cleanup(ok: bool = True) -> None:
    """Leave the process group. After a success the processes leave together: a rank that
    tears down gloo while another is still in its last collective or writing its
    checkpoint can abort the other. After a failure there is no waiting for the others,
    who may be blocked in a collective this rank will never join: the process ends, its
    connections close, and the others' collectives fail at once (torchrun also stops the
    remaining workers when one exits with an error)."""
    if dist.is_available() and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()


def agree(env: DistEnv, error: BaseException | None) -> None:
    """Collective check after a phase that every process runs (set-up, say): if any
    process failed, every process raises, so none is left waiting in a later collective.
    The first failed process (lowest rank) re-raises its own error; the others raise
    :class:`PeerFailure`, which the command line does not print again, so a mistake that
    every process makes is reported once."""
    if not env.distributed:
        if error is not None:
            raise error
        return
    mine = None if error is None else first_line(error)
    every: list = [None] * env.world_size
    dist.all_gather_object(every, mine)
    failed = [(rank, msg) for rank, msg in enumerate(every) if msg is not None]
    if error is not None and failed[0][0] == env.rank:
        raise error
    if failed:
        rank, msg = failed[0]
        raise PeerFailure(f"process {rank} of the job failed: {msg}")


def is_collective_failure(err: BaseException) -> bool:
    """Whether ``err`` is a collective that broke because another process went away (gloo
    reports a closed or reset connection, NCCL a remote error), rather than a bug here."""
    if isinstance(err, dist.DistError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "gloo/transport" in text or "Connection closed by peer" in text
        or "Connection reset by peer" in text or "NCCL communicator was aborted" in text)


def convert_sync_batchnorm(module: nn.Module, process_group=None) -> nn.Module:
    """``module`` with every BatchNorm2d (and PyTorch's nn.SyncBatchNorm) replaced by a
    SyncBatchNorm2d that shares its parameters, buffers and mode (children are replaced in
    place; a batch norm given as ``module`` itself comes back as a new layer).
    SyncBatchNorm2d works on CPU and GPU, and the models' own batch-norm paths (GUNN's fast
    update, DenseNet's recomputation) synchronise with it; see ``convnets.models.batchnorm``."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if isinstance(module, SyncBatchNorm2d):
            return module
        if not isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
            raise TypeError(f"--sync-bn synchronises BatchNorm2d only; the model holds a "
                            f"{type(module).__name__}")
        sync = SyncBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats, process_group, device="meta",
                               bias=module.bias is not None)
        sync.weight, sync.bias = module.weight, module.bias
        sync.running_mean, sync.running_var = module.running_mean, module.running_var
        sync.num_batches_tracked = module.num_batches_tracked
        return sync.train(module.training)
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, process_group))
    return module


def wrap_model(model: nn.Module, env: DistEnv, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """DistributedDataParallel around ``model`` when there are several processes.

    ``sync_bn`` converts batch norm to SyncBatchNorm2d (in place), so that its statistics
    are taken over the global batch rather than each process's share: W processes with
    batch B then train as one process with batch W*B does. Goyal et al. 2017 keep
    per-process statistics on purpose; small per-process batches want them synced.
    """
    if not env.distributed:
        return model
    if sync_bn:
        model = convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def make_loader(dataset: Dataset, *, batch_size: int, env: DistEnv, train: bool, workers: int,
                seed: int, pin_memory: bool = False) -> DataLoader:
    """A loader whose order depends only on (seed, epoch), never on the number of
    processes: call ``set_epoch(loader, e)`` before each epoch. Process ``r`` of ``W``
    takes every W-th sample of the epoch's global order (:class:`EpochOrder`), so the
    samples of one optimizer step of the W processes together are one block of that order:
    one process with batch W*B sees exactly the union of W processes' batches of B, and
    a run can resume on another number of processes. A training sample's augmentation is
    drawn from its own seed (:class:`SampleSeeded`), so that neither the number of
    processes nor that of loading workers changes what it becomes."""
    sampler = EpochOrder(len(dataset), env, shuffle=train, seed=seed,
                         global_batch=batch_size * env.world_size if train else None)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(SampleSeeded(dataset, seed), batch_size=batch_size,
                      sampler=sampler, num_workers=workers, drop_last=train,
                      pin_memory=pin_memory, generator=generator, persistent_workers=False)


def set_epoch(loader: DataLoader, epoch: int, seed: int, rank: int = 0, start: int = 0) -> None:
    """Re-seed the sampler's permutation and the workers' base seed for ``epoch``, so that a
    resumed run draws the same data order and augmentations as an uninterrupted one;
    ``start`` is the position in the epoch's global order to begin at (a run resumed from
    a checkpoint taken within the epoch)."""
    if isinstance(loader.sampler, (DistributedSampler, EpochOrder)):
        loader.sampler.set_epoch(epoch)
    if isinstance(loader.sampler, EpochOrder):
        loader.sampler.start = start
    if loader.generator is not None:
        loader.generator.manual_seed((seed * 1_000_003 + epoch) * 1_009 + rank)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of sample ``index``'s augmentation in ``epoch``: a function of the three
    alone (a 63-bit mix, so that neighbouring samples and epochs draw unrelated streams)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB)
    x &= 2**64 - 1
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & (2**64 - 1)
    return (x ^ (x >> 32)) >> 1


class SampleSeeded(Dataset):
    """``dataset``, read with keys ``(index, epoch)`` from :class:`EpochOrder`: each item's
    transform draws from torch's generator seeded by :func:`sample_seed`, inside a fork of
    the generator, so the caller's random state is untouched. (The presets draw from
    torch's generator only.)"""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, epoch = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.dataset[index]


class EpochOrder(Sampler[tuple[int, int]]):
    """This process's part of an epoch's global order of a dataset of ``n``: a permutation
    drawn from ``seed + epoch`` alone (the one DistributedSampler draws) for training, the
    indices in order otherwise. Training takes whole global batches (``global_batch``
    samples: the last partial one is dropped, whatever the number of processes), from
    position ``start`` on; process ``r`` of ``W`` takes positions ``r, r + W, ...`` of
    that. Yields ``(index, epoch)``, the keys :class:`SampleSeeded` reads."""

    def __init__(self, n: int, env: DistEnv, *, shuffle: bool, seed: int,
                 global_batch: int | None) -> None:
        self.n, self.rank, self.world = n, env.rank, env.world_size
        self.shuffle, self.seed, self.global_batch = shuffle, seed, global_batch
        self.epoch = self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def usable(self) -> int:
        """The number of positions of the epoch's order that are trained on."""
        return self.n - self.n % self.global_batch if self.global_batch else self.n

    def global_order(self) -> list[int]:
        """The epoch's order of all processes together, from position 0."""
        if not self.shuffle:
            return list(range(self.usable()))
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return torch.randperm(self.n, generator=g)[: self.usable()].tolist()

    def __iter__(self):
        mine = self.global_order()[self.start + self.rank:: self.world]
        return iter([(i, self.epoch) for i in mine])

    def __len__(self) -> int:
        return len(range(self.start + self.rank, self.usable(), self.world))


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + W, rank + 2W, ...`` of a dataset of ``n``: the shards of W
    processes hold every index exactly once. DistributedSampler pads the shards to equal
    length with repeated images, which must not be counted twice in an evaluation."""

    def __init__(self, n: int, env: DistEnv) -> None:
        self.n, self.rank, self.world = n, env.rank, env.world_size

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


def make_eval_loader(dataset: Dataset, *, batch_size: int, env: DistEnv, workers: int, seed: int,
                     pin_memory: bool = False) -> DataLoader:
    """This process's shard of ``dataset`` in order (see :class:`ShardSampler`); the
    generator is its own, so evaluating never draws from the RNG that training uses."""
    return DataLoader(dataset, batch_size=batch_size, sampler=ShardSampler(len(dataset), env),
                      num_workers=workers, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed))


def all_reduce_tensor(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """The sum of ``t`` over all processes (``t`` itself in a single process)."""
    if env.distributed:
        t = t.clone()
        dist.all_reduce(t)
    return t


def all_reduce_sum(values: list[float], device: torch.device, env: DistEnv) -> list[float]:
    if not env.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()
