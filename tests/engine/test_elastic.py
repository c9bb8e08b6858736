"""The epoch's global sample order whatever the number of processes: every training sample
once per epoch across 2 gloo processes, each test image counted once, and a run stopped
within an epoch on 2 processes resumed on 1 (and 1 on 2) consuming exactly the samples,
step by step, of a run that never stopped. Data: shards of 288 digits."""
import os
import signal

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from convnets.data import open_dataset
from convnets.data.shards import write_shards
from convnets.engine import distributed as ddp
from convnets.engine.config import TrainConfig
from convnets.engine.preemption import Preempted
from helpers import rendezvous

SIZE = (1, 32, 32)
B = 8  # the global batch: 36 steps per epoch


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("data") / "shards")
    write_shards("digits:0-1", out, shard_bytes=100_000, log=lambda _: None)
    return out


class _Recording(Dataset):
    """Appends each index read to a file of its own; sends SIGTERM at read ``stop_at``."""

    def __init__(self, base, path, stop_at=0):
        self.base, self.path, self.stop_at, self.reads = base, path, stop_at, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads == self.stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        with open(self.path, "a") as f:
            f.write(f"{i}\n")
        return self.base[i]

    @property
    def num_classes(self):
        return self.base.num_classes


def _cfg(shards, world, workers):
    return TrainConfig(model="lenet5", data=f"shards:{shards}", epochs=1, batch_size=B // world,
                       lr=0.05, device="cpu", workers=workers, input_size=list(SIZE))


def _fit(rank, world, master, shards, run, record, stop_at, resume, workers):
    from convnets.engine.train import fit

    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), **master)
    train = open_dataset(f"shards:{shards}", "train", input_size=SIZE, train_transform=True)
    test = open_dataset(f"shards:{shards}", "test", input_size=SIZE, train_transform=False)
    data = (_Recording(train, f"{record}.train.{rank}", stop_at if rank == 0 else 0),
            _Recording(test, f"{record}.test.{rank}"))
    from convnets.engine.config import load_config

    # A resume keeps the saved config (its batch per process is the first run's).
    cfg = load_config(os.path.join(run, "config.json")) if resume else _cfg(shards, world, workers)
    try:
        fit(cfg, run, resume=resume, datasets=data, log=lambda _: None)
    except Preempted:
        pass
    except ddp.PeerFailure:
        pass


def _run(world, shards, run, record, stop_at=0, resume=False, workers=0):
    """``stop_at`` needs ``workers=0``: the reads are then in the process to be signalled."""
    if world == 1:
        for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            os.environ.pop(k, None)
        _fit(0, 1, None, shards, run, record, stop_at, resume, workers)
    else:
        with rendezvous(world) as master:  # a store of its own for each job
            mp.spawn(_fit, args=(world, master, shards, run, record, stop_at, resume, workers),
                     nprocs=world, join=True)


def _read(path):
    return [int(v) for v in open(path)] if os.path.exists(path) else []


def _steps(record, world):
    """The samples of each optimizer step, all processes together, as sets."""
    parts = [_read(f"{record}.train.{r}") for r in range(world)]
    per = B // world
    n = len(parts[0]) // per
    return [sorted(i for p in parts for i in p[s * per:(s + 1) * per]) for s in range(n)]


def test_two_processes_see_each_sample_once_in_the_global_order(tmp_path, shards):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    _run(1, shards, str(tmp_path / "r1"), one)
    _run(2, shards, str(tmp_path / "r2"), two, workers=1)  # a loading worker per process
    steps = _steps(two, 2)
    assert steps == _steps(one, 1) and len(steps) == 36
    every = sorted(i for s in steps for i in s)
    assert every == list(range(288))  # 288 = 36 steps of 8: each sample exactly once
    tested = sorted(_read(f"{two}.test.0") + _read(f"{two}.test.1"))
    test_size = len(open_dataset(f"shards:{shards}", "test", input_size=SIZE, train_transform=False))
    assert tested == list(range(test_size))  # each test image counted once


@pytest.mark.parametrize("before, after", [(2, 1), (1, 2)])
def test_resume_on_another_number_of_processes_keeps_the_order(tmp_path, shards, before, after):
    whole = str(tmp_path / "whole")
    _run(1, shards, str(tmp_path / "w"), whole)
    run, first, second = str(tmp_path / "run"), str(tmp_path / "a"), str(tmp_path / "b")
    _run(before, shards, run, first, stop_at=83)  # SIGTERM on process 0 within step 11 (or 21)
    from convnets.engine import checkpoint as ckpt

    record = ckpt.latest_checkpoint(run)
    assert record["epoch"] == 0 and 0 < record["position"] < 288
    assert record["global_batch"] == B and record["world_size"] == before
    _run(after, shards, run, second, resume=True)
    done = record["position"] // B
    steps = _steps(first, before)[:done] + _steps(second, after)
    assert steps == _steps(whole, 1)


def test_the_global_batch_is_kept_or_the_resume_refused(tmp_path):
    from convnets.engine import checkpoint as ckpt
    from convnets.engine.train import _per_process_batch
    from convnets.errors import ConfigError

    run = str(tmp_path / "run")
    ckpt.save_checkpoint(run, model=torch.nn.Linear(2, 2), epoch=0, step=3, position=24,
                         world_size=2, global_batch=8)
    cfg = TrainConfig(batch_size=4)
    lines = []
    assert _per_process_batch(cfg, run, True, ddp.DistEnv(world_size=4), lines.append) == 2
    assert lines == ["resuming on 4 process(es) instead of 2: 2 images per process keep the "
                     "global batch of 8"]
    assert _per_process_batch(cfg, run, True, ddp.DistEnv(world_size=2), lines.append) == 4
    with pytest.raises(ConfigError, match="global batch of 8, which 3 processes cannot share"):
        _per_process_batch(cfg, run, True, ddp.DistEnv(world_size=3), lines.append)
